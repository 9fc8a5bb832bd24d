"""Reading .keras weights without Keras: equal to Keras's own, and every tampered file refused in one line."""

import io
import json
import re
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import BEST_MODEL, load_bundle, read_bundle
from pianocomposer.learning.keras_file import read_layer_weights
from pianocomposer.learning.model import keras_layer_weights
from pianocomposer.learning.train import train
from tests.conftest import REPO, TINY


@pytest.fixture(scope="module")
def gru16(data_dir, tmp_path_factory):
    """A GRU bundle with float16 weights."""
    folder = tmp_path_factory.mktemp("gru16")
    train(data_dir, folder, preset="quick", epochs=1, cell="gru", float16=True, progress=False, **TINY)
    return folder


@pytest.mark.parametrize("which", ["bundle_dir", "gru16"])
def test_the_reader_returns_exactly_what_keras_loads(which, request):
    folder = request.getfixturevalue(which)
    mine = read_layer_weights(folder / BEST_MODEL)
    theirs = keras_layer_weights(load_bundle(folder).model)
    assert mine.keys() == theirs.keys()
    for name in mine:
        for a, b in zip(mine[name], theirs[name], strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_generate_runs_without_importing_keras_or_tensorflow(bundle_dir, tmp_path):
    code = ("import sys\nfrom pianocomposer.frontends.cli import main\n"
            f"sys.argv = ['pianocomposer', 'generate', '--weights', {str(bundle_dir)!r}, '--length', '30', "
            f"'--no-wav', '--out', {str(tmp_path)!r}, '--primer-tokens', 'C4 E4 G4']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert len(list(tmp_path.glob("*.mid"))) == 1


def rewrite(path, *, config=None, weights=None, metadata=None, extra=None):
    """Rewrite a .keras zip with some members changed (functions of the old content) or added."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name, change in (("config.json", config), ("model.weights.h5", weights), ("metadata.json", metadata)):
        if change is not None:
            members[name] = change(members[name])
    members.update(extra or {})
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def edit_config(change):
    def apply(data):
        config = json.loads(data)
        change(config)
        return json.dumps(config).encode()
    return apply


def edit_h5(change):
    def apply(data):
        buf = io.BytesIO(data)
        with h5py.File(buf, "r+") as f:
            change(f)
        return buf.getvalue()
    return apply


def layer(config, name):
    return next(entry for entry in config["config"]["layers"] if entry["name"] == name)


def lambda_layer(config):
    entry = layer(config, "dense")
    entry["class_name"] = "Lambda"
    entry["config"]["function"] = {"class_name": "__lambda__", "config": {"code": "print('owned')"}}


def wider_kernel(f):
    data = f["layers/dense/vars/0"][()]
    del f["layers/dense/vars/0"]
    f["layers/dense/vars/0"] = np.zeros((data.shape[0], data.shape[1] + 1), data.dtype)


def float64_kernel(f):
    data = f["layers/dense/vars/0"][()]
    del f["layers/dense/vars/0"]
    f["layers/dense/vars/0"] = data.astype(np.float64)


TAMPERING = {
    "a Lambda layer": ({"config": edit_config(lambda_layer)}, "Lambda"),
    "a custom module": ({"config": edit_config(lambda c: layer(c, "dense").update(module="evil.layers"))},
                        "module 'evil.layers'"),
    "a relu the step model would not compute": (
        {"config": edit_config(lambda c: layer(c, "dense")["config"].update(activation="relu"))}, "activation='relu'"),
    "a kernel wider than the config": ({"weights": edit_h5(wider_kernel)}, "shape|dense"),
    "float64 weights": ({"weights": edit_h5(float64_kernel)}, "float64"),
    "a stray dataset": ({"weights": edit_h5(lambda f: f.create_dataset("layers/dense/vars/9", data=[1.0]))},
                        "3 arrays instead of 2"),
    "an extra zip member": ({"extra": {"../../evil.py": b"print('owned')"}}, "unexpected members"),
    "Keras 2 metadata": ({"metadata": lambda d: json.dumps({"keras_version": "2.15.0"}).encode()}, "not 3.x"),
    "a weights file that is not HDF5": ({"weights": lambda d: b"\0" * 4096}, "damaged model file"),
}


@pytest.mark.parametrize("fault", list(TAMPERING))
def test_a_tampered_model_file_is_one_line_naming_it(fault, bundle_dir, tmp_path):
    changes, text = TAMPERING[fault]
    folder = tmp_path / "b"
    folder.mkdir()
    for file in bundle_dir.iterdir():
        if file.is_file():
            (folder / file.name).write_bytes(file.read_bytes())
    rewrite(folder / BEST_MODEL, **changes)
    with pytest.raises(PianoComposerError) as caught:
        read_bundle(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / BEST_MODEL}: ") and "\n" not in message, message
    assert re.search(text, message), message


def test_a_zip_bomb_is_refused_before_reading(bundle_dir, tmp_path):
    path = tmp_path / BEST_MODEL
    path.write_bytes((bundle_dir / BEST_MODEL).read_bytes())
    rewrite(path, config=lambda d: d + b" " * (5 << 20))  # 5 MB of spaces: over config.json's limit
    with pytest.raises(PianoComposerError, match=r"over the \d+-byte limit"):
        read_layer_weights(path)
