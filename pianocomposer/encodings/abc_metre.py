"""Bars of the right length by construction: a tracker that reads abc text as it is written, one character at a
time, and says which next tokens keep every bar the metre's length. The abc encoding's sampler masks the rest.

It follows `M:` and `L:` (in the header, on a body line or inline), every note's and rest's length (`A3/2`, `z2`,
`A/`), broken rhythm (`A>B`: both notes must have the same length, as abc2midi requires), tuplets (`(3abc`), chords
(`[CEG]2`: the first note's length times the chord's), grace notes (`{g}`: no time), chord symbols and
decorations (no time), multi-bar rests (`Z`), repeats and endings. A bar line may be written only where the bar is
full, a note only where it fits. A section (the tune, or what follows `||`, `|:`, `:|`, `::`, `|]`) may start with
a short bar, the pickup; then its last bar, before a section-ending bar line, must make a full bar with the pickup
(abc2midi's rule). A repeat opened with `|:` must be closed before the tune ends, and a tune ends after a bar line.

A length is decided at the character that ends it: after `A` the sampler may write `2` or `/` only if some length
they lead to fits the bar, and the character after the note only if its length as written fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

NOTES = set("ABCDEFGabcdefg")
RESTS = set("zx")
ACCIDENTALS = set("^_=")
OCTAVE_MARKS = set(",'")
LENGTH_CHARS = set("0123456789/")
BODY_FIELDS = set("KLM")  # field lines (and inline fields) a normalised tune body keeps
# Every written length a note may take: the corpus's own (1, 2, /, 3, /2, 4, /4, 6, 3/2, //, 3/4, 8, ...) and their
# kin. Longer or odder lengths are masked: a tune written with these is what a fiddler reads.
LENGTHS = {num + suffix for num in ["", "1", "2", "3", "4", "5", "6", "7", "8", "12", "16"]
           for suffix in ["", "/", "//", "/2", "/4", "/8"]}


def length_value(text: str) -> Fraction:
    """A written length as a multiple of the unit: '' 1, '3' 3, '/' 1/2, '//' 1/4, '3/2' 3/2, '/4' 1/4."""
    num, slash, den = text.partition("/")
    value = Fraction(int(num) if num else 1)
    if not slash:
        return value
    rest = slash + den
    if den.strip("/"):
        return value / int(den.strip("/"))
    return value / 2 ** rest.count("/")


REACH: dict[str, tuple[Fraction, ...]] = {}  # a length being written -> every value it can still become, ascending
for _text in LENGTHS:
    for _i in range(len(_text) + 1):
        REACH.setdefault(_text[:_i], ())
        REACH[_text[:_i]] = tuple(sorted({*REACH[_text[:_i]], length_value(_text)}))
SMALLEST = min(REACH[""])


def parse_metre(value: str) -> Fraction | None:
    """A bar's length in whole notes from an M: value ('6/8', 'C', 'C|'), or None (free metre, or unreadable)."""
    value = value.strip()
    if value in ("C", "C|"):
        return Fraction(1)
    num, slash, den = value.partition("/")
    try:
        bar = Fraction(sum(int(n) for n in num.split("+")), int(den)) if slash else None
    except (ValueError, ZeroDivisionError):
        return None
    return bar if bar and bar > 0 else None


def parse_unit(value: str) -> Fraction | None:
    """The unit note length of an L: value ('1/8'), or None."""
    try:
        unit = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        return None
    return unit if unit > 0 else None


