"""The generation core that generate, evaluate and demos (and any service) share: a bundle loaded once, primers,
sampling, and the network stepped token by token with its recurrent state carried, all pieces in one batch."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from pianocomposer.config import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from pianocomposer.encodings import Constraint
from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import Bundle, read_bundle, resolve_weights
from pianocomposer.learning.model import StepModel

if TYPE_CHECKING:
    import pretty_midi


@dataclass
class Sampler:
    """How the next token is drawn from the network's probabilities."""

    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = 0
    top_p: float = DEFAULT_TOP_P
    greedy: bool = False
    min_p: float = 0.0  # keep only tokens at least this share of the likeliest one's probability (0: all)

    def check(self) -> None:
        """Reject settings that make no sense, in one line."""
        if self.temperature <= 0:
            raise PianoComposerError(f"--temperature must be > 0 (got {self.temperature})")
        if self.top_k < 0:
            raise PianoComposerError(f"--top-k must be >= 0 (got {self.top_k})")
        if not 0 < self.top_p <= 1:
            raise PianoComposerError(f"--top-p must be in (0, 1] (got {self.top_p})")
        if not 0 <= self.min_p < 1:
            raise PianoComposerError(f"--min-p must be in [0, 1) (got {self.min_p})")

    def describe(self) -> str:
        """The setting in words, e.g. 'temperature 0.8, top-p 0.9'."""
        if self.greedy:
            return "greedy (always the most likely token)"
        return f"temperature {self.temperature:g}, top-p {self.top_p:g}" + (
            f", top-k {self.top_k}" if self.top_k else "") + (f", min-p {self.min_p:g}" if self.min_p else "")

    def __call__(self, probs: np.ndarray, rng: np.random.Generator, allowed: np.ndarray | None = None) -> np.ndarray:
        """One token id per row of probs (batch, vocab), drawn only among the allowed ones (a bool mask) if given."""
        if allowed is not None:
            probs = np.where(allowed, probs, 0.0)
        if self.greedy:
            return probs.argmax(axis=1)
        logp = np.log(np.maximum(probs, 1e-30)) / self.temperature
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        if allowed is not None:
            p = np.where(allowed, p, 0.0)
        p /= p.sum(axis=1, keepdims=True)
        order = np.argsort(-p, axis=1)
        sorted_p = np.take_along_axis(p, order, axis=1)
        keep = np.ones_like(sorted_p, dtype=bool)
        if self.top_k:
            keep[:, self.top_k:] = False
        if self.top_p < 1:
            # keep the smallest prefix whose mass reaches top_p (always at least the top token)
            keep &= (np.cumsum(sorted_p, axis=1) - sorted_p) < self.top_p
        if self.min_p:
            keep &= sorted_p >= self.min_p * sorted_p[:, :1]  # the likeliest token is always kept
        sorted_p = np.where(keep, sorted_p, 0.0)
        return order[np.arange(len(p)), categorical(sorted_p, rng)]


