"""Token encodings: each turns a music file into tokens and tokens back into MIDI; pick one by name and parameters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pretty_midi

from pianocomposer.encodings.abc import AbcEncoding
from pianocomposer.encodings.cpc import CpcEncoding
from pianocomposer.encodings.timed import TimedEncoding
from pianocomposer.errors import PianoComposerError


class Encoding(Protocol):
    """What every encoding provides; its name is recorded in the tokens file and in the bundle."""

    name: str
    parser: str  # the libraries (and versions) the tokens come from: extract's cache is valid for these
    params: dict  # what the encoding was made with (e.g. a time grid), recorded in tokens.json and the bundle
    suffixes: tuple[str, ...]  # the file types it reads, lower case with the dot
    end_token: str | None  # the token that ends a piece (abc's end of tune), or None: pieces run to their length

    def encode_file(self, path: Path) -> list[str]:
        """Parse one music file (for abc: its first tune) into tokens (raises on unreadable input)."""

    def qpm(self, path: Path) -> float | None:
        """The file's main tempo if decoding this encoding's tokens needs one, else None."""

    def decode(self, tokens: Sequence[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """Turn tokens into a MIDI object (at qpm quarter notes per minute; None: the encoding's default)."""

    def transpose(self, token: str, semitones: int) -> str | None:
        """The token moved by semitones, or None if it leaves the playable range."""

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """The known token closest to token, or None if nothing is close."""


# name -> a class whose keyword arguments are the encoding's parameters.
ENCODINGS: dict[str, type] = {"cpc": CpcEncoding, "timed": TimedEncoding, "abc": AbcEncoding}


def get_encoding(name: str, params: dict | None = None) -> Encoding:
    """The encoding called name with its parameters, or a clear error naming what is wrong."""
    if name not in ENCODINGS:
        raise PianoComposerError(f"unknown encoding {name!r} (known: {', '.join(sorted(ENCODINGS))})")
    try:
        return ENCODINGS[name](**(params or {}))
    except (TypeError, ValueError) as exc:
        raise PianoComposerError(f"encoding {name!r}: bad parameters {params} ({exc})") from None
