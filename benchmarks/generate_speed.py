"""Generation speed and loop rate: our incremental batched sampler vs a re-implementation of the original loop.

The original ran the whole 100-token window through the network for every new token and took the argmax.
This runs that loop (on --original-tokens tokens, extrapolated to --length) and ours side by side on the
same bundle, then measures the loop rate of 20 pieces with the default sampling, greedy decoding, and the
training corpus itself. Prints one JSON object.

    .venv/bin/python benchmarks/generate_speed.py --weights weights/default --data data
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date

import numpy as np

from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Sampler, continue_sequences
from pianocomposer.judging.metrics import loop_rate
from pianocomposer.learning.bundle import load_bundle
from pianocomposer.reading.extract import load_tokens


def original_loop(model, window: np.ndarray, n_tokens: int) -> list[int]:
    """The original predict loop: the whole window through the network per token, argmax, slide."""
    window, out = list(window), []
    for _ in range(n_tokens):
        probs = np.asarray(model(np.array([window], np.int32), training=False))[0, -1]
        out.append(int(np.argmax(probs)))
        window = [*window[1:], out[-1]]
    return out


def timed(fn, *args) -> tuple[float, object]:
    """Seconds one call takes, and its result."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/default")
    parser.add_argument("--data", default="data", help="tokens.json of the training corpus, for its loop rate")
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--original-tokens", type=int, default=100, help="tokens to time the original loop on")
    parser.add_argument("--pieces", type=int, default=20, help="pieces for the loop-rate comparison")
    args = parser.parse_args()

    load_seconds, bundle = timed(load_bundle, args.weights)
    net = bundle.step_model()
    seeds = [bundle.vocabulary.encode(s) for s in bundle.meta["seeds"]]
    rng = np.random.default_rng(0)
    original_s, _ = timed(original_loop, bundle.model, seeds[0], args.original_tokens)
    per_token_original = original_s / args.original_tokens
    continue_sequences(net, seeds[:1], 5, Sampler(), rng)  # warm-up
    one_s, _ = timed(continue_sequences, net, seeds[:1], args.length, Sampler(), rng)
    batch32 = [seeds[i % len(seeds)] for i in range(32)]
    many_s, _ = timed(continue_sequences, net, batch32, args.length, Sampler(), rng)

    def mean_loop_rate(sampler: Sampler) -> float:
        rows = continue_sequences(net, [seeds[i % len(seeds)] for i in range(args.pieces)], args.length, sampler,
                                  np.random.default_rng(1))
        return float(np.mean([loop_rate(bundle.vocabulary.decode(r)) for r in rows]))

    corpus = load_tokens(args.data)
    report = {
        "date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "bundle": args.weights, "config": bundle.config.to_dict(), "vocabulary": len(bundle.vocabulary),
        "model_load_s": round(load_seconds, 2),
        "original_s_per_token": round(per_token_original, 4),
        "original_s_for_length": round(per_token_original * args.length, 1),
        "ours_1_piece_s": round(one_s, 3),
        "speedup_1_piece": round(per_token_original * args.length / one_s, 1),
        "ours_32_pieces_s": round(many_s, 2),
        "loop_rate_default_sampling": round(mean_loop_rate(Sampler()), 4),
        "loop_rate_greedy": round(mean_loop_rate(Sampler(greedy=True)), 4),
        "loop_rate_corpus": round(float(np.mean([loop_rate(s.tokens) for s in corpus.songs])), 4),
        "loop_rate_by_setting": {
            f"temperature={t},top_p={p}": round(mean_loop_rate(Sampler(temperature=t, top_p=p)), 4)
            for t, p in [(0.7, 1.0), (1.0, 1.0), (1.0, 0.9), (1.2, 0.95)]},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
