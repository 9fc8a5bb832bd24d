"""Token encodings: each turns a MIDI file into tokens and tokens back into MIDI; pick one by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pretty_midi

from pianocomposer.encodings.cpc import CpcEncoding
from pianocomposer.errors import PianoComposerError


class Encoding(Protocol):
    """What every encoding provides; its name is recorded in the tokens file and in the bundle."""

    name: str

    def encode_file(self, path: Path) -> list[str]:
        """Parse one MIDI file into tokens (raises on unreadable input)."""

    def decode(self, tokens: Sequence[str], program: int = 0) -> pretty_midi.PrettyMIDI:
        """Turn tokens into a MIDI object."""

    def transpose(self, token: str, semitones: int) -> str | None:
        """The token moved by semitones, or None if it leaves the playable range."""

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """The known token closest to token, or None if nothing is close."""


ENCODINGS: dict[str, Encoding] = {"cpc": CpcEncoding()}


def get_encoding(name: str) -> Encoding:
    """The encoding called name, or a clear error listing the known ones."""
    try:
        return ENCODINGS[name]
    except KeyError:
        raise PianoComposerError(f"unknown encoding {name!r} (known: {', '.join(sorted(ENCODINGS))})") from None
