"""The voices encoding: four-part music (Soprano, Alto, Tenor, Bass) on a time grid, for harmonisation.

A piece is `<start>`, its key (`Key_7M`: the tonic's pitch class and M or m), then one frame per grid step (a
sixteenth by default): the step's place in its bar (`Beat_0` on the downbeat), `Fermata` where one is held, and
each voice in order S A T B (or S B A T: `order="SBAT"`) as a new note (`S_67`), the same note held (`S_67~`) or
silence (`S_rest`); `<end>` ends it. This is BachBot's scheme (Liang et al. 2017) with DeepBach's metadata (beat in
the bar, fermata) written as tokens, so the one network reads them in order and a harmoniser can fix the soprano at
every frame. With `beats=False` a frame starts with a plain `Frame` token instead, as BachBot's frame delimiter: the
variant without the beat. The soprano's token is followed by its next new note (`Next_69`, `Next_end` after the
last), so the lower voices are written knowing where the melody goes, as a harmoniser reading the tune does
(`ahead=False` leaves it out: 70 % instead of 80 % chordal onsets when harmonising held-out sopranos). With
`keys=True` every bar's first frame names the piece's key again after its `Beat_0`, so a network that reads a
thousand tokens has it in view at every bar, not only at the start.

Four-voice files are read by track name (`Soprano`, `Alto`, `Tenor`, `Bass`, as `chorales/` has them) or, with
exactly four pitched tracks, from the highest to the lowest; the key from the file's key signature, else
estimated from its notes (Krumhansl-Schmuckler); fermatas from `fermata` text or marker events.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from importlib.metadata import version
from typing import ClassVar

import numpy as np
import pretty_midi

from pianocomposer.encodings.base import Encoding
from pianocomposer.encodings.voices_grammar import FrameConstraint
from pianocomposer.encodings.voices_tokens import (
    END,
    FERMATA,
    FRAME,
    HELD,
    NEXT,
    PREFIXES,
    REST,
    START,
    VOICE_TOKENS,
    VOICES,
    beat,
    beat_token,
    is_frame,
    key_token,
    key_tonic,
    kind,
    next_token,
    pitch,
    voice_token,
)
from pianocomposer.errors import Unplayable
from pianocomposer.judging.voice_leading import FIGURES, judge
from pianocomposer.reading.readers import MIDI_SUFFIXES, Music
from pianocomposer.writing.score import midi_key

# Each voice's compass with a margin (the chorales: S 60-81, A 53-74, T 48-69, B 36-64): transposition keeps a
# voice inside it.
RANGES = {"S": (57, 84), "A": (50, 77), "T": (43, 72), "B": (31, 67)}
DEFAULT_QPM = 100.0
# The orders a frame may write its voices in: the soprano first (a harmoniser is given it), then the inner voices
# and the bass as BachBot wrote them, or the bass before the inner voices, as a student writes the outer voices
# first and fills in the inner ones.
ORDERS = ("SATB", "SBAT")
VELOCITY = 80


class VoicesEncoding(Encoding):
    """Four voices on a grid, frame by frame; see the module docstring."""

    name = "voices"
    suffixes = MIDI_SUFFIXES
    description = ("four voices (S A T B) on a time grid: each step's place in the bar, fermatas, and each voice's "
                   "new, held or silent note and the soprano's next note, after the piece's key")
    end_token = END
    default_length = 6_000  # the most tokens a generated piece may take (the longest chorale: 3,891)
    checks: ClassVar[dict[str, tuple[str, str]]] = FIGURES  # voice leading, as a teacher marks it
    infills = True  # its frames cut a piece at any grid step
    harmonizes = True

    def __init__(self, grid: int = 4, beats: bool = True, ahead: bool = True, order: str = "SATB",
                 keys: bool = False):
        if grid not in (2, 4, 8):
            raise ValueError(f"grid must be 2, 4 or 8 steps a quarter note (got {grid!r})")
        for name, value in (("beats", beats), ("ahead", ahead), ("keys", keys)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false (got {value!r})")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)} (got {order!r})")
        if keys and not beats:
            raise ValueError("keys needs beats: the key is named again on each bar's Beat_0")
        self.grid, self.beats, self.ahead, self.order, self.keys = grid, beats, ahead, order, keys

    @property
    def params(self) -> dict:
        """Steps per quarter note (4: sixteenths), whether a frame names its place in the bar and the soprano's
        next note, the order a frame writes its voices in, and whether each bar names the key again (only when it
        does, so the bundles and token stores made before it name the same parameters)."""
        return {"grid": self.grid, "beats": self.beats, "ahead": self.ahead, "order": self.order,
                **({"keys": True} if self.keys else {})}

    @property
    def lower(self) -> str:
        """The alto, tenor and bass in the order a frame writes them."""
        return self.order[1:]

    @property
    def cache_key(self) -> str:
        """The tokens are read with pretty_midi."""
        return f"pretty_midi {version('pretty_midi')}"

    def encode(self, music: Music) -> list[str]:
        """A four-voice piece's tokens (raises Unplayable for one without four voices)."""
        midi = pretty_midi.PrettyMIDI(io.BytesIO(music.midi))
        tracks = self.voice_tracks(midi)
        key, frames = self.frames(midi, tracks[0].notes, tracks)
        return [START, key, *(t for frame in frames for t in frame), END]

    def frames(self, midi: pretty_midi.PrettyMIDI, soprano: list[pretty_midi.Note],
               tracks: list[pretty_midi.Instrument] | None = None) -> tuple[str, list[list[str]]]:
        """The piece's key token and its frames: `Beat_n`, the key again on a bar's first (with `keys`), `Fermata`
        where one is held, then the soprano's token and (given the four tracks) the other voices'; raises Unplayable
        when no note lands on the grid."""
        frames = max((self._step(midi, n.end) for n in [*soprano, *(n for t in tracks or [] for n in t.notes)]),
                     default=0)
        if frames == 0:
            raise Unplayable("no notes on the grid")
        columns = [self._column(midi, PREFIXES[0], soprano, frames)]
        if self.ahead:
            columns.append(self._next_notes(columns[0]))
        given = dict(zip(PREFIXES[1:], (tracks or [])[1:], strict=False))
        columns += [self._column(midi, p, given[p].notes, frames) for p in self.lower if p in given]
        fermatas = {self._step(midi, e.time) for e in [*midi.text_events, *midi.lyrics]
                    if e.text.strip().lower() == "fermata"}
        key = key_token(*midi_key(midi))
        return key, [
            [beat_token(beat) if self.beats else FRAME, *[key] * (self.keys and beat == 0),
             *[FERMATA] * (frame in fermatas),
             *(column[frame] for column in columns)]
            for frame, beat in enumerate(self._beats(midi, frames))]

    def span(self, midi: bytes, start: float, end: float) -> list[str]:
        """The frames from `start` to `end` quarters (with the start token and key at the piece's start, the end
        token at its end)."""
        key, frames = self.split(self.encode(Music(None, _midi=midi)))
        first, last = round(start * self.grid), round(end * self.grid)
        return [*([START, *([key] if key else [])] if first == 0 else []),
                *(t for frame in frames[first:last] for t in frame), *([END] if last >= len(frames) else [])]

    def advance(self, vocabulary: Sequence[str]) -> np.ndarray:
        """A frame's last voice (the order's last) closes it: a grid step; every other token takes no time."""
        return np.array([1.0 / self.grid if kind(t)[0] == self.order[-1] else 0.0 for t in vocabulary])

    def _column(self, midi: pretty_midi.PrettyMIDI, prefix: str, notes: list[pretty_midi.Note], frames: int
                ) -> list[str]:
        """One voice's token at every frame: a new note, the note held, or silence (a later note cuts one)."""
        column = [voice_token(prefix, None)] * frames
        for note in sorted(notes, key=lambda n: n.start):
            start = self._step(midi, note.start)
            end = max(self._step(midi, note.end), start + 1)
            held = voice_token(prefix, note.pitch, held=True)
            column[start:end] = [voice_token(prefix, note.pitch)] + [held] * (end - start - 1)
        return column[:frames]

    @staticmethod
    def _next_notes(soprano: list[str]) -> list[str]:
        """At every frame, the soprano's next new note after it (`Next_end` after the last)."""
        out, upcoming = [], next_token(None)
        for token in reversed(soprano):
            out.append(upcoming)
            if not token.endswith((HELD, REST)):
                upcoming = next_token(pitch(token))
        return out[::-1]

    def _step(self, midi: pretty_midi.PrettyMIDI, seconds: float) -> int:
        """The grid step nearest a time in the file."""
        return round(midi.time_to_tick(seconds) / midi.resolution * self.grid)

    def voice_tracks(self, midi: pretty_midi.PrettyMIDI) -> list[pretty_midi.Instrument]:
        """The S, A, T, B tracks: by name, or four pitched tracks from the highest to the lowest."""
        pitched = [t for t in midi.instruments if not t.is_drum and t.notes]
        named = {t.name.strip().lower(): t for t in pitched}
        if all(v.lower() in named for v in VOICES):
            return [named[v.lower()] for v in VOICES]
        if len(pitched) != 4:
            raise Unplayable(f"not four voices: {len(pitched)} pitched tracks, none named Soprano, Alto, Tenor, Bass")
        return sorted(pitched, key=lambda t: -np.mean([n.pitch for n in t.notes]))

    def _beats(self, midi: pretty_midi.PrettyMIDI, frames: int) -> list[int]:
        """Each frame's place in its bar, in grid steps, following the time signatures (4/4 where there is none)."""
        changes = sorted(midi.time_signature_changes, key=lambda ts: ts.time) or [pretty_midi.TimeSignature(4, 4, 0)]
        starts = [self._step(midi, ts.time) for ts in changes]
        bars = [max(1, ts.numerator * 4 * self.grid // ts.denominator) for ts in changes]
        # a first bar of its own short metre before the real one (`1/4` then `4/4`) is a pickup: its steps are the
        # end of a bar of the real metre
        offsets = [0] * len(changes)
        if len(changes) > 1 and starts[1] - starts[0] == bars[0] < bars[1]:
            offsets[0] = bars[1] - bars[0]
            bars[0] = bars[1]
        beats, current = [], 0
        for frame in range(frames):
            while current + 1 < len(changes) and starts[current + 1] <= frame:
                current += 1
            beats.append((frame - starts[current] + offsets[current]) % bars[current])
        return beats

    def decode(self, tokens: Sequence[str], program: int = 52, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """Tokens to MIDI with one named track per voice, the key signature and the metre its beats count (a pickup
        as a short first bar, as the chorales have it); raises Unplayable for no notes."""
        qpm = qpm or DEFAULT_QPM
        seconds = 60.0 / qpm / self.grid
        midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
        tracks = {p: pretty_midi.Instrument(program=program, name=v) for p, v in zip(PREFIXES, VOICES, strict=True)}
        sounding: dict[str, pretty_midi.Note | None] = dict.fromkeys(PREFIXES)
        frame, beats = -1, []
        for token in tokens:
            if (step := beat(token)) is not None:
                beats.append(step)
            tonic, minor = key_tonic(token)
            if tonic >= 0 and not midi.key_signature_changes:
                midi.key_signature_changes.append(pretty_midi.KeySignature(tonic + 12 * minor, 0.0))
            elif is_frame(token):
                frame += 1
            elif token == FERMATA and frame >= 0:
                midi.text_events.append(pretty_midi.Text("fermata", frame * seconds))
            elif token[:2] in VOICE_TOKENS and frame >= 0:
                prefix, value = kind(token)
                note, sounds = sounding[prefix], pitch(token)
                if value.endswith(HELD) and note is not None and note.pitch == sounds:
                    note.end = (frame + 1) * seconds
                elif sounds < 0 or value.endswith(HELD):
                    sounding[prefix] = None  # a held note with nothing to hold is silence
                else:
                    sounding[prefix] = pretty_midi.Note(VELOCITY, sounds, frame * seconds, (frame + 1) * seconds)
                    tracks[prefix].notes.append(sounding[prefix])
        if not any(t.notes for t in tracks.values()):
            raise Unplayable("no notes")
        midi.instruments.extend(tracks.values())
        if beats:  # a time signature wherever a bar's length changes: a pickup, a short bar at a section's end
            bar, starts = max(beats) + 1, [i for i, b in enumerate(beats) if b == 0]
            lengths = [b - a for a, b in zip([0, *starts], starts, strict=False)] + [bar]
            current = None
            for start, length in zip([0, *starts], lengths, strict=True):
                if length and length != current:
                    midi.time_signature_changes.append(self._metre(length, start * seconds))
                    current = length
        return midi

    def _metre(self, steps: int, time: float) -> pretty_midi.TimeSignature:
        """A bar of so many grid steps as a time signature (in quarters where it is whole quarters)."""
        for denominator in (4, 8, 16, 32):
            count = steps * denominator / (4 * self.grid)
            if count == int(count):
                return pretty_midi.TimeSignature(int(count), denominator, time)
        return pretty_midi.TimeSignature(steps, 4 * self.grid, time)

    def sheet(self, midi: pretty_midi.PrettyMIDI, text: str | None, title: str, source: str):
        """Soprano and alto on a treble staff over tenor and bass on a bass staff, on the encoding's grid."""
        from pianocomposer.writing.score import satb_score

        return satb_score(midi, title, source, (self.grid,))

    def check(self, tokens: Sequence[str]) -> dict[str, float]:
        """A piece's voice leading (voice_leading.judge); NaN figures for one that decodes to nothing."""
        try:
            return judge(self.decode(tokens).instruments, DEFAULT_QPM / 60 * self.grid)
        except Unplayable:
            return dict.fromkeys(FIGURES, float("nan"))

    @staticmethod
    def split(tokens: Sequence[str]) -> tuple[str | None, list[list[str]]]:
        """A piece's key token (None if it has none) and its frames, each from its `Beat_n` (or `Frame`) on (a key
        named again in a frame stays in it)."""
        key = next((t for t in tokens if key_tonic(t)[0] >= 0), None)
        frames: list[list[str]] = []
        for token in tokens:
            if is_frame(token):
                frames.append([token])
            elif frames and token not in (START, END):
                frames[-1].append(token)
        return key, frames

    def constraint(self, vocabulary: Sequence[str], fields: dict[str, str] | None = None) -> FrameConstraint:
        """Frames in order, held notes that continue their voice, the soprano where its Next_ said, beats that count
        on in bars of one length, and harmonize's rules with chords on the beats (voices_grammar)."""
        return FrameConstraint(vocabulary, self.ahead, grid=self.grid if self.beats else None, order=self.order,
                               keys=self.keys)

    def key_primer(self, tonic: int, minor: bool) -> list[str]:
        """The start token and the key: the model writes the piece in it."""
        return [START, key_token(tonic, minor)]

    def start(self, seeds: list[list[str]], n: int, rng: np.random.Generator) -> tuple[list[list[str]], list[str]]:
        """Every piece starts from its own beginning: the start token, the model writes the key and the rest."""
        return [[START]] * n, ["start"] * n

    def finish(self, primer: list[str], continuation: list[str]) -> list[str]:
        """The whole piece; one that did not end within its length is ended after its last whole frame."""
        tokens = super().finish(primer, continuation)
        if tokens[-1:] == [END]:
            return tokens
        last = max((i for i, t in enumerate(tokens) if t.startswith(f"{self.order[-1]}_")), default=None)
        return tokens if last is None else [*tokens[:last + 1], END]

    def transpose(self, token: str, semitones: int) -> str | None:
        """A voice's pitch moved (None where it leaves the voice's compass), a key moved with it; the rest stay."""
        tonic, minor = key_tonic(token)
        if tonic >= 0:
            return key_token(tonic + semitones, minor)
        prefix, value = kind(token)
        if prefix not in (*RANGES, NEXT) or value in (REST, "end"):
            return token
        held = value.endswith(HELD)
        moved = int(value.rstrip(HELD)) + semitones
        low, high = RANGES[PREFIXES[0] if prefix == NEXT else prefix]
        return voice_token(prefix, moved, held) if low <= moved <= high else None

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """The known note of the same voice (new or held alike) closest in pitch, else None."""
        if token in known:
            return token
        prefix, value = kind(token)
        if prefix not in (*RANGES, NEXT) or pitch(token) < 0:
            return None
        held = value.endswith(HELD)
        same = [k for k in known if kind(k)[0] == prefix and pitch(k) >= 0 and k.endswith(HELD) == held]
        sounds = pitch(token)
        return min(same, key=lambda k: abs(pitch(k) - sounds), default=None)
