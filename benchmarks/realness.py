"""Can evaluate's classifiers tell the shipped models' pieces from the corpus's? The cpc, timed and chorale models
with their default sampling, the real-vs-real control, then the timed model step by step: temperature, top-p,
min-p, and pieces started from a song's first chord instead of a seed window; the chorale model's harmonisations of
Bach's own (validation) sopranos step by step: no rules, voice-leading rules, chords on the beats, each frame's
voices drawn one by one or together (`--defaults-only`: whole chorales and harmonize's default alone); the copy
rate of each setting. `--chorale-weights` measures another voices bundle (`--voices-data` then holds tokens
extracted with its encoding's parameters).

    .venv/bin/pianocomposer extract --out data-cpc && .venv/bin/pianocomposer extract --encoding timed --out data-timed
    .venv/bin/python -m benchmarks.realness --cpc-data data-cpc --timed-data data-timed \\
        --voices-data data/voices-ahead --real midi_songs --seeds 0 1 --json output/realness.json

Each setting generates --pieces pieces per seed exactly as evaluate does (lengths drawn from the corpus songs,
whole chorales for the voices model) and runs realness.realness_test against the training songs decoded from
tokens; accuracies are averaged over the seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Sampler, blas_threads, compose_tokens
from pianocomposer.composing.four_parts import LOOKAHEAD, reharmonize
from pianocomposer.config import HARMONY_TEMPERATURE
from pianocomposer.judging.evaluate import HARMONY_CANDIDATES, plays, read_real, real_midi_files
from pianocomposer.judging.metrics import SPAN, copied_spans, token_spans
from pianocomposer.judging.realness import FEATURE_NAMES, note_array, piece_features, realness_test
from pianocomposer.learning.bundle import read_bundle, resolve_weights
from pianocomposer.reading.tokens import load_tokens


class Model:
    """A bundle with its corpus: training songs as tokens and as notes, held-out songs, copy-rate spans."""

    def __init__(self, weights: str, data: Path):
        self.bundle = read_bundle(resolve_weights(weights))
        self.net = self.bundle.step_model()
        self.encoding = self.bundle.encoding
        tokens = load_tokens(data)
        train = set(self.bundle.meta["split"]["train"])
        self.training = [s.tokens for s in tokens.songs if s.source in train]
        self.heldout = [s.tokens for s in tokens.songs if s.source not in train]
        self.notes = [note_array(self.encoding.decode(s)) for s in self.training]
        onsets = sum(max(1, len(np.unique(n[:, 0]))) for n in self.notes)
        self.span = max(SPAN, round(SPAN * sum(len(s) for s in self.training) / onsets))
        self.known = token_spans(self.training, self.span)

    def copy_rate(self, pieces: list[list[str]]) -> float:
        """Share of the pieces' spans found verbatim in the training songs."""
        found, total = np.sum([copied_spans(p, self.known, self.span) for p in pieces], axis=0)
        return float(found / total) if total else float("nan")

    def compose(self, n: int, sampler: Sampler, seed: int, song_start: bool) -> list[list[str]]:
        """n pieces as evaluate writes them: seed windows (or each a training song's first chord) continued to the
        length of a corpus song."""
        rng = np.random.default_rng(seed)
        enc = self.encoding
        if song_start:  # the tokens up to the first time step of a random training song, kept in the piece
            picks = rng.choice(len(self.training), n, replace=len(self.training) < n)
            primers = []
            for i in picks:
                song = self.training[i]
                first = next((k for k, t in enumerate(song) if t.startswith("TimeShift")), 8)
                primers.append(song[:first + 1])
        else:
            primers, _ = enc.start(self.bundle.seeds, n, rng)
        lengths = enc.piece_lengths([len(s) for s in self.training], n, rng)
        made = compose_tokens(self.bundle, self.net, primers, max(lengths), sampler, rng)
        pieces = [enc.excerpt((p + m) if song_start else m, k) for p, m, k in zip(primers, made, lengths, strict=True)]
        return [p for p in pieces if enc.incomplete(p, len(p)) is None and plays(enc, p)]


def means(pieces: list[np.ndarray]) -> dict[str, float]:
    """Each feature's mean over the pieces (NaN-free)."""
    values = np.nanmean([piece_features(p) for p in pieces], axis=0)
    return {name: round(float(v), 4) for name, v in zip(FEATURE_NAMES, values, strict=True)}


