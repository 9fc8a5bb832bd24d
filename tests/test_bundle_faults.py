"""Damaged and hostile model bundles: every fault is one PianoComposerError line naming the file, never a traceback;
models load in Keras safe mode and nothing in the package unpickles."""

from __future__ import annotations

import ast
import json
import random
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import BEST_MODEL, BUNDLE_FILE, load_bundle

PACKAGE = Path(__file__).resolve().parent.parent / "pianocomposer"
PIANOCOMPOSER = Path(sys.executable).with_name("pianocomposer")


@pytest.fixture
def bundle(bundle_dir) -> Path:
    """The session's tiny trained bundle (tests/conftest.py); tests damage copies of it only."""
    return bundle_dir


def edit_meta(folder: Path, change) -> None:
    meta = json.loads((folder / BUNDLE_FILE).read_text())
    change(meta)
    (folder / BUNDLE_FILE).write_text(json.dumps(meta))


def truncate_model(folder: Path) -> None:
    data = (folder / BEST_MODEL).read_bytes()
    (folder / BEST_MODEL).write_bytes(data[: len(data) // 2])


def garbage_model(folder: Path) -> None:
    (folder / BEST_MODEL).write_bytes(random.Random(0).randbytes(4096))


def garbage_weights_in_a_real_zip(folder: Path) -> None:
    with zipfile.ZipFile(folder / BEST_MODEL) as original:
        members = {name: original.read(name) for name in original.namelist()}
    with zipfile.ZipFile(folder / BEST_MODEL, "w") as damaged:
        for name, data in members.items():
            damaged.writestr(name, random.Random(0).randbytes(len(data)) if name.endswith(".h5") else data)


def lambda_model(folder: Path) -> None:
    """A .keras file whose config holds a Lambda layer: Python bytecode that safe mode must refuse to load."""
    import keras

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs)).save(folder / BEST_MODEL)


FAULTS = {
    # name: (how to damage a copy of the bundle, the file the message must name, a regular expression the message
    # matches: Keras's loader (training) and the Keras-free reader (generation) word some faults differently)
    "truncated model.keras": (truncate_model, BEST_MODEL, "not a Keras model file"),
    "garbage model.keras": (garbage_model, BEST_MODEL, "not a Keras model file"),
    "garbage weights in a real zip": (garbage_weights_in_a_real_zip, BEST_MODEL,
                                      "cannot load the Keras model|damaged model file"),
    "model.keras missing": (lambda f: (f / BEST_MODEL).unlink(), BEST_MODEL, "model file missing"),
    "Lambda layer": (lambda_model, BEST_MODEL, "Lambda"),
    "version 99": (lambda f: edit_meta(f, lambda m: m.update(version=99)), BUNDLE_FILE,
                   "bundle format version 99 is newer"),
    "vocabulary one token short": (lambda f: edit_meta(f, lambda m: m.update(vocabulary=m["vocabulary"][:-1])),
                                   BEST_MODEL, "do not belong together"),
    "unknown encoding": (lambda f: edit_meta(f, lambda m: m.update(encoding="midi-like-v9")), BUNDLE_FILE,
                         "unknown encoding 'midi-like-v9'"),
    "unknown cell": (lambda f: edit_meta(f, lambda m: m["config"].update(cell="transformer")), BUNDLE_FILE,
                     "cell must be one of lstm, gru"),
    "config missing": (lambda f: edit_meta(f, lambda m: m.pop("config")), BUNDLE_FILE, "incomplete bundle file"),
    "invalid JSON": (lambda f: (f / BUNDLE_FILE).write_text('{"format": "pianocomposer-bundle", "version": 1,'),
                     BUNDLE_FILE, "unreadable bundle file"),
    "not UTF-8": (lambda f: (f / BUNDLE_FILE).write_bytes(b"\xff\xfe{}"), BUNDLE_FILE, "unreadable bundle file"),
    "a JSON list": (lambda f: (f / BUNDLE_FILE).write_text("[]"), BUNDLE_FILE, "not a pianocomposer bundle"),
}


