"""abc notation, as the readers and the abc encoding both need it: tune books split into tunes, a tune's text
normalised to what a model should learn, checked and played with music21.

A tune's normalised text is `X:1`, the first title, then the rhythm, metre, unit length and key fields
(`R: M: L: K:`, K last; a missing L: made explicit by the abc standard's rule), then the body with comments,
decorations, annotations (quoted text that is not a chord symbol), lyrics, notes and other free-text fields, line
continuations and runs of spaces removed; the key is spelled one way (`K:Gdor`, `K:Am`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pretty_midi

from pianocomposer.errors import PianoComposerError, Unplayable

DEFAULT_QPM = 120.0  # a tune without a Q: tempo
VELOCITY, CHORD_VELOCITY = 90, 60
TEXT_FORM = 2  # the version of normalise(): extract's cache holds tokens of this form only (2: the repairs)
HEADER_ORDER = ("R", "M", "L", "K")  # kept header fields besides X and T, in this order (K must be last)
KEPT_INLINE = set("KLM")

DECORATION = re.compile(r"![^!\n]*!|\+[^+\n]*\+")
QUOTED = re.compile(r'"[^"\n]*"?')
CHORD_SYMBOL = re.compile(r'"[A-G][#b]?(m|min|maj|dim|aug|sus|M|\+|o)?[0-9]*(/[A-Ga-g][#b]?)?"')
KEY = re.compile(r"([A-G][#b]?)\s*([A-Za-z]*)")
MODES = {"": "", "m": "m", "min": "m", "maj": "", "ion": "", "aeo": "aeo", "dor": "dor", "mix": "mix",
         "phr": "phr", "lyd": "lyd", "loc": "loc"}
# Single-letter decorations (staccato, roll, fermata, accent, mordents, coda, segno, trill, bowings): performance
# marks that abc2midi misreads where they stand before a bar line or inside a broken rhythm. Quoted chord symbols and
# inline fields are matched first and kept.
LETTER_DECORATION = re.compile(r'("[^"]*"|\[[KLM]:[^\]]*\])|[.~HLMOPSTuv]')
# A tie and the note it ties to: O'Neill's transcriptions write slurs between different notes as ties (`G3-A`),
# which abc2midi rejects ("Could not find note to be tied").
TIE = re.compile(r"[_^=]*([A-Ga-g][,']*)[\d/]*-(?=[\s|:\](]*[_^=]*([A-Ga-g][,']*))")
HORNPIPE_METRES = {"2/4", "4/4", "C"}  # abc2midi plays R:hornpipe with swing, and only in these metres
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


def repair_line(line: str, repairs: list[str]) -> str:
    """A body line with its mechanical faults mended: letter decorations dropped, ties between different notes
    dropped (they are slurs); the name of each kind of repair made is added to repairs."""
    mended = LETTER_DECORATION.sub(lambda m: m.group(1) or "", line)
    if mended != line:
        repairs.append("decorations")
    untied = TIE.sub(lambda m: m.group(0)[:-1] if m.group(1) != m.group(2) else m.group(0), mended)
    if untied != mended:
        repairs.append("ties between different notes")
    return untied


def normalise(text: str, repairs: list[str] | None = None) -> str:
    """A tune's text as the model learns it (see the module docstring), mechanical faults repaired (named in
    `repairs` if given); raises AbcError without a metre or key."""
    repairs = [] if repairs is None else repairs
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
        line = " ".join(repair_line(line, repairs).split())
        if line:
            body.append(line)
    if "M" not in header:
        raise AbcError("no metre (M:)")
    if "K" not in header:
        raise AbcError("no key (K:)")
    if not body:
        raise AbcError("no music after the K: line")
    header.setdefault("L", default_unit_length(header["M"]))
    if "hornpipe" in header.get("R", "").lower() and header["M"] not in HORNPIPE_METRES:
        del header["R"]
        repairs.append("hornpipe rhythm in another metre")
    lines = ["X:1"] + ([f"T:{header['T']}"] if "T" in header else [])
    lines += [f"{name}:{header[name]}" for name in HEADER_ORDER if name in header]
    return "\n".join(lines + body) + "\n"


_PARSE_LOCK = threading.Lock()


def _no_beams(*args, **kwargs) -> None:
    """Stands in for music21's Part.makeBeams while a tune is read."""


def parse_tune(text: str):
    """A tune as a music21 score, checked: it must parse, with a metre, a key and at least one note. The score has
    no beams: music21's abc reader spends half its time beaming every measure, which no use here needs (MIDI,
    measures, the check)."""
    from music21 import converter, harmony, meter, stream

    try:
        with _PARSE_LOCK:  # the class attribute below is seen by every thread
            stream.Part.makeBeams = _no_beams
            try:
                score = converter.parse(text, format="abc")
            finally:
                del stream.Part.makeBeams
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




BAR_LENGTH = re.compile(r"Bar \d+ has [\d/]+ time units while the time signature has [\d/]+")


def abc2midi_problems(text: str) -> list[str]:
    """What abcMIDI's abc2midi (the independent check) says is wrong with a tune: its `Error` lines and its
    bar-length warnings (a bar whose notes do not fill the metre), read from its messages, since it exits 0 and
    writes a MIDI file even for junk. Raises PianoComposerError when abc2midi is not installed."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("abc2midi") is None:
        raise PianoComposerError("abc2midi is not installed (Debian/Ubuntu: apt-get install abcmidi)")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "t.abc").write_text(text, encoding="utf-8")
        proc = subprocess.run(["abc2midi", "t.abc", "-o", "t.mid"], cwd=folder, capture_output=True, text=True,
                              errors="replace", timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    problems = [line.strip() for line in lines if line.startswith("Error") or BAR_LENGTH.search(line)]
    return problems or ([f"abc2midi exited with code {proc.returncode}"] if proc.returncode else [])
