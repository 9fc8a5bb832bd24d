"""Stage 2: training, resume, interruption, objectives and Keras backends."""

import contextlib
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest

from pianocomposer._util import import_keras
from pianocomposer.config import PRESETS
from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import LAST_MODEL, PENDING_LAST_MODEL, load_bundle, read_meta
from pianocomposer.learning.devices import Placement
from pianocomposer.learning.model import build_model
from pianocomposer.learning.train import TrainingState, epoch_windows, plan_new, prepare_data, train
from pianocomposer.reading.tokens import load_tokens
from tests.conftest import REPO, TINY, run_cli, write_song


def test_tiny_training_loss_falls_and_bundle_is_complete(bundle_dir):
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    history = meta["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(h["val_loss"] is not None and h["val_perplexity"] > 1 for h in history)
    for name in ("model.keras", "last.keras", "history.csv", "loss.png"):
        assert (bundle_dir / name).stat().st_size > 0
    assert set(meta["split"]["train"]).isdisjoint(meta["split"]["val"])
    bundle = load_bundle(bundle_dir)
    assert bundle.model.get_layer("logits").units == len(bundle.vocabulary)


def test_resume_continues_epochs_and_history(bundle_dir, data_dir, tmp_path):
    weights = tmp_path / "w"
    shutil.copytree(bundle_dir, weights)
    before = json.loads((weights / "bundle.json").read_text())["training"]["history"]
    result = train(data_dir, weights, epochs=2, resume=True, progress=False)
    after = json.loads((weights / "bundle.json").read_text())["training"]["history"]
    assert result.epochs == 5 and [h["epoch"] for h in after] == [1, 2, 3, 4, 5]
    assert after[:3] == before
    assert (weights / "history.csv").read_text().count("\n") == 6


def test_last_objective_supervises_only_each_windows_last_token(data_dir, tmp_path):
    result = train(data_dir, tmp_path / "w", preset="quick", epochs=1, objective="last", progress=False, **TINY)
    state = TrainingState.from_meta(read_meta(tmp_path / "w"))
    assert state.options.objective == "last" and result.tokens_per_s > 0
    train_ids, _ = prepare_data(load_tokens(data_dir), state, get_encoding("cpc"), data_dir)
    _, _, w = epoch_windows(train_ids, state.config, state.options, 0)
    assert set(w.sum(axis=1).tolist()) <= {0.0, 1.0}  # padding rows have none
    # a window ending at every position a song has past the first full window
    assert w.sum() == sum(max(1, len(ids) - state.config.seq_len) for (ids,) in train_ids)


def test_transposition_trains_on_every_shifted_copy(data_dir):
    tokens = load_tokens(data_dir)
    plain = plan_new(tokens, "quick", {})
    moved = plan_new(tokens, "quick", {"transpose": (-1, 1)})
    assert moved.split == plain.split
    # C#4 and F#4 are in no phrase: only a semitone's shift of C4/D4 and F4/G4 brings them
    assert not {"C#4", "F#4"} & set(plain.vocabulary.tokens)
    assert {"C#4", "F#4", "B3"} <= set(moved.vocabulary.tokens)
    cpc = get_encoding("cpc")
    songs, _ = prepare_data(tokens, plain, cpc, data_dir)
    shifted, _ = prepare_data(tokens, moved, cpc, data_dir)
    assert len(shifted) == 3 * len(songs) and {len(group) for group in shifted} == {1}
    original = plain.vocabulary.decode(songs[0][0])
    assert moved.vocabulary.decode(shifted[0][0]) == [cpc.transpose(t, -1) for t in original]
    assert moved.vocabulary.decode(shifted[1][0]) == original


def test_random_transposition_trains_each_song_once_an_epoch_in_a_drawn_key(data_dir):
    tokens = load_tokens(data_dir)
    every = plan_new(tokens, "quick", {"transpose": (-2, 2)})
    drawn = plan_new(tokens, "quick", {"transpose": (-2, 2), "random_transpose": True})
    assert drawn.vocabulary.tokens == every.vocabulary.tokens  # every key the draw can reach
    cpc = get_encoding("cpc")
    copies, _ = prepare_data(tokens, drawn, cpc, data_dir)
    assert len(copies) == len(drawn.split["train"]) and {len(group) for group in copies} == {5}
    per_epoch = [epoch_windows(copies, drawn.config, drawn.options, epoch)[2].sum() for epoch in range(4)]
    plain = epoch_windows([[g[2]] for g in copies], drawn.config, drawn.options, 0)[2].sum()  # untransposed
    assert per_epoch == [plain] * 4  # one copy of each song an epoch, not five
    # the keys drawn differ between epochs and between songs, and repeat for the same epoch (resume is exact)
    x0, x1 = epoch_windows(copies, drawn.config, drawn.options, 0)[0], epoch_windows(copies, drawn.config,
                                                                                      drawn.options, 1)[0]
    assert not np.array_equal(x0, x1)
    assert np.array_equal(x0, epoch_windows(copies, drawn.config, drawn.options, 0)[0])
    seen = set()
    for epoch in range(8):
        x, _, w = epoch_windows(copies, drawn.config, drawn.options, epoch)
        seen |= set(x[w > 0].tolist())
    assert seen == {int(i) for g in copies for ids in g for i in ids[:-1]}  # every key is drawn in time


def test_two_epochs_plus_a_resumed_two_train_exactly_as_four_and_keep_their_storage(data_dir, tmp_path):
    straight = train(data_dir, tmp_path / "four", preset="quick", epochs=4, val_split=0.2, progress=False, **TINY)
    train(data_dir, tmp_path / "two", preset="quick", epochs=2, val_split=0.2, progress=False, float16=True, **TINY)
    resumed = train(data_dir, tmp_path / "two", epochs=2, resume=True, progress=False)
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-5)
    assert read_meta(tmp_path / "two")["weights_dtype"] == "float16"  # the bundle's storage kept on resume
    a = load_bundle(tmp_path / "four", LAST_MODEL).model.get_weights()
    b = load_bundle(tmp_path / "two", LAST_MODEL).model.get_weights()
    assert all(np.allclose(x, y, atol=1e-5) for x, y in zip(a, b, strict=True))


