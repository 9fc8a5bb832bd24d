"""Bars of the right length by construction: a tracker that reads abc text as it is written, one character at a
time, and says which next tokens keep every bar the metre's length. The abc encoding's sampler masks the rest.

It follows `M:` and `L:` (in the header, on a body line or inline), every note's and rest's length (`A3/2`, `z2`,
`A/`), broken rhythm (`A>B`: both notes must have the same length, as abc2midi requires), tuplets (`(3abc`), chords
(`[CEG]2`: the first note's length times the chord's), grace notes (`{g}`: no time), chord symbols (no time),
multi-bar rests (`Z`), ties (to the same note only), repeats and endings; characters a normalised tune body does
not have (decorations, stray letters) are masked. A bar line may be written only where the bar is
full, a note only where it fits. Short bars only where abc2midi (and a musician) expects them: the tune's first bar
may be a pickup (anacrusis), and then a section may close with a bar that the pickup completes (`A|dfa afd|B2c d2:|`
in 6/8), after which the next section starts with the pickup again, or the tune ends. A first ending comes before
its second, a repeat opened with `|:` is closed before the tune ends, and a tune ends after a bar line or a full
(or pickup-completed) bar. K:, M: and L: fields take only values abc2midi knows.

A length is decided at the character that ends it: after `A` the sampler may write `2` or `/` only if some length
they lead to fits the bar, and the character after the note only if its length as written fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from pianocomposer.reading.abc_notation import HORNPIPE_METRES

NOTES = set("ABCDEFGabcdefg")
RESTS = set("zx")
ACCIDENTALS = set("^_=")
OCTAVE_MARKS = set(",'")
LENGTH_CHARS = set("0123456789/")
BODY_FIELDS = set("KLM")  # field lines (and inline fields) a normalised tune body keeps
INERT = set(" \n)-")  # characters of a tune body that take no time and end a note: space, line end, slur end, tie
# The values a K:, M: or L: field may take (the corpus's, and their kin): abc2midi refuses others (`K:G/2A2`).
FIELD_VALUES = {
    "K": {tonic + accidental + mode for tonic in "ABCDEFG" for accidental in ("", "#", "b")
          for mode in ("", "m", "min", "maj", "mix", "dor", "phr", "lyd", "loc", "aeo", "ion")},
    "M": {"C", "C|"} | {f"{n}/{d}" for n in range(1, 13) for d in (1, 2, 4, 8, 16)},
    "L": {f"1/{d}" for d in (1, 2, 4, 8, 16, 32)}}
FIELD_LINES = {f"{name}:{value}" for name, values in FIELD_VALUES.items() for value in values}
FIELD_PREFIXES = {line[:i] for line in FIELD_LINES for i in range(len(line) + 1)}
BAR_LINES = ("|", "||", "|]", "|:", ":|", "::", "|1", ":|2")  # the corpus's bar lines (`[1`, `[2` apart)
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


# Time is counted in integer ticks (Fractions cost ~100x more in the sampler's inner loop): a whole note has
# WHOLE ticks, divisible by every unit length down to 1/64, by eighths of it, and by tuplet ratios up to 9.
WHOLE = 2**14 * 315
EIGHTHS = {text: int(length_value(text) * 8) for text in LENGTHS}  # a written length in eighths of the unit
REACH: dict[str, tuple[int, ...]] = {}  # a length being written -> every value (eighths) it may become, ascending
for _text in LENGTHS:
    for _i in range(len(_text) + 1):
        REACH[_text[:_i]] = tuple(sorted({*REACH.get(_text[:_i], ()), EIGHTHS[_text]}))
REACH_SETS = {text: frozenset(values) for text, values in REACH.items()}


def parse_metre(value: str) -> int | None:
    """A bar's length in ticks from an M: value ('6/8', 'C', 'C|'), or None (free metre, or unreadable)."""
    value = value.strip()
    if value in ("C", "C|"):
        return WHOLE
    num, slash, den = value.partition("/")
    try:
        bar = Fraction(sum(int(n) for n in num.split("+")), int(den)) if slash else None
    except (ValueError, ZeroDivisionError):
        return None
    return int(bar * WHOLE) if bar and bar > 0 and (bar * WHOLE).denominator == 1 else None


