"""The abc encoding (the char-rnn line): the normalised text of abc tunes (see abc_notation) as characters
(default) or folk-rnn-style tokens, that a network learns to write; each tune's tokens end with END, so a
generating network says when its tune is done."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pretty_midi

from pianocomposer.encodings.abc_metre import MetreConstraint, bar_ending, last_ending
from pianocomposer.encodings.base import Encoding
from pianocomposer.errors import PianoComposerError
from pianocomposer.reading.abc_notation import (
    DEFAULT_QPM,
    FIELD,
    TEXT_FORM,
    AbcError,
    abc2midi_problems,
    normalise,
    parse_tune,
    score_to_midi,
)
from pianocomposer.reading.readers import ABC_SUFFIXES, Music

END = "</s>"  # the last token of every tune
UNITS = ("token", "char")
TUNE_START = "X:1\n"  # what a generated tune starts from when no primer text is given
MAX_TUNE_TOKENS = 2500  # the most tokens a generated tune may take (the corpus's longest is shorter)

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



@functools.lru_cache(maxsize=1)
def _music21_version() -> str:
    """music21's version, for extract's cache key."""
    from importlib.metadata import version

    return version("music21")


class AbcEncoding(Encoding):
    """The text of normalised abc tunes as characters (default) or folk-rnn-style tokens; see the module docstring.

    Reads .abc books only. Decoding joins the tokens and plays the tune through music21.
    """

    name = "abc"
    suffixes = ABC_SUFFIXES
    description = "the normalised abc text of whole folk tunes (title, rhythm, metre, note length, key, then the music)"
    end_token = END
    text_suffix = ".abc"
    default_preset = "abc"
    default_length = MAX_TUNE_TOKENS
    keeps_time = False  # a tune has no tempo of its own
    header_fields = True
    bars_in_tokens = True
    checks: ClassVar[dict[str, tuple[str, str]]] = {
        "abc2midi_clean": ("clean under abc2midi", "no error and no bar of the wrong length (abcMIDI)"),
        "full_bars": ("bars of the metre's length", "share of bars as long as the metre (music21's reading)")}

    def __init__(self, unit: str = "char"):
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
        self.unit = unit

    @property
    def params(self) -> dict:
        """The unit: token or char."""
        return {"unit": self.unit}

    @property
    def cache_key(self) -> str:
        """Tunes are checked with music21: the cache is valid for its version and the normalised text's form."""
        return f"music21 {_music21_version()}, abc text form {TEXT_FORM}"

    def encode(self, music: Music) -> list[str]:
        """A tune's tokens, normalised (mechanical faults repaired) and ended; raises AbcError if it is not abc,
        music21 cannot play it, or abc2midi reports an error or a bar of the wrong length (the model learns only
        clean tunes)."""
        if music.text is None:
            raise AbcError("the abc encoding reads abc tunes only")
        normal = normalise(music.text)
        parse_tune(normal)
        problems = abc2midi_problems(normal)
        if problems:
            raise AbcError(f"abc2midi: {problems[0].split(' : ', 1)[-1]}")
        return tokenize(normal, self.unit)

    def primer_from_text(self, text: str) -> list[str]:
        """The beginning of a tune (e.g. `X:1\\nM:6/8\\nK:D\\n`) as tokens, without an END."""
        text = text.replace("\\n", "\n")  # a primer typed on the command line
        tokens = tokenize(text if text.endswith("\n") else text + "\n", self.unit)[:-1]
        return tokens if text.endswith("\n") else tokens[:-1]

    def start(self, seeds: list[list[str]], n: int, rng: np.random.Generator) -> tuple[list[list[str]], list[str]]:
        """Every tune starts from `X:1` (a tune's own beginning, not a window of another tune)."""
        return [self.primer_from_text(TUNE_START)] * n, [TUNE_START.strip()] * n

    def check(self, tokens: Sequence[str]) -> dict[str, float]:
        """Bar health: whether abc2midi reports the tune clean, and its share of bars as long as the metre (a pickup
        or a tune's short last bar counts as not); a tune music21 cannot read scores 0 on both."""
        text = detokenize(tokens)
        try:
            measures = list(parse_tune(text).recurse().getElementsByClass("Measure"))
        except AbcError:
            return {"abc2midi_clean": 0.0, "full_bars": 0.0}
        full = [m.duration.quarterLength == m.barDuration.quarterLength for m in measures]
        return {"abc2midi_clean": float(not abc2midi_problems(text)), "full_bars": sum(full) / max(len(full), 1)}

    def constraint(self, vocabulary: Sequence[str], fields: dict[str, str] | None = None) -> MetreConstraint:
        """The metre-aware sampler: every bar the metre's length, by construction (abc_metre.py), and the K: and
        M: values in `fields` where asked for."""
        return MetreConstraint(vocabulary, END, fields)

    def finish(self, primer: list[str], continuation: list[str]) -> list[str]:
        """The whole tune; one that did not end within its length is cut back to its last full bar (no repeat left
        open) and ended there, if it has one."""
        tokens = super().finish(primer, continuation)
        if tokens[-1:] != [END] and (cut := last_ending(tokens)) is not None:
            return [*tokens[:cut], END]
        return tokens

    def cut_at_bar(self, tokens: Sequence[str], bars: int) -> list[str] | None:
        """The tune ended after its `bars`-th whole bar, where it can end there (None: it cannot)."""
        cut = bar_ending(tokens, bars)
        return None if cut is None else [*tokens[:cut], END]

    def text(self, tokens: Sequence[str], number: int = 1) -> str:
        """The tune's abc text, numbered X:number."""
        return re.sub(r"^X:[^\n]*", f"X:{number}", detokenize(tokens), count=1)

    def sheet(self, midi: pretty_midi.PrettyMIDI, text: str | None, title: str, source: str):
        """The tune's score from its abc text (its own title, key, metre and repeats)."""
        from pianocomposer.writing.score import abc_score

        return abc_score(text, source) if text else super().sheet(midi, text, title, source)

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
