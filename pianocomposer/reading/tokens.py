"""The tokens file that extract writes and train reads: songs kept apart, with the encoding that made them.

Schema (tokens.json, format version 4): `format` "pianocomposer-tokens", `version`, `encoding` (name),
`encoding_params` (the encoding's parameters, e.g. a time grid), `parser` (what the tokens are valid for),
`vocabulary` (every distinct token, sorted), `id_bytes` (2, or 4 past 65,536 distinct tokens), `songs` (list of
`{source, sha256, ids, qpm, part}`, one per song, never merged; `ids` the song's tokens as positions in
`vocabulary`, little-endian unsigned integers of `id_bytes` each, base64; `qpm` the song's main tempo where the
encoding's timing uses it, else null; `part` the tune of an abc book the song is, else null; `sha256` is the
file's), `skipped` (`{source, sha256, reason, part}`).
Older versions hold each song's `tokens` as a list of strings (~9 bytes a token, against ~2.7 now): version 1
has no `encoding_params` (read as the encoding's defaults), versions 1-2 no `part`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

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
        """The versioned on-disk form: songs as ids into one vocabulary."""
        vocabulary = sorted({t for s in self.songs for t in s.tokens})
        index = {t: i for i, t in enumerate(vocabulary)}
        dtype = "<u2" if len(vocabulary) <= 1 << 16 else "<u4"
        songs = [{"source": s.source, "sha256": s.sha256,
                  "ids": base64.b64encode(np.array([index[t] for t in s.tokens], dtype).tobytes()).decode("ascii"),
                  "qpm": s.qpm, "part": s.part} for s in self.songs]
        return {"format": "pianocomposer-tokens", "version": TOKENS_FORMAT_VERSION, "encoding": self.encoding,
                "encoding_params": self.encoding_params, "parser": self.parser, "vocabulary": vocabulary,
                "id_bytes": np.dtype(dtype).itemsize, "songs": songs, "skipped": [asdict(s) for s in self.skipped]}


def _song(entry: dict, vocabulary: np.ndarray | None, dtype: str) -> Song:
    """A song of the file; from version 4 on its tokens are decoded from their ids (each string shared)."""
    if vocabulary is None:
        return Song(**entry)
    entry = dict(entry)
    ids = np.frombuffer(base64.b64decode(entry.pop("ids"), validate=True), dtype)
    if len(ids) and int(ids.max()) >= len(vocabulary):
        raise ValueError(f"{entry.get('source')}: a token id past the vocabulary")
    return Song(**entry, tokens=vocabulary[ids].tolist())


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
        vocabulary = None
        if data["version"] >= 4:
            if not all(isinstance(t, str) for t in data["vocabulary"]):
                raise ValueError("the vocabulary holds something that is not a token")
            vocabulary = np.array(data["vocabulary"], object)
        dtype = {2: "<u2", 4: "<u4"}[data["id_bytes"]] if vocabulary is not None else ""
        return TokenData(encoding=data["encoding"], parser=data["parser"],
                         encoding_params=dict(data.get("encoding_params", {})),
                         songs=[_song(s, vocabulary, dtype) for s in data["songs"]],
                         skipped=[Skipped(**s) for s in data["skipped"]])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # binascii.Error is a ValueError
        raise PianoComposerError(f"{path}: unreadable tokens file ({exc})") from None
