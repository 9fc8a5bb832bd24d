"""Training on several devices and processes: they train as one device does at the same global batch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import read_meta
from pianocomposer.learning.devices import Placement, placement_for
from tests.conftest import REPO

# Runs in a fresh process: the device count must be set before the backend starts. The quick preset at a global
# batch of 8 (several batches an epoch); patience 1 stops it at epoch 2, where the validation loss rises.
SCRIPT = """
import json, sys
import numpy as np
from pianocomposer.learning.bundle import LAST_MODEL, load_bundle
from pianocomposer.learning.devices import placement_for
from pianocomposer.learning.train import train
data, out = sys.argv[1], sys.argv[2]
placement = placement_for("all")
runs = {name: train(data, out + "/" + name, preset="quick", epochs=3, batch_size=8, patience=1, progress=False,
                    placement=where) for name, where in (("one", None), ("two", placement))}
a, b = (load_bundle(out + "/" + name, LAST_MODEL).model.get_weights() for name in runs)
print(json.dumps({"replicas": placement.replicas, "max_weight_diff": max(float(np.abs(x - y).max())
                                                                         for x, y in zip(a, b)),
                  **{name: {"stopped": run.stopped, "history": run.history} for name, run in runs.items()}}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_jax_training(data_dir, weights, *args: str, **env: str) -> subprocess.Popen:
    """`train` of the quick preset at a global batch of 8 (several batches an epoch), one CPU device a process."""
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.Popen([sys.executable, "-m", "pianocomposer", "train", "--data", str(data_dir), "--weights",
                             str(weights), "--preset", "quick", "--batch-size", "8", "--epochs", "3", "--json",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**environ, "KERAS_BACKEND": "jax", **env})


def _same_history(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for key in ("loss", "val_loss", "accuracy"):
        assert [h[key] for h in a] == pytest.approx([h[key] for h in b], rel=1e-4)


@pytest.mark.integration
def test_two_devices_and_two_processes_train_as_one_device_does_and_stop_together(data_dir, tmp_path):
    # one process with two devices, and one device alone (the reference); at the same time two processes of one
    # device each, where only process 1 has patience: it asks to stop at epoch 2, and process 0 must agree
    devices = subprocess.Popen([sys.executable, "-c", SCRIPT, str(data_dir), str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, "KERAS_BACKEND": "jax",
                                    "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    cluster = _cluster()
    procs = [devices,
             _start_jax_training(data_dir, tmp_path / "p0", "--devices", "all", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="0"),
             _start_jax_training(data_dir, tmp_path / "p1", "--devices", "all", "--patience", "1", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="1")]
    try:
        outs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    result = json.loads(outs[0][0].strip().splitlines()[-1])
    p0, p1 = (json.loads(out[out.index("{"):]) for out, _ in outs[1:])  # gloo prints a line to stdout first
    # one program over both devices: the same loss curve, dropout masks and weights, up to float rounding
    assert result["replicas"] == 2 and result["max_weight_diff"] < 1e-3
    one = result["one"]
    assert one["stopped"] == result["two"]["stopped"] == "no improvement in 1 epochs" and len(one["history"]) == 2
    _same_history(result["two"]["history"], one["history"])
    assert p0["stopped"] == p1["stopped"] == one["stopped"] and p0["epochs"] == p1["epochs"] == 2
    assert not (tmp_path / "p1").exists()  # only process 0 writes
    together = read_meta(tmp_path / "p0")["training"]
    assert together["steps"] == read_meta(tmp_path / "one")["training"]["steps"] > 2
    _same_history(together["history"], one["history"])


def test_one_device_is_the_default_and_other_backends_are_one_line():
    assert placement_for(None) == placement_for("1") == Placement()
    with pytest.raises(PianoComposerError, match="runs on the jax backend"):
        placement_for("all")  # the tests run on TensorFlow


def _cluster() -> dict[str, str]:
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_free_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}


def _report(proc: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert "{" in out, err[-3000:]
    return {**json.loads(out[out.index("{"):]), "returncode": proc.returncode}  # gloo prints a line to stdout first


@pytest.mark.integration
def test_a_time_budget_spent_on_one_process_stops_both_after_the_same_batch(data_dir, tmp_path):
    cluster = _cluster()
    procs = [_start_jax_training(data_dir, tmp_path / "p0", "--devices", "all", "--epochs", "50", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="0"),
             _start_jax_training(data_dir, tmp_path / "p1", "--devices", "all", "--epochs", "50", "--max-minutes",
                                 "0.0001", **cluster, KERAS_DISTRIBUTION_PROCESS_ID="1")]
    try:
        p0, p1 = (_report(proc) for proc in procs)
    finally:
        for proc in procs:
            proc.kill()
    assert p0["stopped"] == p1["stopped"] == "time budget spent" and p0["epochs"] == p1["epochs"] == 1
    history = read_meta(tmp_path / "p0")["training"]
    assert history["history"][0]["partial"] and history["steps"] == 1  # both stopped after the first batch


@pytest.mark.integration
def test_sigterm_to_one_process_stops_both_after_the_same_batch(data_dir, tmp_path):
    cluster = _cluster()
    procs = [_start_jax_training(data_dir, tmp_path / "p0", "--devices", "all", "--epochs", "500", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="0"),
             _start_jax_training(data_dir, tmp_path / "p1", "--devices", "all", "--epochs", "500", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="1")]
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "p0" / "bundle.json").is_file():  # process 0 wrote its first epoch: both train
            assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].stderr.read()[-3000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)
        p0, p1 = (_report(proc) for proc in procs)
    finally:
        for proc in procs:
            proc.kill()
    assert p0["stopped"] == p1["stopped"] == "interrupted by SIGTERM"
    assert p0["returncode"] == p1["returncode"] == 130 and p0["epochs"] == p1["epochs"] < 500
    assert read_meta(tmp_path / "p0")["training"]["epochs"] == p0["epochs"]  # process 0 wrote where both stopped
