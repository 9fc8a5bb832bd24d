"""Training on several devices and processes: they train as one device does at the same global batch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pianocomposer.bundle import read_meta
from pianocomposer.devices import Placement, placement_for
from pianocomposer.errors import PianoComposerError
from tests.conftest import REPO

# Runs in a fresh process: the device count must be set before the backend starts.
SCRIPT = """
import json, sys
import numpy as np
from pianocomposer.bundle import LAST_MODEL, load_bundle
from pianocomposer.devices import placement_for
from pianocomposer.train import train
data, out = sys.argv[1], sys.argv[2]
placement = placement_for("all")
one = train(data, out + "/one", preset="quick", epochs=3, progress=False)
two = train(data, out + "/two", preset="quick", epochs=3, progress=False, placement=placement)
a, b = (load_bundle(out + name, LAST_MODEL).model.get_weights() for name in ("/one", "/two"))
print(json.dumps({"replicas": placement.replicas, "one": [h["loss"] for h in one.history],
                  "two": [h["loss"] for h in two.history],
                  "max_weight_diff": max(float(np.abs(x - y).max()) for x, y in zip(a, b))}))
"""


def test_two_jax_devices_train_as_one_device_does(data_dir, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(data_dir), str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # one program over both devices: the same loss curve, dropout masks and weights, up to float rounding
    assert result["two"] == pytest.approx(result["one"], rel=1e-4)
    assert result["max_weight_diff"] < 1e-3
    assert (tmp_path / "two" / "bundle.json").is_file()


def test_one_device_is_the_default_and_other_backends_are_one_line():
    assert placement_for(None) == placement_for("1") == Placement()
    with pytest.raises(PianoComposerError, match="runs on the jax backend"):
        placement_for("all")  # the tests run on TensorFlow


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


def test_two_processes_train_as_one_process_does_and_stop_together(data_dir, tmp_path):
    cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_free_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    # Only process 1 has patience: the val loss rises at epoch 2, so it asks to stop, and process 0 must agree.
    procs = [_start_jax_training(data_dir, tmp_path / "one", "--patience", "1"),
             _start_jax_training(data_dir, tmp_path / "p0", "--devices", "all", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="0"),
             _start_jax_training(data_dir, tmp_path / "p1", "--devices", "all", "--patience", "1", **cluster,
                                 KERAS_DISTRIBUTION_PROCESS_ID="1")]
    try:
        outs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    one, p0, p1 = (json.loads(out[out.index("{"):]) for out, _ in outs)  # gloo prints a line to stdout first
    assert one["stopped"] == "no improvement in 1 epochs" and one["epochs"] == 2
    assert p0["stopped"] == p1["stopped"] == one["stopped"] and p0["epochs"] == p1["epochs"] == 2
    assert not (tmp_path / "p1").exists()  # only process 0 writes
    single, together = (read_meta(tmp_path / name)["training"] for name in ("one", "p0"))
    assert together["steps"] == single["steps"] > 2
    for key in ("loss", "val_loss", "accuracy"):
        assert [h[key] for h in together["history"]] == pytest.approx([h[key] for h in single["history"]], rel=1e-4)


def _cluster() -> dict[str, str]:
    return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_free_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}


def _report(proc: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert "{" in out, err[-3000:]
    return {**json.loads(out[out.index("{"):]), "returncode": proc.returncode}  # gloo prints a line to stdout first


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
