"""Token encodings: each turns a music file's pieces into tokens and tokens back into MIDI; pick one by name and
parameters. An encoding is one module: a subclass of `Encoding` (base.py) registered in ENCODINGS."""

from __future__ import annotations

from pianocomposer.encodings.abc import AbcEncoding
from pianocomposer.encodings.base import Constraint, Encoding
from pianocomposer.encodings.cpc import CpcEncoding
from pianocomposer.encodings.timed import TimedEncoding
from pianocomposer.encodings.voices import VoicesEncoding
from pianocomposer.errors import PianoComposerError

__all__ = ["ENCODINGS", "Constraint", "Encoding", "get_encoding"]

# name -> the class; its keyword arguments are the encoding's parameters.
ENCODINGS: dict[str, type[Encoding]] = {cls.name: cls for cls in (CpcEncoding, TimedEncoding, AbcEncoding,
                                                                      VoicesEncoding)}


def get_encoding(name: str, params: dict | None = None) -> Encoding:
    """The encoding called name with its parameters, or a clear error naming what is wrong."""
    if name not in ENCODINGS:
        raise PianoComposerError(f"unknown encoding {name!r} (known: {', '.join(sorted(ENCODINGS))})")
    try:
        return ENCODINGS[name](**(params or {}))
    except (TypeError, ValueError) as exc:
        raise PianoComposerError(f"encoding {name!r}: bad parameters {params} ({exc})") from None
