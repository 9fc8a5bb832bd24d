"""Rewriting a span of a piece (`infill`): candidates for the span, each written after what comes before it and
filling its time exactly, all in one batch; each is then scored by how likely the network finds what follows the span
after it, and the likeliest continuation chosen (no retraining: the network reads left to right)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pianocomposer.composing.compose import Sampler, prime, token_id
from pianocomposer.learning.bundle import Bundle
from pianocomposer.learning.model import StepModel

EPS = 1e-6  # quarters: time left below this is none
MAX_TOKENS_PER_QUARTER = 24  # a candidate still writing after so many tokens per quarter is only moved on in time


@dataclass
class Candidate:
    """One filling of the span: its tokens, and nats per token of its own tokens and of what follows it."""

    tokens: list[str]
    nats: float  # -log p(candidate | before) per token
    nats_after: float  # -log p(after | before, candidate) per token (nan: nothing follows)


def known_ids(bundle: Bundle, tokens: list[str]) -> list[int]:
    """Tokens as the vocabulary's ids, a token it does not know as its nearest known kin (or left out)."""
    return [i for t in tokens if (i := token_id(bundle, t)) is not None]


def fill(bundle: Bundle, net: StepModel, before: list[str], after: list[str], quarters: float, candidates: int,
         sampler: Sampler, rng: np.random.Generator) -> list[Candidate]:
    """`candidates` fillings of a span `quarters` long between the tokens `before` and `after` it, the likeliest
    continuation into `after` first: each is sampled after the last window of `before`, within the encoding's
    constraint (started on all of `before`), until its time reaches the span's end (a shift past it is never
    drawn)."""
    advance = bundle.encoding.advance(bundle.vocabulary.tokens)
    constraint = bundle.encoding.constraint(bundle.vocabulary.tokens)
    if constraint is not None:
        constraint.start([before] * candidates)
    moves = advance > 0
    primer = known_ids(bundle, before)[-bundle.config.seq_len:]
    if primer:  # primed once, the state copied to every candidate
        probs, state = prime(net, [np.array(primer, np.int32)])
        probs, state = np.repeat(probs, candidates, axis=0), [np.repeat(s, candidates, axis=0) for s in state]
    else:  # a span at the very start: the network starts from nothing
        state = net.initial_state(candidates)
        probs = np.full((candidates, len(advance)), 1.0 / len(advance), np.float32)
    left = np.full(candidates, float(quarters))
    written: list[list[int]] = [[] for _ in range(candidates)]
    nats = np.zeros(candidates)
    limit = max(8, int(MAX_TOKENS_PER_QUARTER * quarters))
    for step in range(10 * limit):
        live = np.flatnonzero(left > EPS)  # the rows still writing; a finished row keeps its state and odds
        if not len(live):
            break
        allowed = advance[None, :] <= left[live, None] + EPS
        if step >= limit:  # long enough: only time moves on now
            allowed &= moves[None, :]
        if constraint is not None:
            grammar = constraint.mask(live)
            allowed = np.where((allowed & grammar).any(axis=1)[:, None], allowed & grammar, grammar)
        stuck = ~allowed.any(axis=1)  # no shift short enough to close the span (a vocabulary without it)
        left[live[stuck]] = 0.0
        allowed[stuck] = True
        ids = sampler(probs[live], rng, allowed)
        if constraint is not None:
            constraint.advance(live, ids)
        rows, ids = live[~stuck], ids[~stuck].astype(np.int32)
        for row, token in zip(rows, ids, strict=True):
            written[row].append(int(token))
            nats[row] -= np.log(max(float(probs[row, token]), 1e-30))
            left[row] -= advance[token]
        probs[rows], new_state = net.step(ids, [s[rows] for s in state])
        for old, new in zip(state, new_state, strict=True):
            old[rows] = new
    following = known_ids(bundle, after)[:bundle.config.seq_len]
    nats_after = np.zeros(candidates)
    for k, token in enumerate(following):
        nats_after -= np.log(np.maximum(probs[:, token], 1e-30))
        if k + 1 < len(following):
            probs, state = net.step(np.full(candidates, token, np.int32), state)
    tokens = bundle.vocabulary.tokens
    found = [Candidate([tokens[i] for i in ids], float(n / max(len(ids), 1)),
                       float(a / len(following)) if following else float("nan"))
             for ids, n, a in zip(written, nats, nats_after, strict=True)]
    return sorted(found, key=lambda c: (c.nats_after, c.nats) if following else (c.nats,))
