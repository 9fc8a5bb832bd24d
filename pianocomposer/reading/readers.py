"""Readers of music files, apart from the encodings: a MIDI file, an abc tune book or a MusicXML score becomes one
or more `Music` pieces, the one in-memory form every encoding reads (as note-seq's readers all meet at one
NoteSequence).

A `Music` carries the piece as a Standard MIDI File in memory (so every MIDI reader, music21's or symusic's, reads
exactly what it would read from a file, and a MIDI file's tokens do not change with the route it took) and, when
the piece was written in a text notation, that text (an abc tune's). An abc tune's MIDI is made only when an
encoding asks for it: the abc encoding reads the text alone.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MIDI_SUFFIXES = (".mid", ".midi")
ABC_SUFFIXES = (".abc",)
MUSICXML_SUFFIXES = (".musicxml", ".xml", ".mxl")
ABC_BYTES_PER_TIMEOUT = 50_000  # an abc book gets the per-file time-out once per this much text (~150 tunes)


@dataclass
class Music:
    """One piece read from a file: its name within the file (an abc book's tune) or None, its MIDI, its text."""

    part: str | None
    text: str | None = None  # the piece in its text notation (an abc tune, as written), if it came as text
    make_midi: Callable[[], bytes] | None = field(default=None, repr=False)  # made on first use
    _midi: bytes | None = field(default=None, repr=False)

    @property
    def midi(self) -> bytes:
        """The piece as a Standard MIDI File (raises the reader's error when the piece cannot be played)."""
        if self._midi is None:
            self._midi = self.make_midi()
        return self._midi


@dataclass
class Unreadable:
    """A piece of a file (or the whole file: part None) that cannot be read, and why."""

    part: str | None
    reason: str


def midi_bytes(midi) -> bytes:
    """A pretty_midi object as Standard MIDI File bytes."""
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def _read_midi(path: Path) -> list[Music | Unreadable]:
    """A MIDI file is one piece."""
    return [Music(None, _midi=Path(path).read_bytes())]


def _tune_midi(text: str) -> bytes:
    """An abc tune as music21 plays it, as MIDI: melody and chords in brackets, without chord symbols (the
    accompaniment that abc players improvise)."""
    from pianocomposer.reading.abc_notation import normalise, parse_tune, score_to_midi

    return midi_bytes(score_to_midi(parse_tune(normalise(text)), chord_symbols=False))


def _read_abc(path: Path) -> list[Music | Unreadable]:
    """Every tune of an abc book is a piece, named by its position, X: number and title."""
    from pianocomposer.reading.abc_notation import split_tunes

    tunes = split_tunes(Path(path).read_bytes().decode("utf-8", errors="replace"))
    if not tunes:
        return [Unreadable(None, "no tune in this abc file (no X: line)")]
    return [Music(t.label, text=t.text, make_midi=lambda text=t.text: _tune_midi(text)) for t in tunes]


def _read_musicxml(path: Path) -> list[Music | Unreadable]:
    """A MusicXML score is one piece, played by music21."""
    from music21 import converter

    score = converter.parse(str(path), forceSource=True)
    return [Music(None, make_midi=lambda: _stream_midi(score))]


def _stream_midi(score) -> bytes:
    """A music21 stream as MIDI bytes."""
    from music21 import midi

    file = midi.translate.streamToMidiFile(score)
    return file.writestr()


READERS: dict[str, Callable[[Path], list[Music | Unreadable]]] = {
    **dict.fromkeys(MIDI_SUFFIXES, _read_midi), **dict.fromkeys(ABC_SUFFIXES, _read_abc),
    **dict.fromkeys(MUSICXML_SUFFIXES, _read_musicxml)}


def kind(path: Path) -> str:
    """What a file is, in words, for messages: MIDI, abc or MusicXML."""
    suffix = Path(path).suffix.lower()
    return "abc" if suffix in ABC_SUFFIXES else "MusicXML" if suffix in MUSICXML_SUFFIXES else "MIDI"


def read_midi(path: Path):
    """A file's first readable piece as a PrettyMIDI (raises PianoComposerError naming the file and the reason)."""
    import pretty_midi

    from pianocomposer.errors import PianoComposerError, first_line

    try:
        pieces = read_file(path)
    except Exception as exc:
        raise PianoComposerError(f"{path}: not a readable {kind(path)} file ({first_line(exc)})") from None
    music = next((p for p in pieces if not isinstance(p, Unreadable)), None)
    if music is None:
        raise PianoComposerError(f"{path}: {pieces[0].reason if pieces else 'no music in it'}")
    try:
        return pretty_midi.PrettyMIDI(io.BytesIO(music.midi))
    except Exception as exc:
        raise PianoComposerError(f"{path}: cannot be played ({first_line(exc)})") from None


def read_file(path: Path) -> list[Music | Unreadable]:
    """The pieces of a music file, by its suffix (raises on a file its reader cannot open)."""
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        return [Unreadable(None, f"not a music file this project reads ({', '.join(READERS)})")]
    return READERS[suffix](Path(path))


def time_allowed(path: Path, timeout_s: float) -> float:
    """Seconds allowed to read a file: timeout_s, and as much again for every ABC_BYTES_PER_TIMEOUT of a tune book."""
    if Path(path).suffix.lower() not in ABC_SUFFIXES:
        return timeout_s
    with contextlib.suppress(OSError):
        return timeout_s * max(1, math.ceil(Path(path).stat().st_size / ABC_BYTES_PER_TIMEOUT))
    return timeout_s
