"""Stage 2: train the LSTM on extracted tokens; write a bundle (best and last model), resumable."""

from __future__ import annotations

import csv
import io
import math
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pianocomposer._util import import_keras
from pianocomposer.atomic import atomic_path, write_text
from pianocomposer.bundle import BEST_MODEL, LAST_MODEL, load_bundle, read_meta, save_meta, save_model
from pianocomposer.config import PRESETS, ModelConfig
from pianocomposer.dataset import make_windows, parse_transpose, split_songs, transpose_songs
from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError
from pianocomposer.extract import load_tokens
from pianocomposer.model import build_model
from pianocomposer.vocab import Vocabulary

N_SEEDS = 32
HISTORY_FIELDS = ["epoch", "loss", "accuracy", "val_loss", "val_perplexity", "val_accuracy", "seconds",
                  "tokens_per_s", "partial"]


@dataclass
class TrainResult:
    """What a training run did: where the bundle is, how far it got and why it stopped."""

    bundle: Path
    epochs: int
    best_epoch: int
    best_val_loss: float | None
    stopped: str
    tokens_per_s: float
    history: list[dict]


def _progress_callback(total_epochs: int, batches: int, tokens_per_batch: float, enabled: bool):
    """A Keras callback: a tqdm bar per epoch showing supervised tokens/s, and the epoch's training seconds."""
    import keras
    from tqdm import tqdm

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.bar = tqdm(total=batches, desc=f"epoch {epoch + 1}/{total_epochs}", unit="batch",
                            disable=not enabled or None, leave=True)
            self.start = time.perf_counter()
            self.train_seconds, self.done = 0.0, 0

        def on_train_batch_end(self, batch, logs=None):
            self.done = batch + 1
            self.train_seconds = time.perf_counter() - self.start
            self.bar.update()
            if logs and batch % 5 == 0:
                rate = self.done * tokens_per_batch / max(self.train_seconds, 1e-9)
                self.bar.set_postfix(loss=f"{float(logs.get('loss', 0)):.3f}", tok_s=f"{rate:,.0f}")

        def on_epoch_end(self, epoch, logs=None):
            self.bar.close()

    return Progress()