@dataclass(frozen=True)
class BarState:
    """Where the writing of a tune stands, as far as bar lengths go (immutable: `feed` returns the next state)."""

    mode: str = "header"  # header | field | body | quote | grace | decoration | bracket | chord
    line: str = ""  # the field line being written (header or body field, inline field)
    bar: Fraction | None = None  # the metre's bar length in whole notes (None: free, nothing is checked)
    unit: Fraction = Fraction(1, 8)
    at_line_start: bool = True
    used: Fraction = Fraction(0)  # the bar's written time so far, in whole notes
    note: str | None = None  # the length being written after a note, rest or chord ('' just after the letter)
    note_base: Fraction = Fraction(1)  # a chord's first note's value, times which the chord's own length counts
    chord_first: str | None = None  # the first note's length inside a chord
    chord_notes: int = 0
    multirest: bool = False  # the note being written is `Z`: its digits count bars
    tuplet_left: int = 0
    tuplet_ratio: Fraction = Fraction(1)
    last: Fraction | None = None  # the last note's duration, while a broken-rhythm mark may follow it
    broken: Fraction | None = None  # the duration the note after `>`/`<` must have
    paren: bool = False  # just after `(`: a digit makes a tuplet
    run: str = ""  # the bar line being written (`|`, `:|`, `||`, `|1`, ...)
    section_first: bool = True  # the bar is its section's first: it may be a pickup
    bar_started: bool = False  # anything with time in this bar yet
    pickup: Fraction = Fraction(0)  # the section's pickup length
    need_section_end: bool = False  # a short bar that completes the pickup: only a section end may close it
    repeat_open: bool = False
    stuck: bool = False  # the bar's remaining time cannot be filled: its bar line is allowed anyway

    # --- the per-character machine; every method returns the next state, or None where the text breaks a bar ---

    def feed(self, text: str) -> BarState | None:
        """The state after text (a token: one or more characters), or None if it breaks the metre."""
        state: BarState | None = self
        for ch in text:
            state = state._step(ch)
            if state is None:
                return None
        return state

    def _step(self, ch: str) -> BarState | None:
        if self.mode == "header":
            if ch != "\n":
                return replace(self, line=self.line + ch)
            return self._field_line(self.line, header=True)
        if self.mode == "field":
            if ch != "\n":
                return replace(self, line=self.line + ch)
            return self._field_line(self.line, header=False)
        if self.mode in ("quote", "grace", "decoration"):
            closing = {"quote": '"', "grace": "}", "decoration": "!"}[self.mode]
            return replace(self, mode="body") if ch == closing else self
        if self.mode == "inline":
            return replace(self, mode="body", line="")._field_line(self.line, header=False, inline=True) \
                if ch == "]" else replace(self, line=self.line + ch)
        if self.bar is None:
            return self._free(ch)
        if self.mode == "bracket":
            return self._after_bracket(ch)
        if self.mode == "chord":
            return self._in_chord(ch)
        return self._body(ch)

    def _free(self, ch: str) -> BarState:
        """Free metre (no M:, or M:none): only fields are followed, in case a metre comes."""
        if self.at_line_start and ch in BODY_FIELDS:
            return replace(self, mode="field", line=ch, at_line_start=False)
        if ch == "[":
            return replace(self, mode="bracket")
        if self.mode == "bracket":
            return replace(self, mode="inline", line=ch) if ch in BODY_FIELDS else replace(self, mode="body")
        return replace(self, at_line_start=ch == "\n")

    def _field_line(self, line: str, header: bool, inline: bool = False) -> BarState | None:
        """A finished field line: M: and L: change the metre and unit, K: ends the header."""
        name, _, value = line.partition(":")
        state = replace(self, line="", mode="header" if header else "body", at_line_start=not inline)
        if name == "M":
            state = replace(state, bar=parse_metre(value))
            if state.bar is not None and not header and (self.used or self.note is not None):
                return None  # a metre change inside a bar
        elif name == "L":
            state = replace(state, unit=parse_unit(value) or state.unit)
        elif name == "K" and header:
            state = replace(state, mode="body")
        return state

    def _body(self, ch: str) -> BarState | None:
        """Outside chords, quotes, grace notes and fields."""
        if self.run:
            if ch in "|:]" or (ch.isdigit() and self.run[-1] in "|["):
                return self._bar_run(ch)
            state = self._end_run()
            if state is None:
                return None
            return state._body(ch)
        if self.note is not None:
            if ch in LENGTH_CHARS:
                return self._lengthen(ch)
            if ch in OCTAVE_MARKS and self.note == "" and self.chord_notes == 0:
                return self
            state = self._finish_note()
            if state is None:
                return None
            return state._after_note(ch)
        if self.paren:
            if ch in "23456789":
                return self._tuplet(int(ch))
            return replace(self, paren=False)._body(ch)
        return self._after_note(ch)

    def _after_note(self, ch: str) -> BarState | None:
        """A character that is not part of a note's length."""
        if ch in "><":
            if self.last is None and self.broken is None:
                return None  # a broken rhythm needs a note before it
            return replace(self, broken=self.last if self.last is not None else self.broken, last=None)
        # a slur's end may stand between a note and its broken-rhythm mark: `(AB)>c`
        state = replace(self, last=self.last if ch == ")" else None, at_line_start=ch == "\n")
        if self.broken is not None and ch in "|:]\n ":
            return None  # a broken rhythm's second note must follow
        if self.at_line_start and ch in BODY_FIELDS:
            return replace(state, mode="field", line=ch)
        if ch in NOTES or ch in RESTS:
            return state._start_note("")
        if ch == "Z":
            if self.used or self.broken is not None:
                return None  # a multi-bar rest fills whole bars
            return replace(state, note="", multirest=True, bar_started=True)
        if ch in ACCIDENTALS:
            return state
        if ch in "|:":
            return state._bar_run(ch)
        if ch == "[":
            return replace(state, mode="bracket")
        if ch == "(":
            return replace(state, paren=True)
        if ch == '"':
            return replace(state, mode="quote")
        if ch == "{":
            return replace(state, mode="grace")
        if ch == "!":
            return replace(state, mode="decoration")
        if ch in LENGTH_CHARS:
            return None  # a length with no note before it
        return state

    def _start_note(self, length: str) -> BarState | None:
        """A note or rest letter: it must fit the bar at its shortest."""
        if self.remaining() < SMALLEST * self.unit * self.multiplier():
            return None
        return replace(self, note=length, note_base=Fraction(1), bar_started=True)

    def multiplier(self) -> Fraction:
        """What the next note's written length is multiplied by (a tuplet's ratio)."""
        return self.tuplet_ratio if self.tuplet_left else Fraction(1)

    def remaining(self) -> Fraction:
        """Time left in the bar, in whole notes."""
        return self.bar - self.used

    def _fits(self, value: Fraction) -> bool:
        """Whether a note of this written value (times its base) fits the bar, and matches a broken rhythm."""
        duration = value * self.note_base * self.unit * self.multiplier()
        if self.broken is not None and duration != self.broken:
            return False
        return duration <= self.remaining()

    def _lengthen(self, ch: str) -> BarState | None:
        """A digit or `/` of the length being written: some length it leads to must fit."""
        text = self.note + ch
        if self.multirest:
            return self if ch.isdigit() else None  # Z's digits count bars, not length
        if text not in REACH or not any(self._fits(v) for v in REACH[text]):
            return None
        return replace(self, note=text)

    def _finish_note(self) -> BarState | None:
        """The length as written is final: the note takes its time from the bar."""
        if self.multirest:
            return replace(self, note=None, multirest=False, used=self.bar)  # Z: whole bars
        if self.note not in LENGTHS or not self._fits(length_value(self.note)):
            return None
        duration = length_value(self.note) * self.note_base * self.unit * self.multiplier()
        tuplet_left = max(0, self.tuplet_left - 1)
        return replace(self, note=None, note_base=Fraction(1), chord_first=None, used=self.used + duration,
                       last=duration if self.broken is None else None, broken=None, tuplet_left=tuplet_left,
                       tuplet_ratio=self.tuplet_ratio if tuplet_left else Fraction(1))

    def _tuplet(self, p: int) -> BarState:
        """`(p`: the next p notes take the time of q (3 for 2, 2 for 3, 3 for 4; else 3 in compound metres, 2)."""
        compound = self.bar is not None and self.bar.numerator % 3 == 0 and self.bar.numerator > 3
        q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
        return replace(self, paren=False, tuplet_left=p, tuplet_ratio=Fraction(q, p))

    def _after_bracket(self, ch: str) -> BarState | None:
        """After `[`: a chord, an inline field, an ending (`[1`) or a bar line (`[|`)."""
        if ch in BODY_FIELDS:
            return replace(self, mode="inline", line=ch)
        if ch.isdigit():
            return replace(self, mode="body")._bar_run_ending()
        if ch == "|":
            return replace(self, mode="body")._bar_run(ch)
        if ch in NOTES or ch in ACCIDENTALS or ch in RESTS:
            return replace(self, mode="chord", chord_first=None, chord_notes=0)._in_chord(ch)
        return None

    def _in_chord(self, ch: str) -> BarState | None:
        """Inside `[...]`: the first note's length counts; `]` ends the chord, whose own length may follow."""
        if ch == "]":
            if self.chord_notes == 0:
                return None
            first = self.note if self.chord_first is None else self.chord_first
            if first is None or first not in LENGTHS:
                return None
            state = replace(self, mode="body", note="", note_base=length_value(first), chord_first=None,
                            chord_notes=0, bar_started=True)
            return state if any(state._fits(v) for v in REACH[""]) else None
        if ch in NOTES or ch in RESTS:
            first = self.chord_first if self.chord_notes != 1 else self.note
            return replace(self, note="", chord_notes=self.chord_notes + 1,
                           chord_first=first if self.chord_notes else None)
        if ch in LENGTH_CHARS and self.note is not None:
            return replace(self, note=self.note + ch) if self.note + ch in REACH else None
        if ch in ACCIDENTALS or ch in OCTAVE_MARKS or ch == "-":
            return self
        return None

    def _bar_run(self, ch: str) -> BarState | None:
        """A character of a bar line. Its first one decides: the bar must be full (or a pickup, or complete one)."""
        if self.run:
            if self.need_section_end and self.run == "|" and ch not in "|]":
                return None
            return replace(self, run=self.run + ch, need_section_end=False)
        if self.broken is not None or self.note is not None or self.tuplet_left:
            return None
        state = replace(self, run=ch)
        if self.used == self.bar or not self.bar_started or self.stuck:
            return state
        if self.section_first:
            return replace(state, pickup=self.used)
        if self.pickup and self.used + self.pickup == self.bar:
            return state if ch == ":" else replace(state, need_section_end=True)
        if self.remaining() < SMALLEST * self.unit:
            return state  # a remainder no note can fill (left by a tuplet): let the bar go
        return None

    def _bar_run_ending(self) -> BarState | None:
        """`[1`: an ending, at the start of a bar."""
        if self.used or self.note is not None:
            return None
        return replace(self, run="[1")

    def _end_run(self) -> BarState | None:
        """The bar line is written: a new bar starts (a new section after `||`, `|:`, `:|`, `::`, `|]`)."""
        run = self.run
        if self.need_section_end:
            return None
        section_end = any(mark in run for mark in ("||", ":", "|]", "[|"))
        opens = run.endswith(":") or "|:" in run or "::" in run
        closes = run.startswith(":") or ":|" in run or "::" in run
        repeat_open = (self.repeat_open and not closes) or opens
        section_first = section_end or (self.section_first and not self.bar_started)
        return replace(self, run="", used=Fraction(0), bar_started=False, section_first=section_first,
                       pickup=Fraction(0) if section_end else self.pickup, repeat_open=repeat_open, stuck=False,
                       at_line_start=False)

    def can_end(self) -> bool:
        """Whether the tune may end here: in the body, after a bar line (its bar full), no repeat left open."""
        if self.mode == "header":
            return False
        if self.bar is None:
            return True
        state = self._end_run() if self.run else self
        return (state is not None and not state.bar_started and state.note is None and not state.repeat_open
                and state.mode == "body")


