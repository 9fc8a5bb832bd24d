"""abc notation, as the readers and the abc encoding both need it: tune books split into tunes, a tune's text
normalised to what a model should learn, checked and played with music21.

A tune's normalised text is `X:1`, the first title, then the rhythm, metre, unit length and key fields
(`R: M: L: K:`, K last; a missing L: made explicit by the abc standard's rule), then the body with comments,
decorations, annotations (quoted text that is not a chord symbol), lyrics, notes and other free-text fields, line
continuations and runs of spaces removed; the key is spelled one way (`K:Gdor`, `K:Am`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import pretty_midi

from pianocomposer.errors import Unplayable

DEFAULT_QPM = 120.0  # a tune without a Q: tempo
VELOCITY, CHORD_VELOCITY = 90, 60
TEXT_FORM = 1  # the version of normalise(): extract's cache holds tokens of this form only
HEADER_ORDER = ("R", "M", "L", "K")  # kept header fields besides X and T, in this order (K must be last)
KEPT_INLINE = set("KLM")

DECORATION = re.compile(r"![^!\n]*!|\+[^+\n]*\+")
QUOTED = re.compile(r'"[^"\n]*"?')
CHORD_SYMBOL = re.compile(r'"[A-G][#b]?(m|min|maj|dim|aug|sus|M|\+|o)?[0-9]*(/[A-Ga-g][#b]?)?"')
KEY = re.compile(r"([A-G][#b]?)\s*([A-Za-z]*)")
MODES = {"": "", "m": "m", "min": "m", "maj": "", "ion": "", "aeo": "aeo", "dor": "dor", "mix": "mix",
         "phr": "phr", "lyd": "lyd", "loc": "loc"}
COMMENT = re.compile(r"(?<!\\)%.*")
FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")


class AbcError(Unplayable):
    """A tune that music21 cannot read, or one without a metre, a key or notes; the message is the reason."""


@dataclass
class Tune:
    """One tune of a book: its position (1-based), X: number, title and raw text."""

    index: int
    number: str
    title: str
    text: str

    @property
    def label(self) -> str:
        """How the tune is named in messages and as a song: position, X: number and title."""
        return f"tune {self.index} (X:{self.number}{' ' + self.title if self.title else ''})"


def split_tunes(text: str) -> list[Tune]:
    """The tunes of an abc book: each starts at an `X:` line; the file header's fields are given to every tune."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("X:")]
    header = [line for line in lines[:starts[0]] if FIELD.match(line)] if starts else []
    tunes = []
    for k, start in enumerate(starts):
        body = lines[start:starts[k + 1] if k + 1 < len(starts) else len(lines)]
        title = next((FIELD.match(x).group(2).strip() for x in body if x.startswith("T:")), "")
        tunes.append(Tune(k + 1, body[0][2:].strip(), title, "\n".join([body[0], *header, *body[1:]])))
    return tunes


