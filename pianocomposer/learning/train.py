"""Stage 2: train the network on extracted tokens; write a bundle (best and last model), resumable.

The parts, in the order train() uses them:
- TrainingState: everything the bundle records about a run (encoding, vocabulary, config, options, split,
  seeds, history, optimizer steps); saved in bundle.json, so --resume starts from exactly where a run stood.
- plan_new / plan_resume: a new state from the tokens, or the bundle's state with the resume policy applied
  (RESUMABLE settings may change; any other setting that differs from the bundle's is refused).
- prepare_data / epoch_windows: tokens to arrays; every epoch's window shift, order and dropout randomness
  derive from (seed, epoch), so 2 epochs + resume 2 epochs trains exactly as 4 epochs do.
- run_epochs: a generator that trains one epoch per step and yields its row; the caller decides what to keep.
- BundleWriter: models, bundle.json, history.csv and loss.png, written atomically by the writing process only.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pianocomposer._util import import_keras
from pianocomposer.config import PRESETS, ModelConfig, TrainOptions, shipped_bundle
from pianocomposer.encodings import Encoding, get_encoding
from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import (
    BEST_MODEL,
    LAST_MODEL,
    PENDING_LAST_MODEL,
    Bundle,
    load_bundle,
    read_bundle,
    read_meta,
    resolve_weights,
    save_meta,
    save_model,
)
from pianocomposer.learning.dataset import make_windows, split_songs, transpose_songs
from pianocomposer.learning.devices import Placement, default_placement
from pianocomposer.learning.model import build_model
from pianocomposer.learning.vocab import Vocabulary
from pianocomposer.reading.tokens import TokenData, load_tokens
from pianocomposer.writing.atomic import atomic_path, write_text

N_SEEDS = 32
HISTORY_FIELDS = ["epoch", "loss", "accuracy", "val_loss", "val_perplexity", "val_accuracy", "seconds",
                  "tokens_per_s", "partial"]
# Settings --resume may change; every other setting is the bundle's, and asking for a different one is an error.
RESUMABLE = frozenset({"learning_rate"})
# Settings a fine-tune (--from) may set; the rest of the network is the base's.
FINE_TUNABLE = frozenset({"learning_rate", "batch_size", "seq_len", "dropout", "clipnorm", "optimizer"})
# A fine-tune's defaults: the base's learning rate scaled down, and early stopping on the folder's held-out songs.
FINE_TUNING = {"learning_rate": 0.3, "patience": 3}
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))
OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainOptions))


@dataclass
class TrainingState:
    """What the bundle records about training: enough to resume exactly."""

    encoding: str
    encoding_params: dict
    vocabulary: Vocabulary
    config: ModelConfig
    options: TrainOptions
    preset: str | None
    split: dict[str, list[str]]
    seeds: list[list[str]]
    qpm: float | None  # the training songs' median tempo: generate's default (None: the encoding's own timing)
    history: list[dict] = field(default_factory=list)
    steps: int | None = 0  # optimizer steps taken; last.keras must agree (None: a version 1 bundle, not recorded)
    base: dict | None = None  # the bundle a fine-tune started from (train --from): its name, path and figures

    @property
    def score_key(self) -> str:
        """The loss that picks the best model: validation loss when songs are held out."""
        return "val_loss" if self.split["val"] else "loss"

    def best(self) -> tuple[float, int]:
        """Best loss so far and its epoch (inf, 0 before any epoch)."""
        scored = [h for h in self.history if h.get(self.score_key) is not None]
        row = min(scored, key=lambda h: h[self.score_key], default=None)
        return (row[self.score_key], row["epoch"]) if row else (math.inf, 0)

    def to_meta(self, **extra) -> dict:
        """bundle.json's content (without format and version)."""
        best_loss, best_epoch = self.best()
        return {"encoding": self.encoding, "encoding_params": self.encoding_params,
                "vocabulary": self.vocabulary.tokens, "config": self.config.to_dict(), "qpm": self.qpm,
                **({"base": self.base} if self.base else {}), **extra,
                "seeds": self.seeds, "split": self.split,
                "training": {"preset": self.preset, "options": self.options.to_dict(), "epochs": len(self.history),
                             "steps": self.steps, "best_epoch": best_epoch, f"best_{self.score_key}": best_loss,
                             "history": self.history}}

    @classmethod
    def from_meta(cls, meta: dict) -> TrainingState:
        """The state a bundle.json records (already migrated to the current format by read_meta)."""
        training = meta["training"]
        return cls(meta["encoding"], meta.get("encoding_params", {}), Vocabulary(meta["vocabulary"]),
                   ModelConfig.from_dict(meta["config"]), TrainOptions.from_dict(training["options"]),
                   training.get("preset"), meta["split"], meta["seeds"], meta.get("qpm"), training["history"],
                   training.get("steps"), meta.get("base"))


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