def measure(model: Model, label: str, sampler: Sampler, seeds: list[int], pieces: int, song_start: bool = False,
            real: list[np.ndarray] | None = None, make: Callable[[int], list[list[str]]] | None = None) -> dict:
    """One setting: realness_test per seed (pieces from `make(seed)` if given, else composed), averaged, with the
    copy rate of all its pieces."""
    t0 = time.perf_counter()
    runs, made = [], []
    for seed in seeds:
        tokens = make(seed) if make else model.compose(pieces, sampler, seed, song_start)
        made += tokens
        gen = [note_array(model.encoding.decode(t)) for t in tokens]
        r = realness_test(real if real is not None else model.notes, gen, whole=model.encoding.ends_itself,
                          seed=seed)
        runs.append(r)

    def avg(key: str) -> tuple[float, float]:
        return (float(np.mean([getattr(r, key).mean for r in runs])),
                float(np.mean([getattr(r, key).sd for r in runs])))

    giveaways: dict[str, int] = {}
    for r in runs:
        for g in r.giveaways:
            giveaways[g.name] = giveaways.get(g.name, 0) + 1
    row = {"setting": label, "sampler": sampler.describe(), "pieces": runs[0].pieces, "seeds": seeds,
           "logistic": avg("logistic"), "boosted": avg("boosted"), "control_logistic": avg("control_logistic"),
           "control_boosted": avg("control_boosted"), "per_seed_logistic": [r.logistic.mean for r in runs],
           "per_seed_boosted": [r.boosted.mean for r in runs],
           "groups": {g: float(np.mean([r.groups[g] for r in runs])) for g in runs[0].groups},
           "giveaways": sorted(giveaways, key=lambda k: -giveaways[k])[:5],
           "copy_rate": model.copy_rate(made), "seconds": round(time.perf_counter() - t0, 1),
           "feature_means": means([note_array(model.encoding.decode(t)) for t in made]),
           "real_feature_means": means(real if real is not None else model.notes)}
    print(f"{label:<42} logistic {row['logistic'][0]:.1%} ± {row['logistic'][1]:.1%}  boosted "
          f"{row['boosted'][0]:.1%} ± {row['boosted'][1]:.1%}  control {row['control_logistic'][0]:.1%} / "
          f"{row['control_boosted'][0]:.1%}  copy {row['copy_rate']:.1%}  bass steps "
          f"{row['feature_means']['bass steps']:.0%} (real {row['real_feature_means']['bass steps']:.0%})  "
          f"({row['seconds']} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpc-data", type=Path, default=Path("data"))
    parser.add_argument("--timed-data", type=Path, default=Path("data-timed"))
    parser.add_argument("--voices-data", type=Path, default=Path("data/voices"))
    parser.add_argument("--chorale-weights", default="chorale", help="the voices bundle (its data: --voices-data)")
    parser.add_argument("--real", type=Path, default=Path("midi_songs"),
                        help="the original MIDI, to set the cpc model's pieces beside as well")
    parser.add_argument("--pieces", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", choices=["cpc", "timed", "chorale"], default=["cpc", "timed", "chorale"])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--harmony-sweep", action="store_true",
                        help="chorale: harmonise at other temperatures and candidate counts too")
    parser.add_argument("--defaults-only", action="store_true",
                        help="chorale: only whole chorales and harmonize's default, not the step-by-step rows")
    args = parser.parse_args()
    rows, held, spans = [], {}, {}
    default = Sampler()
    with threadpool_limits(blas_threads(), "blas"):
        if "cpc" in args.models:
            measure_cpc(args, default, rows, held, spans)
        if "timed" in args.models:
            measure_timed(args, default, rows, held, spans)
        if "chorale" in args.models:
            measure_chorale(args, default, rows)
    print("held-out songs' own copy rate: " + ", ".join(f"{k} {v:.1%} ({spans[k]}-token spans)"
                                                       for k, v in held.items()))
    report = {"date": date.today().isoformat(), "cpu": cpu_name(), "rows": rows, "heldout_copy_rate": held,
              "spans": spans}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