def parse_unit(value: str) -> int | None:
    """The unit note length of an L: value ('1/8') in ticks, or None."""
    try:
        unit = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        return None
    return int(unit * WHOLE) if unit > 0 and (unit * WHOLE / 64).denominator == 1 else None


class BarState(NamedTuple):
    """Where the writing of a tune stands, as far as bar lengths go (immutable: `feed` returns the next state; a
    named tuple, as it is copied at every character and hashed for the mask cache)."""

    mode: str = "header"  # header | field | inline | body | quote | grace | bracket | chord
    line: str = ""  # the field line being written (header or body field, inline field), or a grace group
    bar: int | None = None  # the metre's bar length in ticks (None: free, nothing is checked)
    unit: int = WHOLE // 8
    at_line_start: bool = True
    used: int = 0  # the bar's written time so far, in ticks
    note: str | None = None  # the length being written after a note, rest or chord ('' just after the letter)
    note_base: int = 8  # a chord's first note's length (eighths of the unit), times which the chord's own counts
    chord_first: str | None = None  # the first note's length inside a chord
    chord_notes: int = 0
    multirest: bool = False  # the note being written is `Z`: its digits count bars
    accidental: str = ""  # the accidental written before the coming note (`^`, `^^`, `_`, `__`, `=`)
    pitch: str = ""  # the note being written or just written: its letter and octave marks ('' for a rest or chord)
    tie: str | None = None  # after `-`: the pitch the next note must have
    gap: bool = False  # the last character was a space or a line end (a normalised body has no two in a row)
    tuplet_left: int = 0
    tuplet_q: int = 1  # a tuplet's notes take q/p of their written time
    tuplet_p: int = 1
    last: int | None = None  # the last note's duration, while a broken-rhythm mark may follow it
    broken: int | None = None  # the duration the note after `>`/`<` must have
    marks: int = 0  # `>` or `<` written in a row (at most two)
    paren: bool = False  # just after `(`: a digit makes a tuplet
    graced: bool = False  # a grace group waits for its note: no other may come first (abc2midi's error)
    run: str = ""  # the bar line being written (`|`, `:|`, `||`, `|1`, ...)
    bar_started: bool = False  # anything with time in this bar yet
    repeat_open: bool = False
    repeated: bool = False  # a `:|` has closed a repeat and no `|:` opened one since: no first ending may start
    ending: int = 0  # 0 none, 1 in a first ending, 3 just after the first ending's `:|`, 2 in a second ending
    pickup: int | None = None  # the first bar's time if it was short (an anacrusis), 0 if full, None until it ends
    owed: int = 0  # after a section's short closing bar: the next bar's time (the pickup again), 0 for a full bar
    hornpipe: bool = False  # the header's R: is a hornpipe: abc2midi plays it only in 2/4 or 4/4
    section_pickup: bool = False  # the section a `:|` repeats starts with a pickup (its closing bar is short)
    stuck: bool = False  # the bar's remaining time cannot be filled: its bar line is allowed anyway
    wanted: tuple[tuple[str, str], ...] = ()  # field values asked for (`generate --key/--metre`): (("K", "Dmix"),)

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
        if self.mode in ("header", "field"):
            if ch != "\n":
                return self._field_char(ch)
            if self.line[:1] in FIELD_VALUES and (self.line not in FIELD_LINES or not self._as_wanted(self.line)):
                return None
            return self._field_line(self.line, header=self.mode == "header")
        if self.mode == "quote":
            return self._replace(mode="body") if ch == '"' else self
        if self.mode == "grace":
            return self._grace(ch)
        if self.mode == "inline":
            if ch != "]":
                return self._field_char(ch)
            if self.line not in FIELD_LINES or not self._as_wanted(self.line):
                return None
            return self._replace(mode="body", line="")._field_line(self.line, header=False, inline=True)
        if self.bar is None:
            return self._free(ch)
        if ch in " \n" and self.gap:
            return None  # no run of spaces, no blank line (which would end the tune)
        if self.mode == "bracket":
            state = self._after_bracket(ch)
        elif self.mode == "chord":
            state = self._in_chord(ch)
        else:
            state = self._body(ch)
        return state if state is None or state.gap == (ch in " \n") else state._replace(gap=ch in " \n")

    def _free(self, ch: str) -> BarState:
        """Free metre (no M:, or M:none): only fields are followed, in case a metre comes."""
        if self.at_line_start and ch in BODY_FIELDS:
            return self._replace(mode="field", line=ch, at_line_start=False)
        if ch == "[":
            return self._replace(mode="bracket")
        if self.mode == "bracket":
            return self._replace(mode="inline", line=ch) if ch in BODY_FIELDS else self._replace(mode="body")
        return self._replace(at_line_start=ch == "\n")

    def _as_wanted(self, line: str) -> bool:
        """Whether a whole field line has the value asked for, if one was."""
        name, _, value = line.partition(":")
        return dict(self.wanted).get(name, value) == value

    def _field_char(self, ch: str) -> BarState | None:
        """A character of a field line: a K:, M: or L: field only on its way to a value abc2midi knows (a
        hornpipe's metre one it plays them in)."""
        line = self.line + ch
        wanted = dict(self.wanted)
        if line[:2] == "R:" and "M" in wanted and wanted["M"] not in HORNPIPE_METRES and (
                line.lower() == "r:h" or "hornpipe" in line.lower()):
            return None  # abc2midi plays a hornpipe only in 2/4 or 4/4, and another metre was asked for
        if line[:1] not in FIELD_VALUES:
            return self._replace(line=line)
        if line[:1] in wanted and not f"{line[:1]}:{wanted[line[:1]]}".startswith(line):
            return None
        if line == "K" and self.mode == "header" and "M" in wanted and self.bar is None:
            return None  # the metre asked for comes before the key ends the header
        if line not in FIELD_PREFIXES or (self.hornpipe and line[:1] == "M" and
                                          not any(f"M:{m}".startswith(line) for m in HORNPIPE_METRES)):
            return None
        return self._replace(line=line)

    def _field_line(self, line: str, header: bool, inline: bool = False) -> BarState | None:
        """A finished field line: M: and L: change the metre and unit, K: ends the header."""
        name, _, value = line.partition(":")
        state = self._replace(line="", mode="header" if header else "body", at_line_start=not inline)
        if name == "R" and header:
            state = state._replace(hornpipe="hornpipe" in value.lower())
        if name == "M" and self.hornpipe and value.strip() not in HORNPIPE_METRES:
            return None
        if name == "M":
            state = state._replace(bar=parse_metre(value))
            if state.bar is not None and not header and (self.used or self.note is not None):
                return None  # a metre change inside a bar
        elif name == "L":
            state = state._replace(unit=parse_unit(value) or state.unit)
        elif name == "K" and header:
            state = state._replace(mode="body")
        if not inline:
            state = state._replace(gap=True)  # the line ended
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
            if ch in OCTAVE_MARKS and self.note == "" and self.chord_notes == 0 and self.pitch:
                # `,` lowers an upper-case note, `'` raises a lower-case one (abc2midi refuses `e,`); a tied
                # note keeps its octave
                if self.pitch[0].isupper() != (ch == ",") or not (self.tie or self.pitch + ch).startswith(
                        self.pitch + ch):
                    return None
                return self._replace(pitch=self.pitch + ch)
            state = self._finish_note()
            if state is None:
                return None
            return state._after_note(ch)
        if self.paren:
            if ch in "23456789":
                return self._tuplet(int(ch))  # None where it would nest, or its notes cannot fit
            return self._replace(paren=False)._body(ch)
        return self._after_note(ch)

    def _after_note(self, ch: str) -> BarState | None:
        """A character that is not part of a note's length."""
        if self.accidental:  # an accidental belongs to the note it stands before; `^^` and `__` are double
            if ch in NOTES:
                return self._replace(accidental="")._start_note(ch)
            return self._replace(accidental=self.accidental + ch) if self.accidental == ch in "^_" else None
        if ch in '([{"' and not self.note_fits():
            return None  # a slur, chord, grace note or chord symbol leads to a note, and none fits the bar
        if ch in "><":
            second = self.last if self.last is not None else self.broken
            if second is None or self.marks >= 2 or second > self.remaining():
                return None  # a broken rhythm needs a note before it, one or two marks, and room for its second note
            return self._replace(broken=second, last=None, marks=self.marks + 1)
        # a slur's end may stand between a note and its broken-rhythm mark: `(AB)>c`
        state = self._replace(last=self.last if ch == ")" else None, at_line_start=ch == "\n")
        if self.broken is not None and ch not in NOTES and ch not in RESTS and ch not in ACCIDENTALS \
                and ch not in '([{"':
            return None  # a broken rhythm's second note must follow
        if self.at_line_start and ch in BODY_FIELDS:
            return state._replace(mode="field", line=ch)
        if ch == "-":
            return state._replace(tie=self.pitch) if self.pitch and self.tie is None else None
        if self.tie is not None and ch not in NOTES and ch not in ACCIDENTALS and ch not in " |":
            return None  # a tie leads to the same note
        if ch in NOTES or ch in RESTS:
            return state._start_note(ch if ch in NOTES else "")
        if ch == "Z":
            if self.used or self.broken is not None:
                return None  # a multi-bar rest fills whole bars
            return state._replace(note="", multirest=True, bar_started=True)
        if ch in ACCIDENTALS:
            return state._replace(accidental=ch) if state._start_note("") is not None else None
        if ch in "|:":
            return state._replace(at_line_start=self.at_line_start)._bar_run(ch)
        if ch == "[":
            return state._replace(mode="bracket")
        if ch == "(":
            return state._replace(paren=True)
        if ch == '"':
            return state._replace(mode="quote")
        if ch == "{":
            return state._replace(mode="grace") if not self.graced else None
        if ch in LENGTH_CHARS or ch not in INERT:
            return None  # a length with no note before it, or a character a normalised tune body does not have
        return state

    def _grace(self, ch: str) -> BarState | None:
        """Inside `{...}`: grace notes only (no time, no broken rhythm, no nesting), at least one before `}`."""
        if ch == "}":
            return self._replace(mode="body", line="", graced=True) if any(c in NOTES for c in self.line) else None
        if ch in NOTES or ch in ACCIDENTALS or ch in OCTAVE_MARKS or ch in LENGTH_CHARS:
            return self._replace(line=self.line + ch) if len(self.line) < 8 else None
        return None

    def note_fits(self) -> bool:
        """Whether a note fits the bar at its shortest."""
        return self.remaining() >= self.duration(1)

    def _start_note(self, letter: str) -> BarState | None:
        """A note letter (or a rest: ''): it must fit the bar at its shortest, and be the tied note after a tie."""
        if not self.note_fits() or (self.tie is not None and self.tie[:1] != letter):
            return None
        return self._replace(note="", note_base=8, bar_started=True, pitch=letter, graced=False)

    def duration(self, eighths: int) -> int:
        """Ticks of the next note written with this length (eighths of the unit), times its base and tuplet."""
        q, p = (self.tuplet_q, self.tuplet_p) if self.tuplet_left else (1, 1)
        return eighths * self.note_base * self.unit * q // (64 * p)

    def remaining(self) -> int:
        """Time left in the bar, in ticks."""
        return (self.owed or self.bar) - self.used

    def closing_short(self) -> bool:
        """Whether the bar so far is a section's closing bar that the tune's pickup completes."""
        return bool(self.pickup) and not self.owed and self.used == self.bar - self.pickup

    def _fits(self, eighths: int) -> bool:
        """Whether a note of this written length (times its base) fits the bar, and matches a broken rhythm."""
        duration = self.duration(eighths)
        if self.broken is not None and duration != self.broken:
            return False
        return duration <= self.remaining()

    def _can_fit(self, text: str) -> bool:
        """Whether some length that `text` (a length being written) leads to fits (the shortest, unless a broken
        rhythm asks for one exact length)."""
        if self.broken is None:
            return self._fits(REACH[text][0])
        unit_duration = self.duration(1)
        return self.broken % unit_duration == 0 and self.broken // unit_duration in REACH_SETS[text]

    def _lengthen(self, ch: str) -> BarState | None:
        """A digit or `/` of the length being written: some length it leads to must fit."""
        text = self.note + ch
        if self.multirest:
            return self if ch.isdigit() else None  # Z's digits count bars, not length
        if text not in REACH or not self._can_fit(text):
            return None
        return self._replace(note=text)

    def _finish_note(self) -> BarState | None:
        """The length as written is final: the note takes its time from the bar."""
        if self.multirest:
            return self._replace(note=None, multirest=False, used=self.bar)  # Z: whole bars
        if self.note not in LENGTHS or not self._fits(EIGHTHS[self.note]):
            return None
        if self.tie is not None and self.tie != self.pitch:
            return None
        duration = self.duration(EIGHTHS[self.note])
        tuplet_left = max(0, self.tuplet_left - 1)
        return self._replace(note=None, note_base=8, chord_first=None, used=self.used + duration,
                       last=duration if self.broken is None else None, broken=None, marks=0, tuplet_left=tuplet_left,
                       tie=None,
                       tuplet_q=self.tuplet_q if tuplet_left else 1, tuplet_p=self.tuplet_p if tuplet_left else 1)

    def _tuplet(self, p: int) -> BarState | None:
        """`(p`: the next p notes take the time of q (3 for 2, 2 for 3, 3 for 4; else 3 in compound metres, 2);
        not inside another tuplet, and only where p notes of the shortest length fit."""
        compound = self.bar_numerator() % 3 == 0 and self.bar_numerator() > 3
        q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
        if self.tuplet_left or self.remaining() < q * self.unit // 8:
            return None
        return self._replace(paren=False, tuplet_left=p, tuplet_q=q, tuplet_p=p)

    def bar_numerator(self) -> int:
        """The metre's numerator (6 of 6/8), as the bar's length counts in eighth notes or quarters."""
        return Fraction(self.bar, WHOLE).numerator

    def _after_bracket(self, ch: str) -> BarState | None:
        """After `[`: a chord, an inline field, an ending (`[1`) or a bar line (`[|`)."""
        if ch in BODY_FIELDS:
            return self._replace(mode="inline", line=ch)
        if ch.isdigit():
            return self._replace(mode="body")._bar_run_ending(ch)
        if ch == "|":
            return self._replace(mode="body")._bar_run(ch)
        if ch in NOTES or ch in ACCIDENTALS or ch in RESTS:
            return self._replace(mode="chord", chord_first=None, chord_notes=0)._in_chord(ch)
        return None

    def _in_chord(self, ch: str) -> BarState | None:
        """Inside `[...]`: the first note's length counts; `]` ends the chord, whose own length may follow."""
        if ch == "]":
            if self.chord_notes == 0:
                return None
            first = self.note if self.chord_first is None else self.chord_first
            if first is None or first not in LENGTHS:
                return None
            state = self._replace(mode="body", note="", note_base=EIGHTHS[first], chord_first=None,
                            chord_notes=0, bar_started=True, pitch="", graced=False)
            return state if state._can_fit("") else None
        if ch in NOTES or ch in RESTS:
            first = self.chord_first if self.chord_notes != 1 else self.note
            return self._replace(note="", chord_notes=self.chord_notes + 1,
                           chord_first=first if self.chord_notes else None)
        if ch in LENGTH_CHARS and self.note is not None:
            return self._replace(note=self.note + ch) if self.note + ch in REACH else None
        if ch in ACCIDENTALS or ch in OCTAVE_MARKS or ch == "-":
            return self
        return None

    def _bar_run(self, ch: str) -> BarState | None:
        """A character of a bar line. Its first one decides where a bar may end (full, a pickup, or a closing bar
        the pickup completes); every one must lead to a bar line that may end here (see `_end_run`)."""
        run = self.run + ch
        if not self.run:
            if self.broken is not None or self.note is not None or self.tuplet_left:
                return None
            empty_line_start = not self.bar_started and self.at_line_start  # `|:` opening a line after `:|`
            pickup = self.pickup is None and 0 < self.used < self.bar  # the tune's first bar may be short
            if not (self.remaining() == 0 or pickup or self.closing_short() or empty_line_start or self.stuck
                    or self.remaining() < self.unit // 8):
                return None
        if not any(line.startswith(run) and self._replace(run=line)._end_run() is not None for line in BAR_LINES):
            return None
        return self._replace(run=run)

    def _bar_run_ending(self, digit: str) -> BarState | None:
        """`[1`, `[2`: an ending, at the start of a bar."""
        if self.used or self.note is not None or not self._ending_allowed("", digit):
            return None
        return self._replace(run="[" + digit)

    def _ending_allowed(self, run: str, digit: str) -> bool:
        """Whether a bar line (`run` before the digit) may start this ending: a first ending outside any other, a
        second one where the first closes (`:|2`) or has just closed (`:|` then `[2`); abc2midi refuses a `2` with
        no `1`, and a `1` after a `:|` until a `|:` opens the next repeat."""
        closes = ":" in run
        if digit == "1":
            return self.ending == 0 and not closes and not self.repeated
        return digit == "2" and ((self.ending == 1 and closes) or (self.ending == 3 and not closes))

    def _end_run(self) -> BarState | None:
        """The bar line is written: a new bar starts; `|:` opens a repeat, `:|` closes it, `::` does both. None
        where abc2midi would object: an ending out of order, `|:` inside an open repeat, a short bar that closes
        no section, a repeat whose first and last bars do not make a whole bar when played again."""
        run = self.run
        opens = run.endswith(":") or "|:" in run or "::" in run
        closes = run.startswith(":") or ":|" in run or "::" in run
        ends_section = opens or "||" in run or "]" in run
        digit = next((i for i, c in enumerate(run) if c.isdigit()), None)
        if digit is not None:
            if not self._ending_allowed(run[:digit], run[digit]):
                return None
            ending = int(run[digit])
        elif self.ending == 1:  # a first ending closes with `:|`, and nothing else ends it
            if ends_section:
                return None
            ending = 3 if closes else 1
        elif self.ending == 2:  # a second ending runs to the end of its section
            if closes and not opens:
                return None
            ending = 0 if ends_section else 2
        else:
            ending = 0
        if opens and not closes and self.repeat_open:
            return None  # `|:` inside an open repeat (abc2midi: another |: after a |:)
        pickup, owed, section_pickup = self.pickup, self.owed if not self.bar_started else 0, self.section_pickup
        if not self.bar_started and self.owed and not opens:
            return None  # a bar line with no bar between a short closing bar and its pickup (abc2midi's count)
        if self.bar_started and pickup is None:
            pickup = self.used if self.used < self.bar else 0
            if pickup and closes:
                return None  # a pickup is no section of its own
            section_pickup = pickup > 0
        elif self.bar_started and not self.stuck:
            short = self.closing_short()
            if short and not (closes or ends_section):
                return None  # a short bar only closes a section, and the next section's pickup completes it
            if closes and short != self.section_pickup:
                return None  # played again, the section's last bar and its first must make one bar
            owed = pickup if short and digit is None else 0
        if opens:
            section_pickup = owed > 0
        return self._replace(run="", used=0, bar_started=False, stuck=False, at_line_start=False, ending=ending,
                             repeat_open=(self.repeat_open and not closes) or opens,
                             repeated=(self.repeated or closes) and not opens, pickup=pickup, owed=owed,
                             section_pickup=section_pickup)

    def recover(self, text: str) -> BarState:
        """The state after text that broke a bar (drawn where nothing fitted): a fresh bar from there."""
        state = self._replace(mode="body", line="", used=0, note=None, run="", broken=None, last=None, marks=0,
                              tuplet_left=0, tie=None, accidental="", paren=False, stuck=False, gap=False,
                              chord_notes=0, chord_first=None, multirest=False)
        return state.feed(text) or state

    def can_end(self) -> bool:
        """Whether the tune may end here: in the body, after a bar line or a full last bar, no repeat left open."""
        if self.mode == "header":
            return False
        if self.bar is None:
            return True
        state = self._end_run() if self.run else self
        return (state is not None and (not state.bar_started or state.used == state.bar or state.closing_short())
                and state.note is None
                and state.ending != 1
                and not state.repeat_open and state.tie is None and state.broken is None and state.mode == "body")


def behaviour(token: str) -> str:
    """A token with each character replaced by one that the tracker treats alike (any note letter by `A`, any
    rest by `z`, any accidental by `^`, a character with no part in bars by `~`), so that tokens that behave alike
    share one check."""
    out = []
    for ch in token:
        if ch in NOTES:
            out.append("A")
        elif ch in RESTS:
            out.append("z")
        elif ch in ACCIDENTALS:
            out.append("^")
        elif ch in LENGTH_CHARS or ch in BODY_FIELDS or ch in OCTAVE_MARKS or ch in '|:][(){}"!><\n -Z':
            out.append(ch)
        else:
            out.append("~")
    return "".join(out)


BODY_MODES = ("body", "bracket", "chord", "grace")  # where a token can break a bar; elsewhere (fields, quotes) none can


def _checked_line(state: BarState) -> bool:
    """Whether the field line being written is checked character by character: K:, M: and L: values, and R: where a
    metre is asked for (no hornpipe in a metre abc2midi does not play it in)."""
    return state.line[:1] in FIELD_VALUES or (state.line[:2] == "R:" and any(n == "M" for n, _ in state.wanted))


class MetreConstraint:
    """The abc sampler's mask: for each tune in a batch, the tokens that keep its bars the metre's length.

    Masks are cached per tracker state, so a run of many tunes computes each distinct state's mask once.
    """

    def __init__(self, vocabulary: Sequence[str], end_token: str, fields: dict[str, str] | None = None):
        self.tokens = list(vocabulary)
        self.wanted = tuple(sorted((fields or {}).items()))  # header values every tune must have (K:, M:)
        self.end = self.tokens.index(end_token) if end_token in self.tokens else None
        kinds = [behaviour(t) for t in self.tokens]
        self.kinds = sorted(set(kinds))  # each kind is checked once per state
        self.kind_of = np.array([self.kinds.index(k) for k in kinds])
        self.cache: dict[BarState, np.ndarray] = {}
        self.states: list[BarState] = []
        self.unconstrained = 0  # steps where nothing fitted and the mask was lifted

    def start(self, primers: list[list[str]]) -> None:
        """Read each tune's primer (its beginning)."""
        self.states = []
        for primer in primers:
            state = BarState(wanted=self.wanted)
            for token in primer:
                state = state.feed(token) or state  # a primer that breaks a bar is taken as it is
            self.states.append(state)

    def mask(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), vocabulary) True where a token may come next in each of these tunes."""
        return np.stack([self._mask(self.states[row]) for row in rows])

    def _mask(self, state: BarState) -> np.ndarray:
        # The mask depends on the last note's pitch only through a tie and its letter's case (which octave mark
        # may follow), and on its duration only through whether there is one (a broken-rhythm mark may follow):
        # states that differ only there share a mask.
        pitch = state.pitch if state.tie else state.pitch[:1].isupper() if state.pitch else None
        if state.mode in BODY_MODES:
            key = state._replace(last=state.last is not None, pitch=pitch)
        else:  # a K:, M: or L: field (and R: when a metre is asked for) is checked as it is written; elsewhere only
            key = state if _checked_line(state) else state.mode  # the end
        cached = self.cache.get(key)
        if cached is None:
            cached = self._allowed(state)
            if not cached.any():  # nothing fits: let this bar go rather than stop the tune
                cached = self._allowed(state._replace(stuck=True, tie=None))
            if not cached.any():  # still nothing: a bar line, from which the tracker starts a fresh bar
                cached = np.array([t.startswith("|") for t in self.tokens], bool)
            self.cache[key] = cached
        return cached

    def _allowed(self, state: BarState) -> np.ndarray:
        if (state.mode in BODY_MODES and state.tie is not None) or _checked_line(state):
            # a tie asks for one letter, a field for its values: every token is checked itself
            mask = np.array([state.feed(token) is not None for token in self.tokens], bool)
        elif state.mode in BODY_MODES:
            mask = np.array([state.feed(kind) is not None for kind in self.kinds], bool)[self.kind_of]
        else:
            mask = np.ones(len(self.tokens), bool)
        if self.end is not None:
            mask[self.end] = state.can_end()
        return mask

    def advance(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Take the drawn token of each of these tunes."""
        for row, token_id in zip(rows, ids, strict=True):
            token = self.tokens[int(token_id)]
            state = self.states[row]
            if token_id == self.end:
                continue
            nxt = state.feed(token)
            if nxt is None:  # drawn with the mask lifted: go on from a fresh bar
                self.unconstrained += 1
                nxt = state.recover(token)
            self.states[row] = nxt