class MetreConstraint:
    """The abc sampler's mask: for each tune in a batch, the tokens that keep its bars the metre's length.

    Masks are cached per tracker state, so a run of many tunes computes each distinct state's mask once.
    """

    def __init__(self, vocabulary: Sequence[str], end_token: str):
        self.tokens = list(vocabulary)
        self.end = self.tokens.index(end_token) if end_token in self.tokens else None
        self.cache: dict[BarState, np.ndarray] = {}
        self.states: list[BarState] = []
        self.unconstrained = 0  # steps where nothing fitted and the mask was lifted

    def start(self, primers: list[list[str]]) -> None:
        """Read each tune's primer (its beginning)."""
        self.states = []
        for primer in primers:
            state = BarState()
            for token in primer:
                state = state.feed(token) or state  # a primer that breaks a bar is taken as it is
            self.states.append(state)

    def mask(self) -> np.ndarray:
        """(batch, vocabulary) True where a token may come next."""
        return np.stack([self._mask(state) for state in self.states])

    def _mask(self, state: BarState) -> np.ndarray:
        if state.mode == "header":
            mask = np.ones(len(self.tokens), bool)
            if self.end is not None:
                mask[self.end] = False
            return mask
        cached = self.cache.get(state)
        if cached is None:
            cached = np.array([state.feed(t) is not None for t in self.tokens], bool)
            if self.end is not None:
                cached[self.end] = state.can_end()
            if not cached.any():  # nothing fits: let this bar go rather than stop the tune
                cached = np.array([replace(state, stuck=True).feed(t) is not None for t in self.tokens], bool)
            self.cache[state] = cached
        return cached

    def advance(self, ids: np.ndarray) -> None:
        """Take each tune's drawn token."""
        for row, token_id in enumerate(ids):
            token = self.tokens[int(token_id)]
            state = self.states[row]
            if token_id == self.end:
                continue
            nxt = state.feed(token)
            if nxt is None:  # drawn with the mask lifted: go on from a fresh bar
                self.unconstrained += 1
                nxt = replace(state, used=Fraction(0), note=None, run="", broken=None, last=None,
                              need_section_end=False, tuplet_left=0, stuck=False)
                nxt = nxt.feed(token) or nxt
            self.states[row] = nxt
