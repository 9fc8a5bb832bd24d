"""The timed encoding: every note's pitch with its octave, its duration and the time to the next event, on a grid.

MidiTok (https://miditok.readthedocs.io) does the tokenizing, on files read by symusic: TSD by default
(`Pitch_60 Duration_1.0.12 TimeShift_0.6.12`, a rest is a longer time shift), REMI as the alternative layout
(`Bar_None Position_6 Pitch_60 Duration_1.0.12`). All pitched tracks are merged into one stream (drums dropped),
without velocity, tempo or time-signature tokens: the model learns notes and rhythm; the tempo is given when
decoding. Durations and shifts are in quarter notes, `beat.tick.ticks_per_quarter`.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from importlib.metadata import version

import numpy as np
import pretty_midi

from pianocomposer.encodings.base import Encoding
from pianocomposer.reading.readers import Music

LAYOUTS = ("tsd", "remi")
# Ticks per quarter note for durations and time shifts in [0, 4) and [4, 12) quarters: sixteenths and eighth-note
# triplets (12 = 4 x 3) up to a whole note, then sixteenths up to three whole notes.
DEFAULT_GRID = {"0-4": 12, "4-12": 4}
PITCH_RANGE = (21, 108)  # the piano's keys
VELOCITY = 90
DEFAULT_QPM = 120.0


def token_quarters(token: str) -> float:
    """The length a Duration_/TimeShift_ token stands for in quarter notes ('Duration_1.6.12' -> 1.5)."""
    beat, tick, per_quarter = token.split("_", 1)[1].split(".")
    return int(beat) + int(tick) / int(per_quarter)


class TimedEncoding(Encoding):
    """MidiTok TSD or REMI tokens with durations and time shifts; see the module docstring."""

    name = "timed"
    description = ("MidiTok tokens for each note's pitch with its octave, its duration and the time to the next "
                   "event")

    def __init__(self, layout: str = "tsd", grid: dict[str, int] | None = None):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} (got {layout!r})")
        grid = dict(grid or DEFAULT_GRID)
        for span, ticks in grid.items():
            low, _, high = span.partition("-")
            if not (low.isdigit() and high.isdigit() and int(low) < int(high)) or not (
                    isinstance(ticks, int) and 1 <= ticks <= 96):
                raise ValueError(f"grid entry {span!r}: {ticks!r} must be 'LOW-HIGH' quarters: 1..96 ticks")
        self.layout, self.grid = layout, grid

    @property
    def params(self) -> dict:
        """Everything the tokens depend on, recorded in tokens.json and the bundle."""
        return {"layout": self.layout, "grid": self.grid}

    @property
    def cache_key(self) -> str:
        """The libraries whose output the tokens are, for extract's cache."""
        return f"miditok {version('miditok')}, symusic {version('symusic')}"

    @functools.cached_property
    def tokenizer(self):
        """The MidiTok tokenizer for these parameters."""
        from miditok import REMI, TSD, TokenizerConfig

        beat_res = {tuple(int(x) for x in span.split("-")): ticks for span, ticks in self.grid.items()}
        config = TokenizerConfig(pitch_range=PITCH_RANGE, beat_res=beat_res, use_pitchdrum_tokens=False,
                                 use_velocities=False, use_chords=False, use_rests=False, use_tempos=False,
                                 use_time_signatures=False, use_programs=False, special_tokens=[])
        return {"tsd": TSD, "remi": REMI}[self.layout](config)

    def _score(self, music: Music):
        """The piece as one symusic track of every pitched note (drums dropped)."""
        from symusic import Score, Track

        score = Score.from_midi(music.midi)
        merged = Track(name="merged", program=0, is_drum=False)
        for track in score.tracks:
            if not track.is_drum:
                merged.notes.extend(track.notes)
        merged.notes.sort(key=lambda n: (n.time, n.pitch))
        score.tracks = [merged] if len(merged.notes) else []
        return score

    def encode(self, music: Music) -> list[str]:
        """Every pitched note of a piece as pitch, duration and time-shift tokens (empty if none)."""
        score = self._score(music)
        if not score.tracks:
            return []
        (sequence,) = self.tokenizer.encode(score)
        return list(sequence.tokens)

    def tempo(self, music: Music) -> float | None:
        """The tempo in force for most of the piece, in quarter notes per minute."""
        from symusic import Score

        score = Score.from_midi(music.midi)
        tempos = sorted(score.tempos, key=lambda t: t.time)
        if not tempos:
            return None
        ends = [t.time for t in tempos[1:]] + [max(score.end(), tempos[-1].time + 1)]
        longest = max(range(len(tempos)), key=lambda i: ends[i] - tempos[i].time)
        return float(round(tempos[longest].qpm, 3))

    def decode(self, tokens: Sequence[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """Tokens to MIDI at qpm quarter notes per minute; MidiTok skips tokens out of place (a lone Duration)."""
        from miditok import TokSequence

        qpm = qpm or DEFAULT_QPM
        midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
        inst = pretty_midi.Instrument(program=program, name=pretty_midi.program_to_instrument_name(program))
        known = [t for t in tokens if t in self.tokenizer.vocab]
        if known:
            score = self.tokenizer.decode([TokSequence(tokens=known)])
            seconds_per_tick = 60.0 / qpm / score.ticks_per_quarter
            for track in score.tracks:
                for n in track.notes:
                    if n.duration > 0:
                        inst.notes.append(pretty_midi.Note(VELOCITY, n.pitch, n.time * seconds_per_tick,
                                                           (n.time + n.duration) * seconds_per_tick))
        midi.instruments.append(inst)
        return midi

    @property
    def infills(self) -> bool:
        """TSD cuts a piece at any time; REMI's bar and position tokens are not cut here."""
        return self.layout == "tsd"

    def span(self, midi: bytes, start: float, end: float) -> list[str]:
        """The notes beginning in [start, end) quarters, from a time shift off `start` to one up to `end` (TSD)."""
        from symusic import Note

        if self.layout != "tsd":
            return super().span(midi, start, end)
        score = self._score(Music(None, _midi=midi))
        tpq = score.ticks_per_quarter
        low, high = round(start * tpq), round(end * tpq)
        notes = [n for t in score.tracks for n in t.notes if low <= n.time < high]
        if not score.tracks:
            return []
        for note in notes:
            note.time -= low
        # a note at `end` that the tokens then lose: MidiTok writes the time shifts up to it
        score.tracks[0].notes = [*notes, Note(high - low, 1, PITCH_RANGE[0], VELOCITY)]
        (sequence,) = self.tokenizer.encode(score)
        return list(sequence.tokens)[:-2]

    def advance(self, vocabulary: Sequence[str]) -> np.ndarray:
        """A time shift's quarters; every other token takes no time."""
        return np.array([token_quarters(t) if t.startswith("TimeShift_") else 0.0 for t in vocabulary])

    def transpose(self, token: str, semitones: int) -> str | None:
        """A pitch moved by semitones (None if it leaves the piano); every other token stays."""
        if not token.startswith("Pitch_"):
            return token
        moved = int(token[6:]) + semitones
        return f"Pitch_{moved}" if PITCH_RANGE[0] <= moved <= PITCH_RANGE[1] else None

    def full_vocabulary(self) -> list[str]:
        """Every pitch of the piano and every duration and time shift of the grid (MidiTok's whole token set, without
        the padding token MidiTok always adds, which no piece holds)."""
        return sorted(set(self.tokenizer.vocab) - set(self.tokenizer.special_tokens))

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """The known token of the same kind closest in pitch or length (None if there is none of that kind)."""
        if token in known:
            return token
        kind = token.split("_", 1)[0] + "_"
        same = [k for k in known if k.startswith(kind)]
        if kind == "Pitch_":
            return min(same, key=lambda k: abs(int(k[6:]) - int(token[6:])), default=None)
        if kind in ("Duration_", "TimeShift_"):
            values = sorted((token_quarters(k), k) for k in same)
            if not values:
                return None
            i = bisect.bisect_left(values, (token_quarters(token), ""))
            near = values[max(0, i - 1):i + 1]
            return min(near, key=lambda v: abs(v[0] - token_quarters(token)))[1]
        return None