def default_unit_length(metre: str) -> str:
    """The abc standard's unit note length when L: is missing: 1/16 below a metre of 3/4, else 1/8."""
    try:
        value = {"C": Fraction(1), "C|": Fraction(1)}.get(metre) or Fraction(metre.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return "1/8"
    return "1/16" if value < Fraction(3, 4) else "1/8"


def canonical_key(value: str) -> str:
    """A K: value in one spelling: `G Dorian`, `GDor` -> `Gdor`; `Amin` -> `Am`; `Dmajor` -> `D`; else unchanged."""
    match = KEY.fullmatch(value.split(" clef")[0].strip())
    mode = MODES.get(match.group(2).lower()[:3] if match and match.group(2) != "m" else "m") if match else None
    return value if mode is None else match.group(1) + mode


def normalise(text: str) -> str:
    """A tune's text as the model learns it (see the module docstring); raises AbcError without a metre or key."""
    header: dict[str, str] = {}
    body: list[str] = []
    in_body = False
    for raw in text.split("\n"):
        if not raw.strip():
            if in_body:
                break  # a blank line ends the tune
            continue
        line = COMMENT.sub("", raw).rstrip()
        if not line:
            continue  # a comment or a %% directive
        field = FIELD.match(line)
        if not in_body:
            if field:
                name, value = field.group(1), " ".join(field.group(2).split())
                if name == "K":
                    header["K"], in_body = canonical_key(value), True
                elif name in ("T", *HEADER_ORDER) and value:
                    header.setdefault(name, value)  # the first title, the first of each field
            continue
        if field:
            if field.group(1) in KEPT_INLINE:
                body.append(f"{field.group(1)}:{' '.join(field.group(2).split())}")
            continue
        line = DECORATION.sub("", line).replace("\\", " ")
        line = QUOTED.sub(lambda m: m.group(0) if CHORD_SYMBOL.fullmatch(m.group(0)) else "", line)  # annotations
        line = re.sub(r"\[([A-Za-z]):[^\]]*\]", lambda m: m.group(0) if m.group(1) in KEPT_INLINE else "", line)
        line = " ".join(line.split())
        if line:
            body.append(line)
    if "M" not in header:
        raise AbcError("no metre (M:)")
    if "K" not in header:
        raise AbcError("no key (K:)")
    if not body:
        raise AbcError("no music after the K: line")
    header.setdefault("L", default_unit_length(header["M"]))
    lines = ["X:1"] + ([f"T:{header['T']}"] if "T" in header else [])
    lines += [f"{name}:{header[name]}" for name in HEADER_ORDER if name in header]
    return "\n".join(lines + body) + "\n"


def parse_tune(text: str):
    """A tune as a music21 score, checked: it must parse, with a metre, a key and at least one note."""
    from music21 import converter, harmony, meter

    try:
        score = converter.parse(text, format="abc")
    except Exception as exc:  # music21 raises many kinds on bad abc
        message = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise AbcError(f"music21 cannot read it ({type(exc).__name__}: {message})") from None
    flat = score.flatten()
    if not flat.getElementsByClass(meter.TimeSignature):
        raise AbcError("no metre (M:)")
    if not flat.getElementsByClass("KeySignature"):
        raise AbcError("no key (K:)")
    if not any(not isinstance(n, harmony.ChordSymbol) for n in flat.notes):
        raise AbcError("no notes")
    return score


def score_to_midi(score, chord_symbols: bool = True, program: int = 0) -> pretty_midi.PrettyMIDI:
    """A music21 score of a tune as MIDI: repeats played out, tied notes joined, grace notes left out, and chord
    symbols (if asked) as block chords held until the next symbol (music21's own MIDI writer fails on about one
    abc tune in eight: a time signature it finds twice)."""
    from music21 import harmony, tempo

    try:
        score = score.expandRepeats()
    except Exception:  # unbalanced repeat signs: play the tune once, as written
        pass
    flat = score.flatten()
    marks = flat.getElementsByClass(tempo.MetronomeMark)
    qpm = float(marks[0].getQuarterBPM()) if marks and marks[0].getQuarterBPM() else DEFAULT_QPM
    seconds = 60.0 / qpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    melody = pretty_midi.Instrument(program=program, name="melody")
    chords = pretty_midi.Instrument(program=program, name="chords")
    held: dict[int, pretty_midi.Note] = {}  # pitch -> the note a tie continues
    symbols = []
    for element in flat.notes:
        start, length = float(element.offset), float(element.duration.quarterLength)
        if isinstance(element, harmony.ChordSymbol):
            symbols.append((start, [int(p.midi) for p in element.pitches]))
            continue
        if length <= 0:
            continue  # a grace note
        for n in getattr(element, "notes", None) or [element]:
            pitch, tie = int(n.pitch.midi), n.tie or element.tie
            if tie is not None and tie.type in ("continue", "stop") and pitch in held:
                held[pitch].end = (start + length) * seconds
            else:
                held[pitch] = pretty_midi.Note(VELOCITY, pitch, start * seconds, (start + length) * seconds)
                melody.notes.append(held[pitch])
    end = max((n.end for n in melody.notes), default=0.0)
    if chord_symbols:
        for k, (start, pitches) in enumerate(symbols):
            stop = symbols[k + 1][0] * seconds if k + 1 < len(symbols) else end
            chords.notes += [pretty_midi.Note(CHORD_VELOCITY, p, start * seconds, stop) for p in pitches
                             if stop > start * seconds]
    midi.instruments += [melody] + ([chords] if chords.notes else [])
    return midi


