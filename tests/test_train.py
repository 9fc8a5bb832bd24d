"""Stage 2: training, resume, interruption, objectives and Keras backends."""

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pianocomposer._util import import_keras
from pianocomposer.bundle import LAST_MODEL, load_bundle
from pianocomposer.config import PRESETS
from pianocomposer.model import build_model
from pianocomposer.train import train
from tests.conftest import REPO, run_cli


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


def test_last_objective_and_transposition_train(data_dir, tmp_path):
    result = train(data_dir, tmp_path / "w", preset="quick", epochs=1, objective="last", transpose="-1..1",
                   progress=False)
    vocabulary = load_bundle(tmp_path / "w").vocabulary
    assert "C#4" in vocabulary and "B3" in vocabulary  # C4 moved up and down a semitone
    assert result.tokens_per_s > 0


def _start_training(data_dir, weights):
    return subprocess.Popen([sys.executable, "-m", "pianocomposer", "train", "--data", str(data_dir), "--weights",
                             str(weights), "--preset", "quick", "--epochs", "10000"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training wrote no bundle in time"
        time.sleep(0.2)


def test_ctrl_c_saves_a_consistent_bundle_and_says_so(data_dir, tmp_path):
    weights = tmp_path / "w"
    proc = _start_training(data_dir, weights)
    _wait_for(weights / "bundle.json", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in out and "Traceback" not in err
    meta = json.loads((weights / "bundle.json").read_text())
    assert load_bundle(weights, LAST_MODEL, compile=True).model.optimizer.iterations.numpy() > 0
    assert meta["training"]["epochs"] == len(meta["training"]["history"])


def test_sigkill_mid_training_loses_at_most_an_epoch(data_dir, tmp_path):
    weights = tmp_path / "w"
    proc = _start_training(data_dir, weights)
    _wait_for(weights / "bundle.json", proc)
    time.sleep(1.5)
    proc.kill()
    proc.wait()
    epochs = json.loads((weights / "bundle.json").read_text())["training"]["epochs"]
    load_bundle(weights)  # the best model still loads
    result = train(data_dir, weights, epochs=1, resume=True, progress=False)
    assert result.epochs == epochs + 1


def test_lstm_layers_stay_eligible_for_the_cudnn_kernel():
    """Every backend takes cuDNN's fused LSTM on a GPU only for these settings, else it loops step by step."""
    keras = import_keras()
    model = build_model(PRESETS["paper"], 50)
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert len(lstms) == PRESETS["paper"].lstm_layers
    for layer in lstms:
        assert layer.cell.activation is keras.activations.tanh
        assert layer.cell.recurrent_activation is keras.activations.sigmoid
        assert layer.cell.use_bias and layer.cell.recurrent_dropout == 0
        assert not layer.unroll and layer.use_cudnn in ("auto", True)
    assert not model.get_layer("embedding").mask_zero  # a mask sends torch and jax to the generic loop


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
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
