"""The original Classical-Piano-Composer encoding: a note is its pitch name (`E-4`), notes that start
together are one chord token of dot-joined normal-order pitch classes (`4.7.11`); no durations or rests."""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction

import pretty_midi

from pianocomposer.encodings.base import Encoding
from pianocomposer.reading.readers import Music

STEP_QUARTERS = 0.5  # offset between consecutive tokens when decoding (the original's 0.5 quarter)
NOTE_QUARTERS = 1.0  # duration of every decoded note (the original's default quarter note)
TEMPO_QPM = 120.0
VELOCITY = 90
MIDDLE_C = 60


@functools.lru_cache(maxsize=4096)
def note_token(midi_number: int) -> str:
    """music21's spelling of a MIDI pitch, e.g. 63 -> 'E-4' (the spelling music21's MIDI import uses)."""
    from music21 import pitch

    return str(pitch.Pitch(midi=midi_number))


@functools.lru_cache(maxsize=4096)
def note_number(token: str) -> int:
    """MIDI number of a note token such as 'E-4' or 'C#5'."""
    from music21 import pitch

    return int(pitch.Pitch(token).midi)


@functools.lru_cache(maxsize=4096)
def chord_token(pitch_classes: frozenset[int]) -> str:
    """Dot-joined normal order of a set of pitch classes, e.g. {4, 7, 11} -> '4.7.11'."""
    from music21 import chord

    return ".".join(str(pc) for pc in chord.Chord(sorted(pitch_classes)).normalOrder)


def is_chord(token: str) -> bool:
    """Chord tokens are digits and dots (the original's rule)."""
    return "." in token or token.isdigit()


def chord_pitch_classes(token: str) -> list[int]:
    """Pitch classes of a chord token, in its normal order."""
    return [int(pc) for pc in token.split(".")]


def token_pitches(token: str) -> list[int]:
    """MIDI pitches a token sounds: a chord is voiced upwards from its first pitch class above middle C.

    A chord of one pitch class (octaves, e.g. `0` from C3 + C4) sounds as that pitch class and its octave, so
    that it reads back as the same chord token rather than as a single note.
    """
    if not is_chord(token):
        return [note_number(token)]
    classes = chord_pitch_classes(token)
    if len(classes) == 1:
        return [MIDDLE_C + classes[0], MIDDLE_C + 12 + classes[0]]
    pitches: list[int] = []
    for pc in classes:
        p = MIDDLE_C + pc
        while pitches and p <= pitches[-1]:
            p += 12
        pitches.append(p)
    return pitches


def onsets_to_tokens(onsets: dict[Fraction, set[int]]) -> list[str]:
    """One token per onset time: a single pitch is a note token, several are a chord token."""
    tokens = []
    for offset in sorted(onsets):
        pitches = onsets[offset]
        if len(pitches) == 1:
            tokens.append(note_token(next(iter(pitches))))
        else:
            tokens.append(chord_token(frozenset(p % 12 for p in pitches)))
    return tokens


READERS = ("music21", "symusic")
QUANTIZE_DIVISORS = (4, 3)  # music21's MIDI import snaps onsets to sixteenths or eighth-note triplets


def quantize_onset(quarters: float) -> Fraction:
    """An onset snapped as music21's MIDI import snaps it: the nearest multiple of 1/4 or 1/3 of a quarter
    (halfway rounds down, as music21.common.nearestMultiple), the smaller grid step when both are as near."""
    candidates = []
    for div in QUANTIZE_DIVISORS:
        low = math.floor(quarters * div)
        match = Fraction(low if quarters * div - low <= 0.5 else low + 1, div)
        candidates.append((round(abs(quarters - float(match)), 7), 1 / div, match))
    return min(candidates)[2]