def bar_ending(tokens: Sequence[str], bars: int) -> int | None:
    """How many of a tune's tokens make exactly `bars` whole bars (its opening pickup not counted) and a bar line
    after which it may end (no repeat left open, no first ending without its second), or None where it cannot: also
    where a bar before it is short but the opening pickup (a section's short closing bar and the next one's pickup
    make one bar as abc2midi plays them, but two on the page, so the count would not be the musician's)."""
    state, done = BarState(), 0
    for i, token in enumerate(tokens, 1):
        before, state = state, state.feed(token) or state.recover(token)
        if before.run and not state.run and before.bar_started:  # this token ended a bar line
            opening = before.pickup is None and state.pickup  # the tune's pickup is no bar of its own
            if not opening and before.used < before.bar:
                return None
            done += not opening
        if done >= bars:
            return None
        if state.run in BAR_LINES and state.bar_started and state.can_end() and done + 1 == bars and (
                state.used == state.bar):
            return i
    return None


def last_ending(tokens: Sequence[str]) -> int | None:
    """How many of a tune's tokens it may end after, at the latest (None: nowhere): where a tune cut short (by a
    length limit) ends whole, at a full bar with no repeat left open."""
    state, last, music = BarState(), None, False
    for i, token in enumerate(tokens, 1):
        state = state.feed(token) or state.recover(token)
        music = music or state.bar_started
        if music and state.can_end():
            last = i
    return last
