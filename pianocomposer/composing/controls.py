"""What a musician asks of a piece beyond its tokens: a key ("D major", "F# minor"; abc also modes such as "Dmix") and
a length in bars or seconds, with the musical reading (key analysis, bar lengths) that keeping to them needs."""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pretty_midi

from pianocomposer.errors import PianoComposerError

TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MODES = {"major": "", "maj": "", "ionian": "", "minor": "m", "min": "m", "m": "m", "aeolian": "m", "dorian": "dor",
         "dor": "dor", "mixolydian": "mix", "mix": "mix", "phrygian": "phr", "phr": "phr", "lydian": "lyd",
         "lyd": "lyd", "locrian": "loc", "loc": "loc", "": ""}


@dataclass(frozen=True)
class Key:
    """A key asked for: its tonic's pitch class, its mode as abc writes it ('' major, 'm' minor, 'dor', 'mix', ...)
    and the tonic's spelling."""

    tonic: int
    mode: str
    name: str  # the tonic as written: "D", "F#", "Bb"

    @property
    def minor(self) -> bool:
        """Whether it is a minor key (or a mode with a minor third)."""
        return self.mode in ("m", "dor", "phr", "loc")

    @property
    def abc(self) -> str:
        """The key as abc's K: field writes it, e.g. `Dmix`, `F#m`."""
        return self.name + self.mode

    def __str__(self) -> str:
        words = {"": "major", "m": "minor", "dor": "dorian", "mix": "mixolydian", "phr": "phrygian", "lyd": "lydian",
                 "loc": "locrian"}
        return f"{self.name} {words[self.mode]}"


def parse_key(text: str) -> Key:
    """'D major', 'F# minor', 'Bbm', 'D', 'Dmix', 'A dorian' as a Key (raises PianoComposerError for anything else)."""
    match = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)\s*", text or "")
    mode = match and MODES.get(match.group(3).lower())
    if not match or mode is None:
        raise PianoComposerError(f"--key {text!r}: expected a tonic and a mode, e.g. 'D major', 'F# minor' or 'Dmix'")
    letter, accidental = match.group(1).upper(), match.group(2)
    return Key((TONICS[letter] + {"#": 1, "b": -1, "": 0}[accidental]) % 12, mode, letter + accidental)


def analysed_key(midi: pretty_midi.PrettyMIDI) -> tuple[int, bool]:
    """The key music21's analysis hears in the piece read back from its MIDI, as `converter.parse(file).analyze(
    "key")` hears it (Aarden-Essen profiles): (tonic, minor)."""
    from music21 import midi as m21_midi

    buffer = io.BytesIO()
    midi.write(buffer)
    midi_file = m21_midi.MidiFile()
    midi_file.readstr(buffer.getvalue())
    score = m21_midi.translate.midiFileToStream(midi_file)
    if not score.recurse().notes:
        raise PianoComposerError("the piece has no notes whose key could be analysed")
    found = score.analyze("key")
    return found.tonic.pitchClass, found.mode == "minor"


def transpose_tokens(encoding, tokens: Sequence[str], semitones: int) -> list[str]:
    """A piece's tokens moved by semitones; a note that would leave the encoding's range moves an octave less."""
    out = []
    for token in tokens:
        moved = next((m for shift in (semitones, semitones - 12, semitones + 12)
                      if (m := encoding.transpose(token, shift)) is not None), token)
        out.append(moved)
    return out


def interval_to(tonic: int, target: int) -> int:
    """The smallest move (-5..6 semitones) from one tonic to another."""
    return (target - tonic + 5) % 12 - 5


def cut(midi: pretty_midi.PrettyMIDI, end: float) -> pretty_midi.PrettyMIDI | None:
    """The piece up to `end` seconds, notes still sounding there ended with it; None if it ends before `end`."""
    last = max((n.end for t in midi.instruments for n in t.notes), default=0.0)
    if last < end - 1e-6:
        return None
    out = copy.deepcopy(midi)
    for track in out.instruments:
        track.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, min(n.end, end))
                       for n in track.notes if n.start < end - 1e-6]
    return out


def end_of(midi: pretty_midi.PrettyMIDI, bars: int | None, seconds: float | None) -> float:
    """Where a piece of `bars` whole bars (after a pickup, if it has one) ends, or one of `seconds` seconds ended at
    the nearest beat; infinity where the piece is shorter than that."""
    if midi.get_end_time() < (seconds or 0):
        return float("inf")
    if bars is None:
        return float(min(midi.get_beats(), key=lambda b: abs(b - seconds)))
    downbeats = midi.get_downbeats()
    metres = sorted(midi.time_signature_changes, key=lambda t: t.time)
    pickup = len(metres) > 1 and metres[0].numerator / metres[0].denominator < (
        metres[1].numerator / metres[1].denominator) and len(downbeats) > 1 and downbeats[1] == metres[1].time
    bars += pickup
    return float(downbeats[bars]) if len(downbeats) > bars else float("inf")


def check_controls(encoding, key: Key | None, metre: str | None, bars: int | None, seconds: float | None,
                   length: int | None) -> None:
    """A clear error for controls that contradict each other or that the encoding cannot keep to."""
    from pianocomposer.encodings.abc_metre import FIELD_VALUES

    if sum(x is not None for x in (length, bars, seconds)) > 1:
        raise PianoComposerError("choose one of --length (tokens), --bars and --seconds")
    if (bars is not None and bars <= 0) or (seconds is not None and seconds <= 0):
        raise PianoComposerError("--bars and --seconds must be positive")
    if seconds and not encoding.keeps_time:
        raise PianoComposerError(f"--seconds is for MIDI encodings (cpc, timed, voices); an {encoding.name} tune "
                                 "has no tempo of its own: use --bars")
    if metre is not None and not encoding.header_fields:
        raise PianoComposerError(f"--metre is for abc models; a {encoding.name} model writes no metre")
    if metre is not None and metre not in FIELD_VALUES["M"]:
        raise PianoComposerError(f"--metre {metre!r}: expected a metre such as 6/8, 3/4 or C")
    if key is not None and key.mode not in ("", "m") and not encoding.header_fields:
        raise PianoComposerError(f"--key {key}: modes are for abc models; a {encoding.name} model takes major or "
                                 "minor keys")