class CpcEncoding(Encoding):
    """Pitch names and pitch-class chords, all pitched parts merged, drum parts skipped.

    Files are read by music21 (the original's reader, exact) or by symusic (`reader="symusic"`: the same onset
    quantisation written here, tens of times faster; it differs where music21 misreads a file).
    """

    name = "cpc"
    description = "pitch names and pitch-class chords"

    def __init__(self, reader: str = "music21"):
        if reader not in READERS:
            raise ValueError(f"reader must be one of {', '.join(READERS)} (got {reader!r})")
        self.reader = reader

    @property
    def params(self) -> dict:
        """No parameters for the original reader (so its tokens and bundles stay as they were), else the reader."""
        return {} if self.reader == "music21" else {"reader": self.reader}

    @property
    def cache_key(self) -> str:
        """The library whose reading the tokens are, for extract's cache."""
        from importlib.metadata import version

        return f"{self.reader} {version(self.reader)}"

    def encode(self, music: Music) -> list[str]:
        """One token per note/chord onset of a piece's MIDI (no tempo: the original timing is fixed)."""
        return self._read_symusic(music.midi) if self.reader == "symusic" else self._read_music21(music.midi)

    def _read_symusic(self, data: bytes) -> list[str]:
        """music21's reading of onsets, re-done on symusic's notes: per track, a note that starts and ends within
        a sixteenth of an earlier one joins its chord at that note's onset; onsets are then quantised."""
        from symusic import Score

        score = Score.from_midi(data)
        per_quarter = score.ticks_per_quarter
        tolerance = per_quarter / max(QUANTIZE_DIVISORS)
        onsets: dict[Fraction, set[int]] = defaultdict(set)
        for track in score.tracks:
            if track.is_drum:
                continue
            notes = sorted((n for n in track.notes if n.duration > 0), key=lambda n: n.time)
            gathered = [False] * len(notes)
            for i, first in enumerate(notes):
                if gathered[i]:
                    continue
                chord = {int(first.pitch)}
                for j in range(i + 1, len(notes)):
                    other = notes[j]
                    if other.time - first.time >= tolerance:
                        break
                    if abs(other.end - first.end) <= tolerance:  # else music21 puts it in another voice
                        chord.add(int(other.pitch))
                        gathered[j] = True
                onsets[quantize_onset(first.time / per_quarter)].update(chord)
        return onsets_to_tokens(onsets)

    def _read_music21(self, data: bytes) -> list[str]:
        """The original's reading: music21's MIDI import, tied continuations not counted as onsets."""
        from music21 import chord, converter, instrument, note

        # From bytes, never a file name: music21 caches parsed files as pickles under a predictable temp path and
        # loads them back, which would both run planted code and return stale tokens for edited files.
        score = converter.parse(data, format="midi", forceSource=True)
        onsets: dict[Fraction, set[int]] = defaultdict(set)
        for part in score.parts:
            inst = part.getInstrument(returnDefault=False)
            if isinstance(inst, instrument.UnpitchedPercussion) or (inst is not None and inst.midiChannel == 9):
                continue
            for el in part.flatten().notes:
                if isinstance(el, note.Note):
                    heads = [(el.pitch, el.tie)]
                elif isinstance(el, chord.Chord):
                    heads = [(n.pitch, n.tie or el.tie) for n in el.notes]
                else:  # unpitched percussion (note.Unpitched, PercussionChord)
                    continue
                # music21 splits notes at bar lines into tied pieces; only the first piece is an onset.
                onsets[Fraction(el.offset)].update(
                    int(p.midi) for p, tie in heads if 0 <= p.midi <= 127 and (tie is None or tie.type == "start"))
        return onsets_to_tokens({k: v for k, v in onsets.items() if v})

    def decode(self, tokens: Sequence[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """Tokens to MIDI with the original timing: a token every half quarter, each a quarter long (120 qpm)."""
        qpm = qpm or TEMPO_QPM
        midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
        inst = pretty_midi.Instrument(program=program, name=pretty_midi.program_to_instrument_name(program))
        seconds_per_quarter = 60.0 / qpm
        sounding: dict[int, pretty_midi.Note] = {}
        for i, token in enumerate(tokens):
            start = i * STEP_QUARTERS * seconds_per_quarter
            end = start + NOTE_QUARTERS * seconds_per_quarter
            for pitch in token_pitches(token):
                if not 0 <= pitch <= 127:
                    continue
                previous = sounding.get(pitch)
                if previous is not None and previous.end > start:
                    previous.end = start  # re-strike: end the held note so its note-off cannot cut the new one
                sounding[pitch] = pretty_midi.Note(velocity=VELOCITY, pitch=pitch, start=start, end=end)
                inst.notes.append(sounding[pitch])
        midi.instruments.append(inst)
        return midi

    def transpose(self, token: str, semitones: int) -> str | None:
        """Move a note by semitones (None if it leaves 0..127); rotate a chord's pitch classes."""
        if is_chord(token):
            return chord_token(frozenset((pc + semitones) % 12 for pc in chord_pitch_classes(token)))
        moved = note_number(token) + semitones
        return note_token(moved) if 0 <= moved <= 127 else None

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """Nearest known note by pitch, or the known chord sharing most pitch classes (None if none shares any)."""
        if is_chord(token):
            wanted = set(chord_pitch_classes(token))
            scored = [(len(wanted & set(chord_pitch_classes(k))), k) for k in known if is_chord(k)]
            best = max(scored, default=(0, None))
            return best[1] if best[0] > 0 else None
        number = note_number(token)
        notes = [k for k in known if not is_chord(k)]
        return min(notes, key=lambda k: abs(note_number(k) - number), default=None)
