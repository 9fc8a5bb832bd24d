"""Shared fixtures: small real MIDI songs written by the tests, and one tiny trained bundle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pianocomposer.encodings import get_encoding

REPO = Path(__file__).resolve().parent.parent
# A tiny network for tests where the network's size is not what they test: the quick preset at 16 units.
TINY = {"rnn_units": 16, "embedding_dim": 16, "dense_units": 16}
# A few recognisable phrases; the tiny corpus repeats them so a small network can learn them.
PHRASES = [
    ["C4", "E4", "G4", "0.4.7", "C5", "G4", "E4", "C4"],
    ["D4", "F4", "A4", "2.5.9", "D5", "A4", "F4", "D4"],
    ["G3", "B3", "D4", "7.11.2", "G4", "D4", "B3", "G3"],
    ["E-4", "G4", "B-4", "3.7.10", "E-5", "B-4", "G4", "E-4"],
]


def write_song(path: Path, tokens: list[str], program: int = 0) -> Path:
    """A real MIDI file with the given cpc tokens."""
    get_encoding("cpc").decode(tokens, program=program).write(str(path))
    return path


@pytest.fixture(scope="session")
def midi_dir(tmp_path_factory) -> Path:
    """Six short songs built from the phrases."""
    folder = tmp_path_factory.mktemp("midi")
    for i in range(6):
        tokens = [t for k in range(6) for t in PHRASES[(i + k) % len(PHRASES)]]
        write_song(folder / f"song{i}.mid", tokens)
    return folder


@pytest.fixture(scope="session")
def data_dir(midi_dir, tmp_path_factory) -> Path:
    """tokens.json extracted from midi_dir."""
    from pianocomposer.reading.extract import extract

    out = tmp_path_factory.mktemp("data")
    extract(midi_dir, out, progress=False)
    return out


@pytest.fixture(scope="session")
def bundle_dir(data_dir, tmp_path_factory) -> Path:
    """A quick-preset bundle trained for a few epochs on the tiny corpus."""
    from pianocomposer.learning.train import train

    out = tmp_path_factory.mktemp("weights")
    train(data_dir, out, preset="quick", epochs=3, val_split=0.2, progress=False, **TINY)
    return out


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "pianocomposer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)


@pytest.fixture(scope="session")
def voices_bundle(tmp_path_factory) -> Path:
    """A tiny voices bundle trained for one epoch on the held-out chorales."""
    from pianocomposer.learning.train import train
    from pianocomposer.reading.extract import extract

    folder = tmp_path_factory.mktemp("voices")
    extract(REPO / "chorales" / "heldout", folder / "data", encoding="voices", progress=False)
    train(folder / "data", folder / "w", preset="quick", epochs=1, progress=False, **TINY)
    return folder / "w"