def test_resume_refuses_settings_that_differ_from_the_bundle(bundle_dir, data_dir, tmp_path):
    weights = tmp_path / "w"
    shutil.copytree(bundle_dir, weights)
    for changes, name in [({"batch_size": 8}, "batch_size"), ({"transpose": (-2, 2)}, "transpose"),
                          ({"val_split": 0.5}, "val_split"), ({"cell": "gru"}, "cell"),
                          ({"preset": "paper"}, "preset"), ({"objective": "last"}, "objective")]:
        with pytest.raises(PianoComposerError, match=name):
            train(data_dir, weights, epochs=1, resume=True, progress=False, **changes)
    same = train(data_dir, weights, epochs=1, resume=True, progress=False, batch_size=32, learning_rate=1e-4,
                 transpose=(0, 0))
    meta = read_meta(weights)
    assert same.epochs == 4 and meta["config"]["learning_rate"] == 1e-4
    proc = run_cli("train", "--data", data_dir, "--weights", weights, "--resume", "--epochs", "1", "--val-split", "0.5")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "val_split" in proc.stderr


def test_a_kill_between_the_last_model_and_bundle_json_still_resumes(bundle_dir, data_dir, tmp_path):
    weights = tmp_path / "w"
    shutil.copytree(bundle_dir, weights)
    before = (weights / LAST_MODEL).read_bytes()
    train(data_dir, weights, epochs=1, resume=True, progress=False)
    # the state a SIGKILL leaves after bundle.json recorded epoch 4 but before last.keras was renamed into place
    (weights / LAST_MODEL).rename(weights / PENDING_LAST_MODEL)
    (weights / LAST_MODEL).write_bytes(before)
    assert train(data_dir, weights, epochs=1, resume=True, progress=False).epochs == 5
    assert not (weights / PENDING_LAST_MODEL).exists()


def test_placement_owns_the_model_scope_and_who_writes(data_dir, tmp_path):
    entered = []

    @dataclass(frozen=True)
    class Reader(Placement):
        def scope(self):
            entered.append(self.name)
            return contextlib.nullcontext()

    result = train(data_dir, tmp_path / "w", preset="quick", epochs=1, progress=False,
                   placement=Reader(name="reader", is_writer=False))
    assert entered == ["reader"] and result.epochs == 1
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())


def test_config_reaches_the_network(data_dir, tmp_path):
    train(data_dir, tmp_path / "w", preset="quick", epochs=1, progress=False, cell="gru", clipnorm=0.5,
          embedding_init_stddev=0.01, rnn_layers=3)
    bundle = load_bundle(tmp_path / "w", LAST_MODEL, compile=True)
    assert bundle.config.cell == "gru" and bundle.meta["config"]["clipnorm"] == 0.5
    assert [layer.name for layer in bundle.model.layers if "gru" in layer.name] == ["gru_1", "gru_2", "gru_3"]
    assert bundle.model.optimizer.clipnorm == 0.5
    fresh = build_model(bundle.config, len(bundle.vocabulary))
    assert np.asarray(fresh.get_layer("embedding").embeddings).std() == pytest.approx(0.01, rel=0.2)


