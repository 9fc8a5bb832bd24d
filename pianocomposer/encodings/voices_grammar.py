"""Whole chorales that read as the voices encoding writes them and as a teacher marks them: a mask over the next
token while the sampler writes.

A piece is `<start>`, a key, then frames of `Beat_n` (or `Frame`), an optional `Fermata`, the soprano, its next
note (`Next_69`, where the encoding reads ahead), alto, tenor and bass (or bass, alto and tenor: the encoding's
order), until `<end>`; where the encoding names the key at every bar, a `Beat_0` is followed by the piece's key.
The mask allows only that order; a held note (`A_64~`) only where the voice sounds that pitch; a new soprano note
only the one its last `Next_` named (none after `Next_end`), and a `Next_` that names the same note again until the
soprano reaches it; beats that count on (`Beat_n` then `Beat_n+1`, or a new bar's `Beat_0`), no bar longer than the
first that closed (a bar may close short, as a pickup or a section's end does).
With the rules (as harmonize keeps them: voice_leading.voice_breaks), an alto, tenor or bass note, new or held on,
does not cross a voice written over or under it; a new one does not move in parallel fifths or octaves with a
written voice that moves the same way (from the notes both last sounded, across a rest too, or last began together)
and on a beat (given the grid) keeps the voices written so far within one triad or seventh chord, unless nothing
else is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pianocomposer.encodings.voices_tokens import HELD, PREFIXES, kind
from pianocomposer.judging.voice_leading import Memory, voice_breaks

VOICES = "".join(PREFIXES)
SILENT = (-1, -1, -1, -1)


class FrameState(NamedTuple):
    """Where a piece is in its grammar, and what the next tokens must agree with."""

    part: str = "start"  # what the last token was: start, Key, beat, bar key, Fermata, S, Next, A, T, B, end
    beat: int | None = None  # the last frame's beat
    bar: int | None = None  # steps in a bar, once the first has closed
    pitches: tuple[int, ...] = SILENT  # each voice's sounding pitch after its last token (-1: silent)
    began: tuple[bool, ...] = (False,) * 4  # whether each voice begins a note in this frame
    memory: Memory = Memory.empty(1)  # the frames before, as the rules remember them
    upcoming: str | None = None  # the soprano's next new note as the last Next_ named it ("end" after the last)
    frames: int = 0
    key: str | None = None  # the piece's key ("7M"), which a bar with `keys` names again


class FrameConstraint:
    """The voices sampler's mask: for each piece of a batch, the tokens that keep its frames in order, its voices
    consistent and (with `rules`) its voice leading clean; see the module's text."""

    def __init__(self, vocabulary: Sequence[str], ahead: bool, rules: bool = True, grid: int | None = None,
                 order: str = VOICES, keys: bool = False):
        self.tokens = list(vocabulary)
        self.keys = keys  # a bar's first frame names the piece's key after its beat
        self.grid = grid  # steps a beat: frames on a beat sound chords (with the rules); None: no chord rule
        self.order = ("S", "Next", *order[1:]) if ahead else tuple(order)
        self.last = order[-1]  # the voice that ends a frame
        # each voice's voices written before it in a frame (S A T B columns), for the rules
        self.written = {v: [VOICES.index(w) for w in order[:i]] for i, v in enumerate(order)}
        self.rules = rules
        kinds = [kind(t) for t in self.tokens]
        self.names = np.array([name for name, _ in kinds])
        self.values = np.array([value.rstrip(HELD) for _, value in kinds])  # a pitch, "rest", "end", a beat
        self.held = np.array([value.endswith(HELD) for _, value in kinds])
        self.pitch = np.array([int(v) if n in VOICES and v.isdigit() else -1 for n, v in zip(self.names, self.values,
                                                                                            strict=True)])
        self.states: list[FrameState] = []

    def start(self, primers: list[list[str]]) -> None:
        """Read each piece's primer (`<start>` is where every state begins)."""
        self.states = []
        for primer in primers:
            state = FrameState()
            for token in primer:
                state = self.feed(state, token) or state  # a primer that breaks a rule is taken as it is
            self.states.append(state)

    def mask(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), vocabulary) True where a token may come next in each of these pieces."""
        return np.stack([self.allowed(self.states[row]) for row in rows])

    def advance(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Take the drawn token of each of these pieces."""
        for row, token_id in zip(rows, ids, strict=True):
            state = self.states[row]
            self.states[row] = self.feed(state, self.tokens[token_id]) or state._replace(part=kind(
                self.tokens[token_id])[0])

    def _next(self, state: FrameState) -> str:
        """The voice (or Next) a frame writes after the last token."""
        return "S" if state.part in ("beat", "bar key", "Fermata") else self.order[self.order.index(state.part) + 1]

    def _bar_key(self, state: FrameState) -> bool:
        """Whether the next token is the key a bar's first frame names again."""
        return self.keys and state.part == "beat" and state.beat == 0

    def allowed(self, state: FrameState) -> np.ndarray:
        """Every token `feed` takes after this state, at once."""
        names, values = self.names, self.values
        if state.part == "end":
            return np.zeros(len(names), bool)
        if state.part == "start":
            return names == "Key"
        if state.part in ("Key", self.last):  # a new frame, or the end
            beats = (names == "Beat") & np.isin(values, [str(b) for b in self._beats(state)])
            return beats | (names == "Frame") | ((names == "<end>") & (state.frames > 0))
        if self._bar_key(state):
            return (names == "Key") & (values == state.key)
        name = self._next(state)
        allowed = names == name
        if name == "Next":
            return allowed & (values == state.upcoming) if not state.began[0] and state.upcoming else allowed
        voice = VOICES.index(name)
        allowed &= ~self.held | (self.pitch == state.pitches[voice])
        if name == "S" and "Next" in self.order and state.upcoming is not None:
            allowed &= self.held | (values == "rest") | (values == state.upcoming)
        if self.rules and voice > 0:
            notes = np.where(allowed & (self.pitch >= 0), self.pitch, -1)
            strong = self.grid is not None and state.beat is not None and state.beat % self.grid == 0
            breaks = voice_breaks(state.memory, np.array([state.pitches]), np.array([state.began]), voice,
                                  np.where(self.held, -1, notes), np.where(self.held, notes, -1), np.array([strong]),
                                  self.written[name])[0]
            allowed = allowed & ~breaks if (allowed & ~breaks).any() else allowed
        if not allowed.any():  # the note asked for is not in the vocabulary: any of the voice's new notes
            allowed = (names == name) & ~self.held
        return allowed | ((names == "Fermata") & (state.part in ("beat", "bar key")))

    def feed(self, state: FrameState, token: str) -> FrameState | None:
        """The state after `token`, or None where the grammar does not allow it there (the rules aside)."""
        name, value = kind(token)
        if state.part == "end":
            return None
        if state.part == "start":
            return state._replace(part="Key", key=value) if name == "Key" else None
        if state.part in ("Key", self.last):
            if name == "<end>":
                return state._replace(part="end") if state.frames else None
            if token == "Frame" or (name == "Beat" and value.isdigit() and int(value) in self._beats(state)):
                beat = int(value) if name == "Beat" else None
                closes = beat == 0 and state.bar is None and state.beat is not None
                return state._replace(part="beat", beat=beat, bar=state.beat + 1 if closes else state.bar,
                                      began=(False,) * 4, memory=state.memory.after(np.array([state.pitches]),
                                                                                    np.array([state.began])))
            return None
        if self._bar_key(state):
            return state._replace(part="bar key") if name == "Key" and value == state.key else None
        if token == "Fermata" and state.part in ("beat", "bar key"):
            return state._replace(part="Fermata")
        if name != self._next(state):
            return None
        if name == "Next":
            if not state.began[0] and state.upcoming not in (None, value):
                return None  # the soprano has not reached the note the last Next_ named
            return state._replace(part="Next", upcoming=value)
        voice, pitch = VOICES.index(name), value.rstrip(HELD)
        if value.endswith(HELD) and (not pitch.isdigit() or int(pitch) != state.pitches[voice]):
            return None  # a held note continues the voice's sounding pitch
        new_note = pitch.isdigit() and not value.endswith(HELD)
        if name == "S" and new_note and "Next" in self.order and state.upcoming not in (None, pitch):
            return None  # a new soprano note is the one the last Next_ named (none after Next_end)
        pitches, began = list(state.pitches), list(state.began)
        pitches[voice], began[voice] = int(pitch) if pitch.isdigit() else -1, new_note
        return state._replace(part=name, pitches=tuple(pitches), began=tuple(began),
                              frames=state.frames + (name == self.last))

    @staticmethod
    def _beats(state: FrameState) -> range | list[int]:
        """The beats the next frame may have: the next one in the bar, or a new bar's first."""
        if state.beat is None:
            return range(64)
        if state.bar is None or state.beat + 1 < state.bar:
            return [0, state.beat + 1]  # a bar may close short (a pickup, a section's end), never long
        return [0]