class _StopRequests:
    """Turns Ctrl-C / SIGTERM and a wall-clock budget into a clean stop after the current batch."""

    def __init__(self, deadline: float | None):
        self.deadline, self.signal_name, self.model = deadline, None, None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signal_name is not None:  # a second Ctrl-C: the user really wants out now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        if self.model is not None:
            self.model.stop_training = True

    def callback(self):
        """A Keras callback that stops training when a signal arrived or the budget is spent."""
        import keras

        requests = self

        class Stopper(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if requests.signal_name or (requests.deadline and time.monotonic() > requests.deadline):
                    self.model.stop_training = True

        return Stopper()


def _write_history(folder: Path, history: list[dict]) -> None:
    """history.csv and loss.png beside the models."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text(folder / "history.csv", buf.getvalue())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], label="train loss")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, [h.get("val_loss") for h in history], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    with atomic_path(folder / "loss.png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def _pick_seeds(songs: list[list[str]], seq_len: int, rng: np.random.Generator) -> list[list[str]]:
    """Up to N_SEEDS windows of training tokens, stored in the bundle to start generation from."""
    picks = rng.choice(len(songs), size=min(N_SEEDS, len(songs)), replace=False)
    seeds = []
    for i in sorted(picks.tolist()):
        song = songs[i]
        start = int(rng.integers(0, max(1, len(song) - seq_len + 1)))
        seeds.append(list(song[start:start + seq_len]))
    return seeds


def compile_model(model, config: ModelConfig, jit_compile: bool | None = None) -> None:
    """Compile with the config's optimizer, the padding-aware loss and accuracy, as training does."""
    import keras

    if jit_compile is None:
        # XLA made the TensorFlow LSTM 2.6x slower on CPU (BENCHMARKS.md) and it cannot use cuDNN's kernel;
        # JAX always compiles, and torch decides for itself.
        jit_compile = False if keras.backend.backend() == "tensorflow" else "auto"
    optimizers = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    model.compile(optimizer=optimizers[config.optimizer](learning_rate=config.learning_rate, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)


def _inference_copy(model, config: ModelConfig, vocab_size: int, dtype: str):
    """The trained weights in a fresh uncompiled float32/float16 model: small, no optimizer state."""
    copy = build_model(config, vocab_size, dtype=dtype)
    copy.set_weights([w.astype(dtype) for w in model.get_weights()])
    return copy


def train(data: Path, weights: Path, *, preset: str = "paper", epochs: int = 50, val_split: float = 0.1,
          resume: bool = False, objective: str = "all", transpose: str = "0", batch_size: int | None = None,
          learning_rate: float | None = None,
          patience: int | None = None, max_minutes: float | None = None, mixed_precision: bool = False,
          jit_compile: bool | None = None, tensorboard: bool = False, float16: bool = False, seed: int = 0,
          progress: bool = True) -> TrainResult:
    """Train on data/tokens.json and keep the best (validation loss) and last models in the weights folder."""
    weights = Path(weights)
    if epochs < 1:
        raise PianoComposerError(f"--epochs must be at least 1 (got {epochs})")
    if objective not in ("all", "last"):
        raise PianoComposerError(f"--objective must be 'all' or 'last' (got {objective!r})")
    if not 0 <= val_split < 1:
        raise PianoComposerError(f"--val-split must be in [0, 1) (got {val_split})")
    try:
        semitones = parse_transpose(transpose)
    except ValueError as exc:
        raise PianoComposerError(str(exc)) from None
    tokens = load_tokens(data)
    encoding = get_encoding(tokens.encoding)
    by_name = {s.source: s for s in tokens.songs}

    keras = import_keras()

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    if resume:
        meta = read_meta(weights)
        if meta["encoding"] != tokens.encoding:
            raise PianoComposerError(f"{weights}: the bundle uses encoding {meta['encoding']!r}, "
                                     f"the data {tokens.encoding!r}")
        config = ModelConfig.from_dict(meta["config"])
        missing = [n for n in meta["split"]["train"] + meta["split"]["val"] if n not in by_name]
        if missing:
            raise PianoComposerError(f"{data}: songs the bundle was trained on are missing (e.g. {missing[0]}); "
                                     "resume needs the same data")
        train_names, val_names = meta["split"]["train"], meta["split"]["val"]
        history, options = meta["training"]["history"], meta["training"]["options"]
        objective, semitones = options["objective"], parse_transpose(options["transpose"])
        vocabulary = Vocabulary(meta["vocabulary"])
        model = load_bundle(weights, LAST_MODEL, compile=True).model
        if learning_rate is not None:
            config = replace(config, learning_rate=learning_rate)
            model.optimizer.learning_rate.assign(learning_rate)
    else:
        if preset not in PRESETS:
            raise PianoComposerError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        config = PRESETS[preset]
        config = replace(config, batch_size=batch_size or config.batch_size,
                         learning_rate=learning_rate or config.learning_rate)
        train_idx, val_idx = split_songs(len(tokens.songs), val_split, seed)
        train_names = [tokens.songs[i].source for i in train_idx]
        val_names = [tokens.songs[i].source for i in val_idx]
        history, options = [], {"objective": objective, "transpose": transpose, "val_split": val_split,
                                "mixed_precision": mixed_precision, "seed": seed, "preset": preset}
        model = None

    train_songs = transpose_songs([by_name[n].tokens for n in train_names], encoding, semitones)
    val_songs = [by_name[n].tokens for n in val_names]
    if not resume:
        vocabulary = Vocabulary.from_songs(train_songs + val_songs)
    unknown = {t for s in train_songs + val_songs for t in s} - set(vocabulary.tokens)
    if unknown:
        raise PianoComposerError(f"{data}: {len(unknown)} tokens are not in the bundle's vocabulary "
                                 f"(e.g. {sorted(unknown)[0]!r}); train a new model instead of --resume")
    train_ids = [vocabulary.encode(s) for s in train_songs]
    x_val, y_val, w_val = make_windows([vocabulary.encode(s) for s in val_songs], config.seq_len,
                                       multiple_of=config.batch_size)
    validation = (x_val, y_val, w_val) if len(x_val) else None

    if model is None:
        if mixed_precision:
            keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        model = build_model(config, len(vocabulary))
        compile_model(model, config, jit_compile)
        keras.mixed_precision.set_dtype_policy("float32")

    seeds = meta["seeds"] if resume else _pick_seeds([by_name[n].tokens for n in train_names], config.seq_len, rng)
    base_meta = {"encoding": tokens.encoding, "vocabulary": vocabulary.tokens, "config": config.to_dict(),
                 "keras": keras.__version__, "backend": keras.backend.backend(), "seeds": seeds,
                 "split": {"train": train_names, "val": val_names}}
    key = "val_loss" if validation else "loss"
    scored = [h for h in history if h.get(key) is not None]
    best = min(scored, key=lambda h: h[key], default=None)
    best_loss, best_epoch = (best[key], best["epoch"]) if best else (math.inf, 0)

    callbacks = []
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(weights / "tensorboard")))
    start_epoch, stopped = len(history), "completed"
    total = start_epoch + epochs
    run_tokens, run_seconds = 0.0, 0.0
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    with _StopRequests(deadline) as stop:
        stop.model = model
        for epoch in range(start_epoch, total):
            x, y, w = make_windows(train_ids, config.seq_len, int(rng.integers(config.seq_len)), objective,
                                   multiple_of=config.batch_size)
            order = rng.permutation(len(x))
            batches = math.ceil(len(x) / config.batch_size)
            bar = _progress_callback(total, batches, float(w.sum()) / max(batches, 1), progress)
            fit = model.fit(x[order], y[order], sample_weight=w[order], batch_size=config.batch_size,
                            epochs=epoch + 1, initial_epoch=epoch, validation_data=validation, shuffle=False,
                            verbose=0, callbacks=[bar, stop.callback(), *callbacks])
            logs = {k: float(v[-1]) for k, v in fit.history.items()}
            partial = bar.done < batches
            supervised = float(w[order][: bar.done * config.batch_size].sum())
            run_tokens, run_seconds = run_tokens + supervised, run_seconds + bar.train_seconds
            row = {"epoch": epoch + 1, "loss": logs["loss"], "accuracy": logs.get("accuracy"),
                   "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
                   "val_perplexity": math.exp(logs["val_loss"]) if "val_loss" in logs else None,
                   "seconds": round(bar.train_seconds, 3),
                   "tokens_per_s": round(supervised / max(bar.train_seconds, 1e-9), 1), "partial": partial}
            history.append(row)
            if row[key] is not None and row[key] < best_loss:
                best_loss, best_epoch = row[key], epoch + 1
                save_model(_inference_copy(model, config, len(vocabulary), "float16" if float16 else "float32"),
                           weights / BEST_MODEL)
            save_model(model, weights / LAST_MODEL)
            training = {"epochs": epoch + 1, "best_epoch": best_epoch, f"best_{key}": best_loss,
                        "weights_dtype": "float16" if float16 else "float32", "options": options,
                        "history": history}
            save_meta(weights, {**base_meta, "training": training})
            _write_history(weights, history)
            if stop.signal_name:
                stopped = f"interrupted by {stop.signal_name}"
                break
            if partial or (deadline and time.monotonic() > deadline):
                stopped = "time budget spent"
                break
            if patience and epoch + 1 - best_epoch >= patience:
                stopped = f"no improvement in {patience} epochs"
                break
    return TrainResult(weights, len(history), best_epoch, best_loss if validation else None, stopped,
                       run_tokens / max(run_seconds, 1e-9), history)
