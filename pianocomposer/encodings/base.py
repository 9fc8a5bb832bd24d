"""The base of every encoding: the shared workflow (file -> pieces -> tokens, seeds -> pieces -> files) with the
hooks that differ between encodings, so a caller never asks which encoding it has (as MidiTok's MusicTokenizer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import pretty_midi

from pianocomposer.config import DEFAULT_LENGTH, DEFAULT_PRESET
from pianocomposer.errors import PianoComposerError, Unplayable, first_line
from pianocomposer.reading.readers import ABC_SUFFIXES, MIDI_SUFFIXES, Music, Unreadable, kind, read_file


class Constraint(Protocol):
    """What a sampler may draw next, for each piece of a batch (abc: bars of the metre's length)."""

    def start(self, primers: list[list[str]]) -> None:
        """Read each piece's primer."""

    def mask(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), vocabulary) True where a token may come next in each of these pieces."""

    def advance(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Take the drawn token id of each of these pieces."""


class Encoding:
    """What every encoding provides; subclasses fill the hooks (encode, decode, transpose, nearest) and override
    the generation defaults that differ. Its name and params are recorded in tokens.json and in the bundle."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = MIDI_SUFFIXES + ABC_SUFFIXES  # the files it reads (abc: as music21 plays)
    description: ClassVar[str]  # what its tokens are, in one phrase (model cards)
    end_token: ClassVar[str | None] = None  # the token that ends a piece, or None: pieces run to their length
    text_suffix: ClassVar[str | None] = None  # a piece's text form is written with this suffix (abc: .abc)
    default_preset: ClassVar[str] = DEFAULT_PRESET  # the network `train` builds when no preset is asked for
    default_length: ClassVar[int] = DEFAULT_LENGTH  # tokens per piece (with an end token: the most a piece may take)
    checks: ClassVar[dict[str, tuple[str, str]]] = {}  # rules a piece is judged by: name -> (label, what it means)
    # What the encoding can do, by name, so that a caller asks for the capability and never for an encoding:
    harmonizes: ClassVar[bool] = False  # a model can write the lower voices under a given melody (harmonize)
    keeps_time: ClassVar[bool] = True  # a piece has a tempo: lengths in seconds, continuing a MIDI primer
    header_fields: ClassVar[bool] = False  # key and metre are header fields the sampler can be held to (abc's K:, M:)
    bars_in_tokens: ClassVar[bool] = False  # its tokens mark the bars: a piece can end after its n-th (cut_at_bar)

    @property
    def infills(self) -> bool:
        """Whether a piece can be cut in time to rewrite its bars (`span`, `advance`: infill)."""
        return False

    @property
    def params(self) -> dict:
        """What the encoding was made with (e.g. a time grid), recorded in tokens.json and the bundle."""
        return {}

    @property
    def cache_key(self) -> str:
        """The libraries (and versions) the tokens come from: extract's cached tokens are valid for this key."""
        raise NotImplementedError

    # --- reading: a file's pieces to tokens ---

    def encode(self, music: Music) -> list[str]:
        """One piece's tokens (raises Unplayable, or the reader's error, for a piece it cannot use)."""
        raise NotImplementedError

    def tempo(self, music: Music) -> float | None:
        """A piece's main tempo in quarter notes per minute where decoding needs one, else None."""
        return None

    def read_songs(self, path: Path) -> list[dict]:
        """The songs of one file as extract records them: `{part, tokens, qpm}` each (part names a tune of a book,
        else None), or `{part, error}` for a piece or file that cannot be used; one bad tune costs only itself."""
        try:
            pieces = read_file(path)
        except MemoryError:
            raise
        except Exception as exc:
            return [{"part": None, "error": f"not a readable {kind(path)} file ({type(exc).__name__}: "
                                            f"{first_line(exc)})"}]
        replies = []
        for piece in pieces:
            if isinstance(piece, Unreadable):
                replies.append({"part": piece.part, "error": piece.reason})
                continue
            try:
                tokens = self.encode(piece)
                replies.append({"part": piece.part, "tokens": tokens, "qpm": self.tempo(piece)} if tokens
                               else {"part": piece.part, "error": "no pitched notes"})
            except MemoryError:
                raise
            except Unplayable as exc:
                replies.append({"part": piece.part, "error": str(exc)})
            except Exception as exc:  # one piece that trips a library must not cost the file's other pieces
                if piece.part is None:
                    reason = f"not a readable {kind(path)} file ({type(exc).__name__}: {first_line(exc)})"
                else:
                    reason = f"cannot be played ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
                replies.append({"part": piece.part, "error": reason})
        return replies

    def encode_file(self, path: Path) -> list[str]:
        """The first piece of a file as tokens, without an end token: a primer (raises PianoComposerError)."""
        replies = self.read_songs(Path(path))
        for reply in replies:
            if "tokens" in reply:
                tokens = reply["tokens"]
                return tokens[:-1] if self.end_token is not None and tokens[-1:] == [self.end_token] else tokens
        raise PianoComposerError(f"{path}: {replies[0]['error'] if replies else 'no music in it'}")

    # --- writing: tokens to music ---

    def decode(self, tokens: Sequence[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """Tokens as MIDI at qpm quarter notes per minute (None: the encoding's default); raises Unplayable."""
        raise NotImplementedError

    def text(self, tokens: Sequence[str], number: int = 1) -> str | None:
        """A piece's text form (written beside its MIDI with text_suffix), numbered in its run; None if it has none."""
        return None

    def sheet(self, midi: pretty_midi.PrettyMIDI, text: str | None, title: str, source: str):
        """The piece's score (a music21 Score, score.py): a piano piece's grand staff, in the key of its notes."""
        from pianocomposer.writing.score import piano_score

        return piano_score(midi, title, source)

    def transpose(self, token: str, semitones: int) -> str | None:
        """The token moved by semitones, or None if it leaves the playable range."""
        raise NotImplementedError

    def full_vocabulary(self) -> list[str] | None:
        """Every token the encoding's parameters allow, where that set does not depend on a corpus (so any folder
        tokenizes into a model's vocabulary and a model can be fine-tuned on it), else None: the vocabulary is
        the training songs' own tokens."""
        return None

    def nearest(self, token: str, known: Sequence[str]) -> str | None:
        """The known token closest to token, or None if nothing is close."""
        raise NotImplementedError

    # --- generating: how a piece starts and ends ---

    def start(self, seeds: list[list[str]], n: int, rng: np.random.Generator) -> tuple[list[list[str]], list[str]]:
        """n primers for pieces that are given none, each with a label: the bundle's stored seed windows from the
        training songs, in a random order (repeating past their count)."""
        if not seeds:
            raise PianoComposerError("the bundle stores no seed windows to start from")
        picks = rng.permutation(len(seeds))
        chosen = [int(picks[i % len(seeds)]) for i in range(n)]
        return [seeds[i] for i in chosen], [f"seed window {i}" for i in chosen]

    def primer_from_text(self, text: str) -> list[str]:
        """`--primer-text`: the start of a piece in the encoding's text form, as tokens."""
        raise PianoComposerError(f"--primer-text is for text encodings (abc); this bundle's is {self.name}")

    def fit_primer(self, tokens: list[str], seq_len: int) -> list[str]:
        """The part of a primer the network is primed with: the last window (a piece with an end token keeps its
        whole beginning, as it is a piece's start)."""
        return tokens if self.end_token is not None else tokens[-seq_len:]

    def finish(self, primer: list[str], continuation: list[str]) -> list[str]:
        """A piece from its primer and what was generated: the continuation, or with an end token the whole piece
        from its primer up to and including the end."""
        if self.end_token is None:
            return continuation
        end = continuation.index(self.end_token) + 1 if self.end_token in continuation else len(continuation)
        return primer + continuation[:end]

    def incomplete(self, tokens: Sequence[str], length: int) -> str | None:
        """Why a generated piece is not whole (a tune that did not end within `length` tokens), or None."""
        if self.end_token is not None and tokens[-1:] != [self.end_token]:
            return f"the piece did not end within {length} tokens"
        return None

    @property
    def ends_itself(self) -> bool:
        """Whether a piece ends itself (with the end token) rather than running to its length."""
        return self.end_token is not None

    def excerpt(self, tokens: list[str], n: int) -> list[str]:
        """A piece cut to n tokens, to set beside corpus songs of that length (a piece that ends itself is whole)."""
        return tokens if self.ends_itself else tokens[:n]

    def check(self, tokens: Sequence[str]) -> dict[str, float]:
        """A piece judged by the encoding's own rules (`checks`): most a share from 0 (none kept) to 1 (all)."""
        return {}

    def constraint(self, vocabulary: Sequence[str], fields: dict[str, str] | None = None) -> Constraint | None:
        """What the sampler must keep to while writing pieces of this encoding (None: nothing); `fields` are the
        header values a text encoding writes as asked (abc: {"K": "Dmix", "M": "6/8"})."""
        return None

    def cut_at_bar(self, tokens: Sequence[str], bars: int) -> list[str] | None:
        """A piece ended after its `bars`-th bar, where it can end there (None: it cannot); for `bars_in_tokens`."""
        raise NotImplementedError

    # --- rewriting a passage (infill): a span of a piece in time ---

    def span(self, midi: bytes, start: float, end: float) -> list[str]:
        """The tokens of a piece's (a Standard MIDI File's) notes that begin in [start, end) quarter notes, timed
        from `start` to `end`, so that spans one after another join into the piece (infill cuts it at bar lines)."""
        raise PianoComposerError(f"the {self.name} encoding cannot cut a piece at its bars to rewrite them")

    def advance(self, vocabulary: Sequence[str]) -> np.ndarray:
        """How far each token of a vocabulary moves a piece on in time, in quarter notes (infill fills a span)."""
        raise PianoComposerError(f"the {self.name} encoding cannot cut a piece at its bars to rewrite them")

    def key_primer(self, tonic: int, minor: bool) -> list[str] | None:
        """The start of a piece that asks for a key, where the encoding names keys (None: it does not)."""
        return None

    def piece_lengths(self, corpus_lengths: list[int], n: int, rng: np.random.Generator) -> list[int]:
        """Token counts for n pieces to set beside the corpus: corpus songs' own lengths, or, where pieces end
        themselves, the most a piece may take."""
        if self.end_token is not None:
            return [self.default_length] * n
        return [int(x) for x in rng.choice(corpus_lengths, n)]

    @property
    def outputs(self) -> tuple[str, ...]:
        """The suffixes of the files a generated piece may have."""
        return (*(self.text_suffix,) * (self.text_suffix is not None), ".mid", ".wav")
