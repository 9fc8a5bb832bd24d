"""abc notation: tune books split into tunes, tunes normalised, and the abc text encoding (characters or
folk-rnn-style tokens) that a network learns to write.

A tune's normalised text is what the model sees and writes: `X:1`, the first title, then the rhythm, metre, unit
length and key fields (`R: M: L: K:`, K last; a missing L: made explicit by the abc standard's rule), then the
body with comments, decorations, annotations (quoted text that is not a chord symbol), lyrics, notes and other
free-text fields, line continuations and runs of spaces removed; the key is spelled one way (`K:Gdor`, `K:Am`).
Each tune's tokens end with END, so a generating network says when its tune is done.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pretty_midi

from pianocomposer.errors import PianoComposerError

END = "</s>"  # the last token of every tune
DEFAULT_QPM = 120.0  # a tune without a Q: tempo
VELOCITY, CHORD_VELOCITY = 90, 60
UNITS = ("token", "char")
TEXT_FORM = 1  # the version of normalise(): extract's cache holds tokens of this form only
HEADER_ORDER = ("R", "M", "L", "K")  # kept header fields besides X and T, in this order (K must be last)
BODY_FIELDS = set("KLMPQRTVI")  # field lines inside a body that music21 may need (kept); others are dropped
KEPT_INLINE = set("KLM")

# folk-rnn-style tokens of a body line: a note with its accidentals and octave marks, a duration, a bar line or
# repeat, a tuplet, a chord symbol or inline field as one token; anything else is one character.
BODY_TOKEN = re.compile(r"""
    "[^"\n]*"                       # chord symbol "Am"
  | \[[A-Za-z]:[^\]\n]*\]           # inline field [K:D]
  | [_^=]{0,2}[A-Ga-g][,']*         # note
  | \d*/+\d*|\d+                    # duration 2 /2 3/2 //
  | :*\|+[:\]]*\d?|\[\d|:+          # bar line, repeat, ending | || |: :| :: |1 [2 |]
  | \(\d(?::\d*){0,2}               # tuplet (3 (3:2:3
  | .                               # anything else: one character
""", re.VERBOSE)
DECORATION = re.compile(r"![^!\n]*!|\+[^+\n]*\+")
QUOTED = re.compile(r'"[^"\n]*"?')
CHORD_SYMBOL = re.compile(r'"[A-G][#b]?(m|min|maj|dim|aug|sus|M|\+|o)?[0-9]*(/[A-Ga-g][#b]?)?"')
KEY = re.compile(r"([A-G][#b]?)\s*([A-Za-z]*)")
MODES = {"": "", "m": "m", "min": "m", "maj": "", "ion": "", "aeo": "aeo", "dor": "dor", "mix": "mix",
         "phr": "phr", "lyd": "lyd", "loc": "loc"}
COMMENT = re.compile(r"(?<!\\)%.*")
FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")


class AbcError(ValueError):
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


def tokenize(text: str, unit: str) -> list[str]:
    """Normalised tune text to tokens: characters, or folk-rnn-style tokens (a header field is one token, a title
    its characters, a body line split by BODY_TOKEN); END last. Joining the tokens gives the text back."""
    if unit == "char":
        return [*text, END]
    tokens: list[str] = []
    for line in text.splitlines():
        field = FIELD.match(line)
        if line.startswith("T:"):
            tokens += ["T:", *line[2:]]
        elif field and field.group(1) in "XRMLK":
            tokens.append(line)
        else:
            tokens += BODY_TOKEN.findall(line)
        tokens.append("\n")
    return [*tokens, END]


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to tune text, up to the first END."""
    out = []
    for token in tokens:
        if token == END:
            break
        out.append(token)
    return "".join(out)


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


@functools.lru_cache(maxsize=1)
def _music21_version() -> str:
    """music21's version, for extract's cache key."""
    from importlib.metadata import version

    return version("music21")


class AbcEncoding:
    """The text of normalised abc tunes as characters (default) or folk-rnn-style tokens; see the module docstring.

    Reads .abc books only. Decoding joins the tokens and plays the tune through music21.
    """

    name = "abc"
    suffixes = (".abc",)
    end_token = END
    TUNE_START = "X:1\n"  # what a generated tune starts from when no primer text is given

    def __init__(self, unit: str = "char"):
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
        self.unit = unit

    @property
    def params(self) -> dict:
        """The unit: token or char."""
        return {"unit": self.unit}

    @property
    def parser(self) -> str:
        """Tunes are checked with music21: the cache is valid for its version."""
        return f"music21 {_music21_version()}, abc text form {TEXT_FORM}"

    def encode_tune(self, text: str) -> tuple[list[str], float | None]:
        """A raw tune's tokens (normalised; raises AbcError if music21 cannot play it) and no tempo."""
        normal = normalise(text)
        parse_tune(normal)
        return tokenize(normal, self.unit), None

    def tokenize_primer(self, text: str) -> list[str]:
        """The beginning of a tune (e.g. `X:1\\nM:6/8\\nK:D\\n`) as tokens, without an END."""
        text = text.replace("\\n", "\n")  # a primer typed on the command line
        tokens = tokenize(text if text.endswith("\n") else text + "\n", self.unit)[:-1]
        return tokens if text.endswith("\n") else tokens[:-1]

    def encode_file(self, path: Path) -> list[str]:
        """The first tune of an abc file (a primer), as tokens without its END."""
        tunes = split_tunes(Path(path).read_text(encoding="utf-8", errors="replace"))
        if not tunes:
            raise AbcError("no tune (no X: line)")
        return self.encode_tune(tunes[0].text)[0][:-1]

    def qpm(self, path: Path) -> None:
        """abc tunes are played at music21's tempo: none is recorded."""
        return None

    def decode(self, tokens: Sequence[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """Tokens to MIDI through music21 (raises AbcError for a tune it cannot play)."""
        midi = score_to_midi(parse_tune(detokenize(tokens)), program=program)
        if qpm:  # tunes are written at 120 quarter notes per minute
            end = midi.get_end_time()
            midi.adjust_times([0, end], [0, end * DEFAULT_QPM / qpm])
        return midi

    def transpose(self, token: str, semitones: int) -> str | None:
        """abc text is not transposed: only the identity is allowed."""
        if semitones:
            raise PianoComposerError("the abc encoding's text cannot be transposed; train without --transpose")
        return token

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """No nearest token in text: an unknown one is dropped."""
        return token if token in known else None


def read_book(encoding, path: Path) -> list[dict]:
    """Every tune of an abc book as extract's reply: `{part, tokens, qpm}`, or `{part, error}` for a bad tune.

    The abc encoding keeps the text; the MIDI encodings read the tune as music21 plays it (melody and chords in
    brackets; chord symbols left out, as they are accompaniment that abc players improvise).
    """
    tunes = split_tunes(path.read_bytes().decode("utf-8", errors="replace"))
    if not tunes:
        return [{"part": None, "error": "no tune in this abc file (no X: line)"}]
    replies = []
    for tune in tunes:
        try:
            if hasattr(encoding, "encode_tune"):  # an encoding of abc text
                tokens, qpm = encoding.encode_tune(tune.text)
            else:
                tokens, qpm = _encode_via_midi(encoding, tune.text)
            replies.append({"part": tune.label, "tokens": tokens, "qpm": qpm} if tokens
                           else {"part": tune.label, "error": "no pitched notes"})
        except AbcError as exc:
            replies.append({"part": tune.label, "error": str(exc)})
        except Exception as exc:  # one tune that trips a library must not cost the book's other tunes
            replies.append({"part": tune.label, "error": f"cannot be played ({type(exc).__name__}: "
                                                          f"{' '.join(str(exc).split())[:160]})"})
    return replies


def _encode_via_midi(encoding, text: str) -> tuple[list[str], float | None]:
    """A tune's tokens in a MIDI encoding: played by music21 to a temporary MIDI file that the encoding reads."""
    import tempfile

    midi = score_to_midi(parse_tune(normalise(text)), chord_symbols=False)
    with tempfile.NamedTemporaryFile(suffix=".mid") as tmp:
        midi.write(tmp.name)
        return encoding.encode_file(Path(tmp.name)), encoding.qpm(Path(tmp.name))