def _split_changes(changes: dict) -> tuple[dict, dict]:
    """Settings asked for, split into ModelConfig fields and TrainOptions fields."""
    unknown = set(changes) - CONFIG_FIELDS - OPTION_FIELDS
    if unknown:
        raise PianoComposerError(f"unknown training settings: {', '.join(sorted(unknown))}")
    return ({k: v for k, v in changes.items() if k in CONFIG_FIELDS},
            {k: v for k, v in changes.items() if k in OPTION_FIELDS})


def _pick_seeds(songs: list[list[str]], seq_len: int, rng: np.random.Generator) -> list[list[str]]:
    """Up to N_SEEDS windows of training tokens, stored in the bundle to start generation from."""
    picks = rng.choice(len(songs), size=min(N_SEEDS, len(songs)), replace=False)
    seeds = []
    for i in sorted(picks.tolist()):
        song = songs[i]
        start = int(rng.integers(0, max(1, len(song) - seq_len + 1)))
        seeds.append(list(song[start:start + seq_len]))
    return seeds


def plan_new(tokens: TokenData, preset: str, changes: dict) -> TrainingState:
    """A fresh training state: the preset with the asked changes, a song split and a vocabulary."""
    if preset not in PRESETS:
        raise PianoComposerError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    config_changes, option_changes = _split_changes(changes)
    try:
        config = replace(PRESETS[preset], **config_changes)
        options = TrainOptions(**option_changes)
    except (TypeError, ValueError) as exc:
        raise PianoComposerError(f"bad training settings: {exc}") from None
    return _plan(tokens, config, options, preset, None)


def _plan(tokens: TokenData, config: ModelConfig, options: TrainOptions, preset: str | None,
          vocabulary: Vocabulary | None) -> TrainingState:
    """A fresh state for the songs: their split, seed windows and tempo, in the vocabulary given (None: the
    encoding's full token set where it has one, else the songs' own tokens)."""
    train_idx, val_idx = split_songs(len(tokens.songs), options.val_split, options.seed)
    split = {"train": [tokens.songs[i].source for i in train_idx], "val": [tokens.songs[i].source for i in val_idx]}
    train_songs = [tokens.songs[i].tokens for i in train_idx]
    encoding = get_encoding(tokens.encoding, tokens.encoding_params)
    vocabulary = vocabulary or Vocabulary(encoding.full_vocabulary() or
                                          (t for s in transpose_songs(train_songs, encoding, options.semitones)
                                           + [tokens.songs[i].tokens for i in val_idx] for t in s))
    seeds = _pick_seeds(train_songs, config.seq_len, np.random.default_rng([options.seed, 1]))
    tempos = [tokens.songs[i].qpm for i in train_idx if tokens.songs[i].qpm]
    qpm = round(float(np.median(tempos)), 3) if tempos else None
    return TrainingState(tokens.encoding, tokens.encoding_params, vocabulary, config, options, preset, split, seeds,
                         qpm)


