"""The tokens file that extract writes and train reads: songs kept apart, with the encoding that made them.

Schema (tokens.json, format version 2): `format` "pianocomposer-tokens", `version`, `encoding` (name),
`encoding_params` (the encoding's parameters, e.g. a time grid), `parser` (what the tokens are valid for),
`songs` (list of `{source, sha256, tokens, qpm, part}`, one per song, never merged; `qpm` the song's main tempo
where the encoding's timing uses it, else null; `part` the tune of an abc book the song is, else null; `sha256`
is the file's), `skipped` (`{source, sha256, reason, part}`).
Version 1 files (no `encoding_params`) are read as having the encoding's defaults; version 2 files have no `part`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pianocomposer.config import TOKENS_FILE, TOKENS_FORMAT_VERSION
from pianocomposer.errors import PianoComposerError


@dataclass
class Song:
    """The tokens of one song, with the file they came from."""

    source: str
    sha256: str
    tokens: list[str]
    qpm: float | None = None  # main tempo, quarter notes per minute (timed encodings)
    part: str | None = None  # the tune within an abc book (`tune 3 (X:3 Title)`), None for a one-song file


@dataclass
class Skipped:
    """A file that could not be used, and why."""

    source: str
    sha256: str
    reason: str
    part: str | None = None  # the tune within an abc book, None for a whole file


@dataclass
class TokenData:
    """The contents of a tokens file: songs kept apart, the encoding that made them, what was skipped."""

    encoding: str
    parser: str
    songs: list[Song]
    skipped: list[Skipped] = field(default_factory=list)
    reused: int = 0
    encoding_params: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The versioned on-disk form."""
        return {"format": "pianocomposer-tokens", "version": TOKENS_FORMAT_VERSION, "encoding": self.encoding,
                "encoding_params": self.encoding_params, "parser": self.parser,
                "songs": [asdict(s) for s in self.songs], "skipped": [asdict(s) for s in self.skipped]}


def load_tokens(path: Path) -> TokenData:
    """Read a tokens file written by extract (a folder means its tokens.json), checking format and version."""
    path = Path(path)
    if path.is_dir():
        path = path / TOKENS_FILE
    if not path.is_file():
        raise PianoComposerError(f"{path}: no tokens file; run `pianocomposer extract` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != "pianocomposer-tokens":
            raise ValueError("not a pianocomposer tokens file")
        if data["version"] > TOKENS_FORMAT_VERSION:
            raise ValueError(f"format version {data['version']} is newer than this pianocomposer reads "
                             f"({TOKENS_FORMAT_VERSION}); upgrade pianocomposer")
        return TokenData(encoding=data["encoding"], parser=data["parser"],
                         encoding_params=dict(data.get("encoding_params", {})),
                         songs=[Song(**s) for s in data["songs"]], skipped=[Skipped(**s) for s in data["skipped"]])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PianoComposerError(f"{path}: unreadable tokens file ({exc})") from None