def _start_training(data_dir, weights):
    return subprocess.Popen([sys.executable, "-m", "pianocomposer", "train", "--data", str(data_dir), "--weights",
                             str(weights), "--preset", "quick", "--epochs", "10000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_saved(weights):
    try:
        return read_meta(weights)["training"]["epochs"]
    except PianoComposerError:
        return 0


def _wait_for_epochs(weights, proc, epochs, timeout=180):
    deadline = time.monotonic() + timeout
    while _epochs_saved(weights) < epochs:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training saved too few epochs in time"
        time.sleep(0.05)


def test_ctrl_c_saves_a_consistent_bundle_and_says_so(data_dir, tmp_path):
    weights = tmp_path / "w"
    proc = _start_training(data_dir, weights)
    _wait_for_epochs(weights, proc, 1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in out and "Traceback" not in err
    meta = read_meta(weights)
    assert meta["training"]["epochs"] == len(meta["training"]["history"])
    steps = load_bundle(weights, LAST_MODEL, compile=True).model.optimizer.iterations.numpy()
    assert steps == meta["training"]["steps"] > 0


def test_sigkill_loses_no_epoch_it_reported_saved(data_dir, tmp_path):
    weights = tmp_path / "w"
    proc = _start_training(data_dir, weights)
    # Epoch 3 in bundle.json means epoch 2's "saved" line was written: the line follows the history plot, which a
    # busy machine can take longer to draw than the wait below.
    _wait_for_epochs(weights, proc, 3)
    time.sleep(0.3)  # into the middle of a later epoch
    proc.kill()
    _, err = proc.communicate()
    reported = len(re.findall(r"^epoch \d+: .*; saved", err, re.MULTILINE))
    kept = _epochs_saved(weights)
    # every epoch reported saved is in the bundle; at most the one being written when killed is not reported
    assert reported >= 2 and reported <= kept <= reported + 1
    load_bundle(weights)  # the best model still loads
    assert train(data_dir, weights, epochs=1, resume=True, progress=False).epochs == kept + 1


def test_lstm_layers_stay_eligible_for_the_cudnn_kernel():
    """Every backend takes cuDNN's fused LSTM on a GPU only for these settings, else it loops step by step."""
    keras = import_keras()
    model = build_model(PRESETS["paper"], 50)
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert len(lstms) == PRESETS["paper"].rnn_layers
    for layer in lstms:
        assert layer.cell.activation is keras.activations.tanh
        assert layer.cell.recurrent_activation is keras.activations.sigmoid
        assert layer.cell.use_bias and layer.cell.recurrent_dropout == 0
        assert not layer.unroll and layer.use_cudnn in ("auto", True)
    assert not model.get_layer("embedding").mask_zero  # a mask sends torch and jax to the generic loop


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])  # the backends README promises; CI installs both
def test_every_keras_backend_trains_and_the_bundle_generates(backend, data_dir, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    weights = tmp_path / backend
    trained = run_cli("train", "--data", data_dir, "--weights", weights, "--preset", "quick", "--epochs", "1",
                      "--json", env={"KERAS_BACKEND": backend})
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["epochs"] == 1
    assert json.loads((weights / "bundle.json").read_text())["backend"] == backend
    made = run_cli("generate", "--weights", weights, "--length", "20", "--no-wav", "--out", tmp_path / "o", "--json")
    assert made.returncode == 0, made.stderr


@pytest.fixture(scope="module")
def timed_base(tmp_path_factory):
    """A tiny timed bundle trained one epoch on 12 chorales, as a base to fine-tune, and 6 other chorales."""
    from pianocomposer.reading.extract import extract

    root = tmp_path_factory.mktemp("base")
    songs = sorted((REPO / "chorales" / "heldout").glob("*.mid"))
    for name, chosen in (("base_midi", songs[:12]), ("user_midi", songs[12:18])):
        (root / name).mkdir()
        for path in chosen:
            shutil.copy(path, root / name / path.name)
    extract(root / "base_midi", root / "base_data", encoding="timed", progress=False)
    train(root / "base_data", root / "base", preset="quick", epochs=1, val_split=0.2, progress=False, **TINY)
    return root


def test_extract_like_a_bundle_takes_its_encoding_and_a_folder_fits_its_full_vocabulary(timed_base, tmp_path):
    proc = run_cli("extract", "--input", timed_base / "user_midi", "--out", tmp_path / "data", "--like",
                   timed_base / "base", "--json")
    assert proc.returncode == 0, proc.stderr
    base = read_meta(timed_base / "base")
    tokens = load_tokens(tmp_path / "data")
    assert (tokens.encoding, tokens.encoding_params) == (base["encoding"], base["encoding_params"])
    # the timed vocabulary is the encoding's whole token set, not the 12 training chorales' own
    assert base["vocabulary"] == get_encoding("timed").full_vocabulary() and len(base["vocabulary"]) == 248
    assert "Pitch_21" in base["vocabulary"] and "Pitch_21" not in {t for s in tokens.songs for t in s.tokens}
    proc = run_cli("extract", "--input", timed_base / "user_midi", "--out", tmp_path / "x", "--like",
                   timed_base / "base", "--encoding", "timed")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: --like takes the bundle's encoding and parameters; drop --encoding/--params"]


def test_train_from_a_base_starts_from_its_network_and_records_it(timed_base, tmp_path):
    from pianocomposer.reading.extract import extract

    extract(timed_base / "user_midi", tmp_path / "data", encoding="timed", progress=False)
    base = load_bundle(timed_base / "base")
    # at a vanishing learning rate the fine-tune's network is the base's: it started from its weights
    train(tmp_path / "data", tmp_path / "still", base=timed_base / "base", epochs=1, learning_rate=1e-12,
          progress=False)
    still = load_bundle(tmp_path / "still", LAST_MODEL).model
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(base.model.get_weights(), still.get_weights(),
                                                            strict=True))
    result = train(tmp_path / "data", tmp_path / "tuned", base=str(timed_base / "base"), epochs=2, progress=False)
    meta = read_meta(tmp_path / "tuned")
    assert meta["base"]["name"] == "base" and meta["base"]["epochs"] == 1
    assert meta["vocabulary"] == base.meta["vocabulary"] and meta["config"]["rnn_units"] == TINY["rnn_units"]
    assert meta["config"]["learning_rate"] == pytest.approx(0.3 * base.config.learning_rate)  # fine-tuning's
    assert set(meta["split"]["train"]) | set(meta["split"]["val"]) == {f"{p.name}" for p in
                                                                        (timed_base / "user_midi").iterdir()}
    assert result.epochs == 2 and len(meta["training"]["history"]) == 2
    # a resumed fine-tune keeps its base
    train(tmp_path / "data", tmp_path / "tuned", epochs=1, resume=True, progress=False)
    assert read_meta(tmp_path / "tuned")["base"] == meta["base"]
    # evaluate scores the base on the fine-tune's held-out songs beside it
    from pianocomposer.judging.evaluate import evaluate, score_likelihood
    from pianocomposer.learning.bundle import read_bundle

    report = evaluate(tmp_path / "tuned", tmp_path / "data", generate=0, realness=False, out=None, progress=False)
    heldout = [s.tokens for s in load_tokens(tmp_path / "data").songs if s.source in meta["split"]["val"]]
    alone = score_likelihood(read_bundle(timed_base / "base").step_model(), read_bundle(timed_base / "base"),
                             heldout, "validation split")
    assert report.base["name"] == "base" and report.base["likelihood"] == alone
    assert report.likelihood.full.cross_entropy != alone.full.cross_entropy
    assert "its base (base), nats/token" in "\n".join(report.table())


def test_train_from_refuses_data_it_cannot_read_in_one_line(timed_base, bundle_dir, data_dir, tmp_path):
    proc = run_cli("train", "--data", data_dir, "--weights", tmp_path / "w", "--from", timed_base / "base")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "the data is 'cpc'" in proc.stderr and "extract --like" in proc.stderr
    # a corpus-bound vocabulary (cpc): a token the base never saw is named with its song
    from pianocomposer.reading.extract import extract

    (tmp_path / "midi").mkdir()
    write_song(tmp_path / "midi" / "odd.mid", ["C4", "F#2", "E4"])
    extract(tmp_path / "midi", tmp_path / "odd", progress=False)
    proc = run_cli("train", "--data", tmp_path / "odd", "--weights", tmp_path / "w2", "--from", bundle_dir)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        f"error: odd.mid: token 'F#2' is not in the vocabulary of {bundle_dir}")
    proc = run_cli("train", "--data", tmp_path / "odd", "--weights", tmp_path / "w3", "--from", bundle_dir,
                   "--resume")
    assert proc.returncode == 1 and "--from starts a new fine-tune" in proc.stderr