def plan_from(base: Bundle, tokens: TokenData, changes: dict, where: Path) -> TrainingState:
    """A fine-tune of the base bundle on these songs: its encoding, vocabulary and network; a new song split, the
    FINE_TUNING learning rate and the asked changes (the network's shape is the base's and cannot change)."""
    shipped = base.path.resolve() == shipped_bundle(base.path.name).resolve()  # a shipped name finds it anywhere
    origin = base.path.name if shipped else str(base.path)
    if (base.encoding_name, base.meta.get("encoding_params", {})) != (tokens.encoding, tokens.encoding_params):
        raise PianoComposerError(
            f"{where}: the data is {tokens.encoding!r} {tokens.encoding_params}, the base bundle {origin} reads "
            f"{base.encoding_name!r} {base.meta.get('encoding_params', {})}; extract it with `pianocomposer extract "
            f"--like {origin}`")
    for song in tokens.songs:
        unknown = next((t for t in song.tokens if t not in base.vocabulary), None)
        if unknown is not None:
            raise PianoComposerError(f"{song.source}: token {unknown!r} is not in the vocabulary of {base.path}")
    config_changes, option_changes = _split_changes(changes)
    fixed = sorted(set(config_changes) - FINE_TUNABLE)
    if fixed:
        raise PianoComposerError(f"--from keeps the base's network: {', '.join(fixed)} cannot change "
                                 f"(train a new bundle to change it)")
    try:
        config = replace(base.config, **{"learning_rate": base.config.learning_rate * FINE_TUNING["learning_rate"],
                                         **config_changes})
        options = TrainOptions(**option_changes)
    except (TypeError, ValueError) as exc:
        raise PianoComposerError(f"bad training settings: {exc}") from None
    state = _plan(tokens, config, options, None, base.vocabulary)
    training = base.meta.get("training", {})
    state.base = {"bundle": origin, "name": base.path.name,
                  "epochs": training.get("epochs"), "best_val_loss": training.get("best_val_loss")}
    return state


def plan_resume(meta: dict, tokens: TokenData, changes: dict, where: Path) -> TrainingState:
    """The bundle's state; RESUMABLE changes applied, any other setting that differs from the bundle's refused."""
    state = TrainingState.from_meta(meta)
    if (state.encoding, state.encoding_params) != (tokens.encoding, tokens.encoding_params):
        raise PianoComposerError(f"{where}: the bundle uses encoding {state.encoding!r} {state.encoding_params}, "
                                 f"the data {tokens.encoding!r} {tokens.encoding_params}")
    changes = dict(changes)
    if changes.pop("preset", state.preset) != state.preset:
        raise PianoComposerError(f"{where}: the bundle was trained with preset {state.preset!r}; resuming keeps it")
    config_changes, option_changes = _split_changes(changes)
    for name, value in {**config_changes, **option_changes}.items():
        current = getattr(state.options if name in OPTION_FIELDS else state.config, name)
        if isinstance(current, tuple):
            value = tuple(value)
        if name not in RESUMABLE and value != current:
            raise PianoComposerError(f"{where}: the bundle was trained with {name}={current!r}; resuming keeps "
                                     f"it (asked for {value!r}); train a new bundle to change it")
    state.config = replace(state.config, **{k: v for k, v in config_changes.items() if k in RESUMABLE})
    names = set(state.split["train"]) | set(state.split["val"])
    missing = sorted(names - {s.source for s in tokens.songs})
    if missing:
        raise PianoComposerError(f"{where}: songs the bundle was trained on are missing from the data "
                                 f"(e.g. {missing[0]}); resuming needs the same data")
    return state


def prepare_data(tokens: TokenData, state: TrainingState, encoding: Encoding, where: Path):
    """Training songs as id arrays (transposed as the options say) and the validation windows (or None)."""
    by_name = {s.source: s.tokens for s in tokens.songs}
    # each training song's copies (one per transposition that stays in range): every copy is trained each epoch,
    # or with random_transpose one copy drawn per epoch
    copies = [transpose_songs([by_name[n]], encoding, state.options.semitones) for n in state.split["train"]]
    val_songs = [by_name[n] for n in state.split["val"]]
    unknown = {t for group in copies for s in group for t in s} | {t for s in val_songs for t in s}
    unknown -= set(state.vocabulary.tokens)
    if unknown:
        raise PianoComposerError(f"{where}: {len(unknown)} tokens are not in the bundle's vocabulary "
                                 f"(e.g. {sorted(unknown)[0]!r}); train a new bundle instead of resuming")
    train_ids = [[state.vocabulary.encode(s) for s in group] for group in copies if group]
    if not state.options.random_transpose:
        train_ids = [[ids] for group in train_ids for ids in group]
    x, y, w = make_windows([state.vocabulary.encode(s) for s in val_songs], state.config.seq_len,
                           multiple_of=state.config.batch_size)
    return train_ids, ((x, y, w) if len(x) else None)


