"""Training on several devices: two local CPU devices train as one device does at the same global batch."""

import json
import os
import subprocess
import sys

import pytest

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
