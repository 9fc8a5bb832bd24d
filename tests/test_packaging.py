"""The package as a user installs it: a wheel built from the sources, installed into a fresh environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pretty_midi
import pytest

import pianocomposer
from pianocomposer.config import shipped_bundle

REPO = Path(__file__).resolve().parent.parent
# No PYTHONPATH or PYTHONHOME leaking the checkout into the fresh environment.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
CLEAN_ENV["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"


def run(*args, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a command and fail with its output when it fails."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=CLEAN_ENV,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args[:4]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A copy of what the wheel is built from, plus files that must stay out of it: a resume file and a
    TensorBoard log in the default bundle, and a bundle trained into weights/ itself."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "last.keras", "tensorboard")
    shutil.copytree(REPO / "pianocomposer", src / "pianocomposer", ignore=ignore)
    (src / "weights").mkdir()
    for bundle in sorted(REPO.glob("weights/*/bundle.json")):
        shutil.copytree(bundle.parent, src / "weights" / bundle.parent.name, ignore=ignore)
    default = src / "weights" / "default"
    (default / "last.keras").write_bytes(b"resume state")
    (default / "tensorboard").mkdir()
    (default / "tensorboard" / "events.out").write_bytes(b"log")
    shutil.copy2(default / "bundle.json", src / "weights" / "bundle.json")
    return src


@pytest.fixture(scope="module")
def wheel(sources, tmp_path_factory) -> Path:
    """The wheel, built the way pip builds it for `pip install .`."""
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", sources, "--no-deps", "-q", "-w", out, cwd=sources)
    (built,) = out.glob("pianocomposer-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel installed; the dependencies (TensorFlow...) come from the project's
    environment through a .pth file instead of being installed again."""
    env = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", env, cwd=env)
    python = env / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=env).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "project_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=env)
    return env


def test_wheel_holds_the_shipped_bundles_and_nothing_else(sources, wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    bundles = sorted(p.parent.name for p in sources.glob("weights/*/bundle.json"))
    assert "default" in bundles
    for name in bundles:
        for file in ("bundle.json", "model.keras", "MODEL_CARD.md"):
            assert f"pianocomposer/shipped/{name}/{file}" in names
    assert not [n for n in names if n.endswith("last.keras") or "/tensorboard/" in n]
    assert "pianocomposer/shipped/bundle.json" not in names
    # every module of the sources is packaged (the package list in pyproject.toml is written by hand)
    modules = {p.relative_to(sources).as_posix() for p in (sources / "pianocomposer").rglob("*.py")}
    assert modules - names == set()
    assert {"pianocomposer/frontends/serve_page.html", "pianocomposer/frontends/serve_page.js"} <= names  # the page


def test_wheel_installed_generate_writes_a_piece_with_the_shipped_model(venv, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # no weights/ folder here, and not the checkout
    elsewhere.mkdir()
    python = venv / "bin" / "python"
    where = run(python, "-c", "import pianocomposer; print(pianocomposer.__file__)", cwd=elsewhere).stdout.strip()
    package = Path(where).parent
    assert package.is_relative_to(venv), f"pianocomposer imported from {where}, not from the wheel"
    proc = run(venv / "bin" / "pianocomposer", "generate", "--length", 20, "--no-wav", "--out", "out", "--json",
               cwd=elsewhere)
    result = json.loads(proc.stdout)
    assert Path(result["bundle"]).resolve() == package / "shipped" / "default"
    (piece,) = result["pieces"]
    midi = elsewhere / piece["midi"]
    assert midi.parent == elsewhere / "out" and piece["wav"] is None
    notes = [n for inst in pretty_midi.PrettyMIDI(str(midi)).instruments for n in inst.notes]
    assert notes


@pytest.mark.integration
def test_wheel_installed_with_the_training_packages_extracts_trains_and_composes(venv, tmp_path):
    """The [train] path as a user takes it: the wheel with Keras and a backend beside it (here the project's own,
    through the environment's .pth), outside the checkout."""
    songs = tmp_path / "songs"
    songs.mkdir()
    for source in sorted((REPO / "midi_songs").glob("*.mid"))[:6]:
        shutil.copy(source, songs)
    cli = venv / "bin" / "pianocomposer"
    run(cli, "extract", "--input", songs, "--out", "data", cwd=tmp_path)
    trained = json.loads(run(cli, "train", "--data", "data", "--weights", "mine", "--preset", "quick", "--epochs", 1,
                             "--json", cwd=tmp_path, timeout=600).stdout)
    assert trained["epochs"] == 1 and (tmp_path / "mine" / "model.keras").is_file()
    piece = json.loads(run(cli, "generate", "--weights", "mine", "--length", 30, "--no-wav", "--json",
                           cwd=tmp_path).stdout)["pieces"][0]
    assert pretty_midi.PrettyMIDI(str(tmp_path / piece["midi"])).instruments[0].notes


def test_checkout_reads_the_shipped_bundle_from_weights():
    if Path(pianocomposer.__file__).resolve().parent != REPO / "pianocomposer":
        pytest.skip("pianocomposer is not imported from this checkout")
    assert shipped_bundle() == REPO / "weights" / "default"
    assert (shipped_bundle() / "bundle.json").is_file()
    assert shipped_bundle("timed") == REPO / "weights" / "timed"