@pytest.fixture(params=list(FAULTS))
def damaged(request, bundle, tmp_path):
    """A copy of the bundle with one fault; yields (folder, file the error must name, expected text)."""
    damage, named, text = FAULTS[request.param]
    folder = tmp_path / "weights"
    shutil.copytree(bundle, folder)
    damage(folder)
    return folder, folder / named, text


def test_the_undamaged_bundle_loads(bundle):
    loaded = load_bundle(bundle)
    assert loaded.model.get_layer("logits").units == len(loaded.vocabulary)


def test_a_damaged_bundle_is_one_error_naming_the_file(damaged):
    folder, named, text = damaged
    with pytest.raises(PianoComposerError) as caught:
        load_bundle(folder)
    message = str(caught.value)
    assert message.startswith(f"{named}: ") and re.search(text, message) and "\n" not in message, message


def test_generate_on_a_damaged_bundle_exits_1_with_one_line(damaged, tmp_path):
    folder, named, text = damaged
    command = [str(PIANOCOMPOSER)] if PIANOCOMPOSER.exists() else [sys.executable, "-m", "pianocomposer"]
    proc = subprocess.run([*command, "generate", "--weights", str(folder), "--no-wav", "--length", "5",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: {named}: ") and re.search(text, proc.stderr), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_lambda_model_is_refused_by_safe_mode_alone(bundle, tmp_path):
    import keras

    folder = tmp_path / "weights"
    shutil.copytree(bundle, folder)
    lambda_model(folder)
    with pytest.raises(PianoComposerError, match="Lambda"):
        load_bundle(folder)
    # The same file loads when safe mode is off: the refusal comes from safe mode, not from a broken file.
    assert any(isinstance(layer, keras.layers.Lambda)
               for layer in keras.saving.load_model(folder / BEST_MODEL, safe_mode=False).layers)


def test_no_module_of_the_package_imports_pickle():
    unsafe_modules = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    for path in sources:
        text = path.read_text()
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & unsafe_modules, f"{path} imports {imported & unsafe_modules}"
        assert "allow_pickle=True" not in text and "safe_mode=False" not in text, path


def as_version_1(meta: dict) -> None:
    """bundle.json as pianocomposer wrote it before format 2 (the shipped default bundle is still one)."""
    config = meta["config"]
    for key in ("cell", "clipnorm", "embedding_init_stddev"):
        config.pop(key)
    config["lstm_units"], config["lstm_layers"] = config.pop("rnn_units"), config.pop("rnn_layers")
    low, high = meta["training"]["options"]["transpose"]
    meta["training"]["options"].update(transpose=f"{low}..{high}", preset=meta["training"].pop("preset"))
    meta["training"].pop("steps")
    meta["training"]["weights_dtype"] = meta.pop("weights_dtype")
    meta.pop("encoding_params")
    meta["version"] = 1


def test_a_version_1_bundle_loads_generates_and_resumes(bundle, data_dir, tmp_path):
    from pianocomposer.frontends.generate import generate
    from pianocomposer.learning.train import train

    folder = tmp_path / "v1"
    shutil.copytree(bundle, folder)
    before = load_bundle(folder).meta
    edit_meta(folder, as_version_1)
    loaded = load_bundle(folder)
    assert loaded.config == load_bundle(bundle).config and loaded.config.cell == "lstm"
    assert loaded.meta["training"]["options"] == before["training"]["options"]
    assert loaded.meta["training"]["preset"] == before["training"]["preset"] == "quick"
    assert loaded.meta["weights_dtype"] == before["weights_dtype"] == "float32"
    assert len(generate(folder, tmp_path / "out", length=5, wav=False, progress=False).pieces[0].tokens) == 5
    assert train(data_dir, folder, epochs=1, resume=True, progress=False).epochs == 4
    assert json.loads((folder / BUNDLE_FILE).read_text())["version"] == 2