def epoch_windows(train_ids: list[list[np.ndarray]], config: ModelConfig, options: TrainOptions, epoch: int):
    """One epoch's inputs, targets and weights in training order; a pure function of (seed, epoch).

    train_ids holds each song's copies: one is drawn per epoch where there are several (random_transpose)."""
    rng = np.random.default_rng([options.seed, 2, epoch])
    pick = np.random.default_rng([options.seed, 4, epoch])
    songs = [group[int(pick.integers(len(group)))] if len(group) > 1 else group[0] for group in train_ids]
    x, y, w = make_windows(songs, config.seq_len, int(rng.integers(config.seq_len)), options.objective,
                           multiple_of=config.batch_size)
    order = rng.permutation(len(x))
    return x[order], y[order], w[order]


def _seed_dropout(model, seed: int, epoch: int) -> None:
    """Restart every dropout layer's random stream from (seed, epoch), so a resumed epoch drops what it would have."""
    rng = np.random.default_rng([seed, 3, epoch])
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            generator.state.assign(np.array([rng.integers(1, 2**30), 0], dtype=generator.state.dtype))


def compile_model(model, config: ModelConfig, jit_compile: bool | None = None) -> None:
    """Compile with the config's optimizer and clipping, the padding-aware loss and accuracy, as training does."""
    import keras

    if jit_compile is None:
        # XLA made the TensorFlow LSTM 2.6x slower on CPU (BENCHMARKS.md) and it cannot use cuDNN's kernel;
        # JAX always compiles, and torch decides for itself.
        jit_compile = False if keras.backend.backend() == "tensorflow" else "auto"
    optimizers = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    model.compile(optimizer=optimizers[config.optimizer](learning_rate=config.learning_rate, clipnorm=config.clipnorm),
                  loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)