def harmonised(model: Model, rules: bool, chords: bool, seed: int, temperature: float = HARMONY_TEMPERATURE,
               candidates: int = HARMONY_CANDIDATES, width: int = LOOKAHEAD) -> list[list[str]]:
    """The validation chorales' sopranos harmonised (by default as `evaluate` does: the most likely of
    HARMONY_CANDIDATES at HARMONY_TEMPERATURE, each frame's voices drawn one by one), each as a whole piece of
    tokens."""
    return [piece for piece, _ in reharmonize(model.bundle, model.net, model.heldout, np.random.default_rng(seed),
                                              candidates, Sampler(temperature=temperature), rules, chords, width)]


def measure_chorale(args, default: Sampler, rows: list) -> None:
    """Whole chorales (within the voices grammar and rules), then Bach's own sopranos harmonised: without rules,
    with the voice-leading rules, with chords on the beats as well (harmonize's default), and so with each frame's
    voices drawn together."""
    chorale = Model(args.chorale_weights, args.voices_data)
    name = f"chorale ({args.chorale_weights}, order {chorale.encoding.order})"
    rows.append(measure(chorale, f"{name}, whole chorales", default, args.seeds, args.pieces))
    settings = [("harmonised validation sopranos, no rules", False, False, LOOKAHEAD),
                ("harmonised, the rules but not chords on the beats", True, False, LOOKAHEAD),
                ("harmonised, and chords on the beats (default)", True, True, LOOKAHEAD),
                ("harmonised, chords on the beats, frames drawn whole", True, True, 4)]
    for label, rules, chords, width in settings[2:3] if args.defaults_only else settings:
        rows.append(measure(chorale, f"{name}, {label}", Sampler(temperature=HARMONY_TEMPERATURE), args.seeds,
                            len(chorale.heldout), make=lambda seed, r=rules, c=chords, w=width: harmonised(
                                chorale, r, c, seed, width=w)))
    if args.harmony_sweep:  # the rules and chords on, other temperatures and candidate counts
        for temperature, candidates in [(0.6, 4), (0.8, 4), (0.9, 4), (0.8, 1), (1.0, 1)]:
            rows.append(measure(chorale, f"{name}, harmonised, temperature {temperature}, {candidates} candidate(s)",
                                Sampler(temperature=temperature), args.seeds, len(chorale.heldout),
                                make=lambda seed, t=temperature, c=candidates: harmonised(chorale, True, True, seed,
                                                                                          t, c)))


def measure_cpc(args, default: Sampler, rows: list, held: dict, spans: dict) -> None:
    """The cpc model against its decoded corpus and against the original MIDI."""
    cpc = Model("default", args.cpc_data)
    rows.append(measure(cpc, "cpc (weights/default), default sampling", default, args.seeds, args.pieces))
    originals = read_real(real_midi_files(args.real), [])
    rows.append(measure(cpc, f"cpc, against the original MIDI of {args.real}", default, args.seeds,
                        args.pieces, real=originals))
    held["cpc"], spans["cpc"] = cpc.copy_rate(cpc.heldout), cpc.span


def measure_timed(args, default: Sampler, rows: list, held: dict, spans: dict) -> None:
    """The timed model with its default sampling, then step by step."""
    timed = Model("timed", args.timed_data)
    for label, sampler, start in [
            ("timed (weights/timed), default sampling", default, False),
            ("timed, temperature 0.8", Sampler(temperature=0.8), False),
            ("timed, temperature 0.9", Sampler(temperature=0.9), False),
            ("timed, top-p 0.9", Sampler(top_p=0.9), False),
            ("timed, top-p 1.0 (plain sampling)", Sampler(top_p=1.0), False),
            ("timed, min-p 0.05 (top-p 1.0)", Sampler(top_p=1.0, min_p=0.05), False),
            ("timed, min-p 0.1 (top-p 1.0)", Sampler(top_p=1.0, min_p=0.1), False),
            ("timed, temperature 0.9, min-p 0.05", Sampler(temperature=0.9, top_p=1.0, min_p=0.05), False),
            ("timed, from a song's first chord", default, True)]:
        rows.append(measure(timed, label, sampler, args.seeds, args.pieces, song_start=start))
    held["timed"], spans["timed"] = timed.copy_rate(timed.heldout), timed.span


if __name__ == "__main__":
    main()
