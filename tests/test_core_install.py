"""The core install as a user makes it: the built wheel, without extras, into a fresh virtual environment with its
dependencies from the package index. It composes, harmonises and serves the page without TensorFlow, and `train`
says in one line how to add it. Slow (a real pip install): `.ci/run` runs it after the README's test command
(`pytest -m install`)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pretty_midi
import pytest

from tests.test_packaging import CLEAN_ENV, run, sources, wheel  # noqa: F401  (fixtures: the wheel as built)

pytestmark = pytest.mark.install


@pytest.fixture(scope="module")
def core(wheel, tmp_path_factory) -> Path:  # noqa: F811
    """A fresh environment with the wheel installed as `pip install pianocomposer` installs it."""
    env = tmp_path_factory.mktemp("core")
    run("python3", "-m", "venv", env, cwd=env)
    run(env / "bin" / "pip", "install", "-q", wheel, cwd=env, timeout=900)
    return env


def test_the_core_install_composes_without_tensorflow(core, tmp_path):
    bin_ = core / "bin"
    for heavy in ("tensorflow", "keras", "jax", "sklearn", "ray"):
        proc = subprocess.run([bin_ / "python", "-c", f"import {heavy}"], capture_output=True, text=True,
                              env=CLEAN_ENV, cwd=tmp_path)
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr, f"{heavy} is installed"
    assert run(bin_ / "pianocomposer", "--version", cwd=tmp_path).stdout.strip().startswith("pianocomposer 0.")
    piece = json.loads(run(bin_ / "pianocomposer", "generate", "--weights", "timed", "--length", 60, "--no-wav",
                           "--out", "out", "--json", cwd=tmp_path).stdout)["pieces"][0]
    assert pretty_midi.PrettyMIDI(str(tmp_path / piece["midi"])).instruments[0].notes
    melody = pretty_midi.PrettyMIDI(initial_tempo=100)
    melody.instruments.append(pretty_midi.Instrument(0))
    for i, pitch in enumerate((67, 67, 69, 71, 72, 71, 69, 67)):
        melody.instruments[0].notes.append(pretty_midi.Note(90, pitch, i * 0.6, (i + 1) * 0.6))
    melody.write(str(tmp_path / "melody.mid"))
    result = json.loads(run(bin_ / "pianocomposer", "harmonize", "melody.mid", "--no-wav", "--out", "harm",
                            "--json", cwd=tmp_path).stdout)
    harmonised = pretty_midi.PrettyMIDI(str(tmp_path / result["harmonizations"][0]["midi"]))
    assert sum(len(i.notes) for i in harmonised.instruments) > 8  # four voices under the eight melody notes


def test_train_without_the_extra_says_how_to_install_it(core, tmp_path):
    proc = subprocess.run([core / "bin" / "pianocomposer", "train", "--data", tmp_path], capture_output=True,
                          text=True, env=CLEAN_ENV, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: training needs Keras and its backend, which the core install leaves out (keras is missing): "
        "pip install 'pianocomposer[train]'"]


def test_the_core_install_serves_the_page(core, tmp_path):
    server = subprocess.Popen([core / "bin" / "pianocomposer", "serve", "--port", "0", "--out", "served"],
                              cwd=tmp_path, env=CLEAN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = server.stderr.readline().decode()  # until the line naming the free port it bound
        while line and "http://127.0.0.1:" not in line:
            line = server.stderr.readline().decode()
        assert "http://127.0.0.1:" in line, server.stderr.read().decode() if server.poll() is not None else line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        deadline, page = time.monotonic() + 120, None
        while page is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    page = reply.read().decode()
            except OSError:
                time.sleep(0.5)
        assert page is not None, server.stderr.read().decode() if server.poll() is not None else "no answer"
        assert "<html" in page.lower() and "pianocomposer" in page.lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