def categorical(odds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row of `odds` (rows, choices; not negative, not normalised), drawn in proportion to them."""
    cdf = np.cumsum(odds, axis=1)
    return np.minimum((cdf < rng.random((len(odds), 1)) * cdf[:, -1:]).sum(axis=1), odds.shape[1] - 1)


def prime(net: StepModel, primers: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run primers of any lengths through the network as one batch; return each row's next-token probabilities and
    recurrent state, as if each primer had run alone."""
    batch = len(primers)
    lengths = np.array([len(p) for p in primers])
    width = int(lengths.max())
    padded = np.zeros((batch, width), np.int32)
    for row, p in enumerate(primers):
        padded[row, width - len(p):] = p  # right-align: every row's last primer token is at the same step
    state = net.initial_state(batch)
    for t in range(width):
        probs, new_state = net.step(padded[:, t], state)
        started = (t >= width - lengths)[:, None]  # rows still in their left padding keep the zero state
        state = [np.where(started, new, old) for new, old in zip(new_state, state, strict=True)]
    return probs, state


def token_id(bundle: Bundle, token: str) -> int | None:
    """A token's id, or its nearest known kin's (a soprano note out of the model's compass), or None (a key or beat
    the model never saw: left out)."""
    vocabulary = bundle.vocabulary
    near = token if token in vocabulary.index else bundle.encoding.nearest(token, vocabulary.tokens)
    return vocabulary.index.get(near) if near is not None else None


def continue_sequences(net: StepModel, primers: list[np.ndarray], length: int, sampler: Sampler,
                       rng: np.random.Generator, progress: bool = False, stop_id: int | None = None,
                       constraint: Constraint | None = None) -> np.ndarray:
    """Prime the network with each primer, then sample `length` tokens per row, carrying the recurrent states;
    with stop_id, a row that draws it is done (its later columns stay 0, and the network steps only the rows still
    writing) and the columns after the last row's are cut off; with a constraint (already started on the primers),
    draw only what it allows."""
    probs, state = prime(net, primers)
    out = np.zeros((len(primers), length), np.int32)
    alive = np.arange(len(primers))  # the rows still writing
    for t in tqdm(range(length), desc="generate", unit="token", disable=not progress or None):
        ids = sampler(probs, rng, None if constraint is None else constraint.mask(alive))
        out[alive, t] = ids
        if constraint is not None:
            constraint.advance(alive, ids)
        if stop_id is not None and (ids == stop_id).any():
            going = ids != stop_id
            if not going.any():
                return out[:, :t + 1]
            alive, ids, state = alive[going], ids[going], [s[going] for s in state]
        probs, state = net.step(ids, state)
    return out


def blas_threads() -> int | None:
    """One BLAS thread when other work already fills the cores, else the library's default (None).

    Idle, OpenBLAS's two threads step the paper model 1.7x faster than one; with the cores busy (a training
    run beside it) its threads wait on each other and 500 tokens took 1-2 s instead of 0.6 s (BENCHMARKS.md).
    """
    return 1 if os.getloadavg()[0] >= (os.cpu_count() or 1) - 0.5 else None


def encode_primer(bundle: Bundle, primer: Path | None, primer_tokens: str | None,
                  primer_text: str | None = None, whole: bool = False) -> list[str] | None:
    """The primer as tokens of the bundle's vocabulary: unknown ones mapped to the nearest known, else dropped;
    the part the network is primed with, or the `whole` primer."""
    if primer is None and primer_tokens is None and primer_text is None:
        return None
    encoding = bundle.encoding
    if primer_text is not None:
        raw, label = encoding.primer_from_text(primer_text), "--primer-text"
    elif primer is not None:
        if not Path(primer).is_file():
            raise PianoComposerError(f"{primer}: no such primer file")
        raw, label = encoding.encode_file(Path(primer)), str(primer)
    else:
        raw, label = primer_tokens.split(), "--primer-tokens"
    known = bundle.vocabulary.tokens
    mapped, changed, dropped = [], 0, 0
    for token in raw:
        if token in bundle.vocabulary:
            mapped.append(token)
            continue
        try:
            near = encoding.nearest(token, known)
        except Exception:
            near = None
        changed += near is not None
        dropped += near is None
        if near is not None:
            mapped.append(near)
    if changed or dropped:
        print(f"warning: {label}: {changed} tokens mapped to the nearest known one, {dropped} skipped",
              file=sys.stderr)
    if not mapped:
        raise PianoComposerError(f"{label}: the primer has no usable notes for this model")
    return mapped if whole else encoding.fit_primer(mapped, bundle.config.seq_len)


class Endless:
    """A constraint that never lets a piece draw its end token, within another constraint's mask if given."""

    def __init__(self, inner: Constraint | None, size: int, end_id: int):
        self.inner, self.size, self.end_id = inner, size, end_id

    def start(self, primers: list[list[str]]) -> None:
        """Read each piece's primer."""
        if self.inner is not None:
            self.inner.start(primers)

    def mask(self, rows: np.ndarray) -> np.ndarray:
        """The inner mask (or every token) without the end token."""
        mask = self.inner.mask(rows) if self.inner is not None else np.ones((len(rows), self.size), bool)
        mask[:, self.end_id] = False
        return mask

    def advance(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Take the drawn tokens."""
        if self.inner is not None:
            self.inner.advance(rows, ids)


def compose_tokens(bundle: Bundle, net: StepModel, primers: list[list[str]], length: int, sampler: Sampler,
                   rng: np.random.Generator, progress: bool = False, constrained: bool = True,
                   fields: dict[str, str] | None = None, endless: bool = False) -> list[list[str]]:
    """Continue each primer by `length` tokens, within the encoding's constraint unless `constrained` is False
    (abc: bars of the metre's length, with the header `fields` asked for); each piece as its encoding finishes it
    (with an end token, abc's: the primer and what follows up to and including the end, a whole tune). `endless`
    pieces never draw the end token: they run to their length (to be cut at a bar)."""
    encoding, vocabulary = bundle.encoding, bundle.vocabulary
    end = encoding.end_token
    constraint = encoding.constraint(vocabulary.tokens, fields) if constrained or fields else None
    if endless and end is not None:
        constraint, end = Endless(constraint, len(vocabulary), vocabulary.index[end]), None
    if constraint is not None:
        constraint.start(primers)
    ids = continue_sequences(net, [vocabulary.encode(p) for p in primers], length, sampler, rng, progress,
                             None if end is None else vocabulary.index[end], constraint)
    return [encoding.finish(p, vocabulary.decode(row)) for p, row in zip(primers, ids, strict=True)]


class Composer:
    """A bundle loaded once (weights only, no Keras) and kept for composing many pieces: for scripts and services.

        composer = Composer("weights/default")
        for i in range(10):
            generate(composer, "output", length=200, seed=i, wav=False)
    """

    def __init__(self, weights: Path | None = None):
        self.folder = resolve_weights(weights)
        self.bundle = read_bundle(self.folder)
        self.net = self.bundle.step_model()
        self.encoding = self.bundle.encoding

    def compose(self, length: int, num_outputs: int = 1, *, rng: np.random.Generator, sampler: Sampler,
                primer: Path | None = None, primer_tokens: str | None = None, primer_text: str | None = None,
                progress: bool = False, constrained: bool = True, fields: dict[str, str] | None = None,
                start: list[str] | None = None, endless: bool = False) -> list[tuple[list[str], str]]:
        """num_outputs pieces of `length` tokens in one batch, each with a label naming what started it: the primer
        given, else the encoding's start (a seed window of the training songs; abc: the start of a tune, `X:1`).

        With an end token (abc), a piece is whole: it keeps its primer and ends at the end token or after `length`.
        `start` replaces the encoding's start where no primer is given (a key asked for); `fields` and `endless`
        are compose_tokens's.
        """
        bundle = self.bundle
        primed = encode_primer(bundle, primer, primer_tokens, primer_text)
        if primed is not None:
            label = str(primer or ("--primer-tokens" if primer_tokens is not None else repr(primer_text)))
            primers, labels = [primed] * num_outputs, [label] * num_outputs
        elif start is not None:
            primers, labels = [start] * num_outputs, [" ".join(start)] * num_outputs
        else:
            primers, labels = self.encoding.start(bundle.seeds, num_outputs, rng)
        with threadpool_limits(blas_threads(), "blas"):
            pieces = compose_tokens(bundle, self.net, primers, length, sampler, rng, progress, constrained, fields,
                                    endless)
        return list(zip(pieces, labels, strict=True))

    def to_midi(self, tokens: list[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """A piece as MIDI, at qpm or else the bundle's tempo (the training songs' median, timed encodings)."""
        return self.encoding.decode(tokens, program=program, qpm=qpm or self.bundle.meta.get("qpm"))