def _progress_callback(total_epochs: int, batches: int, tokens_per_batch: float, enabled: bool):
    """A Keras callback: a tqdm bar per epoch showing supervised tokens/s, and the epoch's training seconds."""
    import keras
    from tqdm import tqdm

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.bar = tqdm(total=batches, desc=f"epoch {epoch + 1}/{total_epochs}", unit="batch",
                            disable=not enabled or None, leave=False)
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
    """Turns Ctrl-C / SIGTERM and a wall-clock budget into a clean stop after the current batch, on every process."""

    def __init__(self, deadline: float | None, placement: Placement):
        self.deadline, self.placement, self.signal_name = deadline, placement, None

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

    def agreed(self, reason: str | None = None) -> str | None:
        """Why training stops now (a signal, the spent budget, else the given reason), as all processes agree."""
        if self.signal_name:
            reason = f"interrupted by {self.signal_name}"
        elif self.deadline and time.monotonic() > self.deadline:
            reason = "time budget spent"
        return self.placement.agree(reason)

    def callback(self):
        """A Keras callback that stops training when a signal arrived or the budget is spent on any process."""
        import keras

        requests = self

        class Stopper(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if requests.agreed():
                    self.model.stop_training = True

        return Stopper()


def run_epochs(model, state: TrainingState, train_ids: list[list[np.ndarray]], validation, epochs: int,
               callbacks: list, progress: bool, placement: Placement) -> Iterator[dict]:
    """Train epochs one at a time from where the state stands; yield each epoch's history row."""
    config, options = state.config, state.options
    total = len(state.history) + epochs
    if validation is not None:
        validation = placement.local_share(validation, config.batch_size)[0]
    for epoch in range(len(state.history), total):
        x, y, w = epoch_windows(train_ids, config, options, epoch)
        _seed_dropout(model, options.seed, epoch)
        batches = math.ceil(len(x) / config.batch_size)
        bar = _progress_callback(total, batches, float(w.sum()) / max(batches, 1), progress)
        (x_local, y_local, w_local), batch_size = placement.local_share((x, y, w), config.batch_size)
        fit = model.fit(x_local, y_local, sample_weight=w_local, batch_size=batch_size, epochs=epoch + 1,
                        initial_epoch=epoch, validation_data=validation, shuffle=False, verbose=0,
                        callbacks=[bar, *callbacks])
        logs = {k: float(v[-1]) for k, v in fit.history.items()}
        supervised = float(w[: bar.done * config.batch_size].sum())
        yield {"epoch": epoch + 1, "loss": logs["loss"], "accuracy": logs.get("accuracy"),
               "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
               "val_perplexity": math.exp(logs["val_loss"]) if "val_loss" in logs else None,
               "seconds": round(bar.train_seconds, 3), "supervised": supervised,
               "tokens_per_s": round(supervised / max(bar.train_seconds, 1e-9), 1), "partial": bar.done < batches}


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


class BundleWriter:
    """Writes the bundle after each epoch: the best model when it improved, the last model, metadata, history."""

    def __init__(self, folder: Path, placement: Placement, float16: bool):
        self.folder, self.placement = folder, placement
        self.dtype = "float16" if float16 else "float32"

    def write(self, model, state: TrainingState, improved: bool) -> None:
        """Save what the epoch changed; only the writing process touches the files."""
        if not self.placement.is_writer:
            return
        with self.placement.alone():
            self._write(model, state, improved)

    def _write(self, model, state: TrainingState, improved: bool) -> None:
        keras = import_keras()
        if improved:
            # The trained weights in a fresh uncompiled model of the stored dtype: small, no optimizer state.
            copy = build_model(state.config, len(state.vocabulary), dtype=self.dtype, initialize=False)
            copy.set_weights([w.astype(self.dtype) for w in model.get_weights()])
            save_model(copy, self.folder / BEST_MODEL)
        # last.keras and bundle.json must agree for --resume: the new last model goes to a pending name, bundle.json
        # records its epoch, then the rename commits it. A kill in between leaves a pair _load_last_model resolves.
        save_model(model, self.folder / PENDING_LAST_MODEL)
        save_meta(self.folder, state.to_meta(keras=keras.__version__, backend=keras.backend.backend(),
                                             weights_dtype=self.dtype))
        os.replace(self.folder / PENDING_LAST_MODEL, self.folder / LAST_MODEL)
        _write_history(self.folder, state.history)


def _load_last_model(weights: Path, state: TrainingState):
    """last.keras (or the pending one a kill left behind) with its optimizer, matching the state's step count."""
    model = load_bundle(weights, LAST_MODEL, compile=True).model
    steps = int(model.optimizer.iterations.numpy())
    if state.steps is not None and steps != state.steps and (weights / PENDING_LAST_MODEL).is_file():
        model = load_bundle(weights, PENDING_LAST_MODEL, compile=True).model  # killed after bundle.json's write
        steps = int(model.optimizer.iterations.numpy())
    if state.steps is not None and steps != state.steps:
        raise PianoComposerError(f"{weights / LAST_MODEL}: holds {steps} optimizer steps but bundle.json records "
                                 f"{state.steps}; the files do not belong together")
    model.optimizer.learning_rate.assign(state.config.learning_rate)
    return model


def _not_retracing(record: logging.LogRecord) -> bool:
    return "retracing" not in record.getMessage()


def train(data: Path, weights: Path, *, resume: bool = False, epochs: int = 50, preset: str | None = None,
          patience: int | None = None, max_minutes: float | None = None, jit_compile: bool | None = None,
          tensorboard: bool = False, float16: bool = False, progress: bool = True,
          placement: Placement | None = None, base: Path | str | None = None, **changes) -> TrainResult:
    """Train on data/tokens.json and keep the best (validation loss) and last models in the weights folder.

    `changes` are ModelConfig and TrainOptions fields (e.g. cell="gru", batch_size=32, transpose=(-3, 3));
    a new run applies them to the preset, a resumed run accepts only RESUMABLE ones that differ from the bundle.
    `base` (a bundle folder or a shipped name) starts a fine-tune from that bundle's network (plan_from).
    """
    weights = Path(weights)
    placement = placement or default_placement()
    if epochs < 1:
        raise PianoComposerError(f"epochs must be at least 1 (got {epochs})")
    if base is not None and (resume or preset):
        raise PianoComposerError("--from starts a new fine-tune from a bundle; it takes neither --resume (which "
                                 "continues the bundle in --weights) nor --preset (the network is the base's)")
    base_bundle = read_bundle(resolve_weights(base)) if base is not None else None
    if base_bundle is not None and patience is None:
        patience = FINE_TUNING["patience"]
    keras = import_keras()  # first: a core install without the [train] extra is told so before any work
    changes = {k: v for k, v in changes.items() if v is not None}
    tokens = load_tokens(data)
    # One fit() per epoch (to seed each epoch's dropout) retraces TensorFlow's step function once per epoch: cheap
    # beside an epoch, and not worth TensorFlow's warning to users.
    logging.getLogger("tensorflow").addFilter(_not_retracing)
    if resume:
        meta = read_meta(weights)
        state = plan_resume(meta, tokens, {**changes, **({"preset": preset} if preset else {})}, weights)
        float16 = float16 or meta.get("weights_dtype") == "float16"  # the bundle's storage, as its other settings
    elif base_bundle is not None:
        state = plan_from(base_bundle, tokens, changes, Path(data))
    else:
        state = plan_new(tokens, preset or get_encoding(tokens.encoding, tokens.encoding_params).default_preset,
                         changes)
    encoding = get_encoding(state.encoding, state.encoding_params)
    train_ids, validation = prepare_data(tokens, state, encoding, Path(data))

    if state.config.batch_size % placement.replicas:
        raise PianoComposerError(f"batch size {state.config.batch_size} does not split over {placement.replicas} "
                                 "devices; choose a multiple of the device count")
    writer = BundleWriter(weights, placement, float16)
    best_loss, best_epoch = state.best()
    stopped, run_tokens, run_seconds = "completed", 0.0, 0.0
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    with placement.scope(), _StopRequests(deadline, placement) as stop:
        if resume:
            model = _load_last_model(weights, state)
        else:
            keras.utils.set_random_seed(state.options.seed)
            if state.options.mixed_precision:
                keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
            try:
                model = build_model(state.config, len(state.vocabulary))
                compile_model(model, state.config, jit_compile)
            finally:
                keras.mixed_precision.set_dtype_policy("float32")
            if base_bundle is not None:
                for name, arrays in base_bundle.layer_weights.items():
                    layer = model.get_layer(name)
                    layer.set_weights([a.astype(w.dtype) for a, w in zip(arrays, layer.get_weights(), strict=True)])
        callbacks = [stop.callback()]
        if tensorboard and placement.is_writer:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(weights / "tensorboard")))
        for row in run_epochs(model, state, train_ids, validation, epochs, callbacks, progress, placement):
            run_tokens, run_seconds = run_tokens + row.pop("supervised"), run_seconds + row["seconds"]
            state.history.append(row)
            state.steps = int(model.optimizer.iterations.numpy())
            improved = row[state.score_key] is not None and row[state.score_key] < best_loss
            if improved:
                best_loss, best_epoch = row[state.score_key], row["epoch"]
            writer.write(model, state, improved)
            if progress:
                from tqdm import tqdm

                val = f", val loss {row['val_loss']:.3f}" if row["val_loss"] is not None else ""
                tqdm.write(f"epoch {row['epoch']}: loss {row['loss']:.3f}{val}, {row['tokens_per_s']:,.0f} "
                           f"tokens/s; saved{' (best)' if improved else ''}", file=sys.stderr)
            patience_spent = patience and row["epoch"] - best_epoch >= patience
            reason = stop.agreed(f"no improvement in {patience} epochs" if patience_spent else None)
            if reason:
                stopped = reason
                break
    return TrainResult(weights, len(state.history), best_epoch, best_loss if validation else None, stopped,
                       run_tokens / max(run_seconds, 1e-9), state.history)
