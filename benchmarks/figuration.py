"""How much each harmonisation's lower voices move between the beats, melody by melody, against Bach's own lower
voices under the same melodies: four_parts.FIGURATION (its offsets' mean and spread) is chosen here, on training
melodies.

A piece's figuration (`four_parts.florid`) is the share of its off-beat eighths (on a sixteenth grid) where some
lower voice begins a note. Bach's chorales range from plain to florid; the network, writing on its own, drifts to
the middle. For each figuration offset (MEAN:SPREAD of the per-melody log-odds offset), `--melodies` training
chorales' sopranos are harmonised as `harmonize` does (the likeliest of 4 at the default temperature, the rules on)
and their figurations' mean, standard deviation and 10th/90th percentiles set beside Bach's on the same melodies;
the setting nearest Bach's (mean and standard deviation together) is reported as the fit:

    .venv/bin/pianocomposer extract --input chorales/train --encoding voices \\
        --params '{"ahead": true, "order": "SBAT"}' --out data/voices-sbat
    .venv/bin/python -m benchmarks.figuration --voices-data data/voices-sbat --figurations 0:0 0:0.5 0:1 0.25:1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.realness import Model
from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Sampler, blas_threads
from pianocomposer.composing.four_parts import florid, reharmonize
from pianocomposer.config import HARMONY_TEMPERATURE
from pianocomposer.encodings.voices import VoicesEncoding
from pianocomposer.judging.evaluate import HARMONY_CANDIDATES


def summary(values: list[float]) -> dict:
    """Mean, standard deviation and 10th/90th percentiles of per-piece figurations."""
    v = np.array(values)
    v = v[~np.isnan(v)]
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std()), 4),
            "p10": round(float(np.percentile(v, 10)), 4), "p90": round(float(np.percentile(v, 90)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/chorale")
    parser.add_argument("--voices-data", type=Path, default=Path("data/voices-sbat"))
    parser.add_argument("--melodies", type=int, default=96, help="training chorales harmonised per setting")
    parser.add_argument("--figurations", nargs="+", default=["0:0", "0:0.5", "0:1", "0.25:1"],
                        help="MEAN:SPREAD of the offset, each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = Model(args.weights, args.voices_data)
    grid = model.encoding.grid
    songs = [model.training[i] for i in sorted(np.random.default_rng(args.seed).choice(
        len(model.training), min(args.melodies, len(model.training)), replace=False))]
    bach = summary([florid(VoicesEncoding.split(s)[1], grid) for s in songs])
    print(f"Bach's lower voices, {len(songs)} training chorales: {bach}", flush=True)
    rows = []
    for setting in args.figurations:
        mean, spread = (float(x) for x in setting.split(":"))
        with threadpool_limits(blas_threads(), "blas"):
            written = reharmonize(model.bundle, model.net, songs, np.random.default_rng(args.seed),
                                  HARMONY_CANDIDATES, Sampler(temperature=HARMONY_TEMPERATURE),
                                  figuration=(mean, spread))
        row = {"figuration": setting, **summary([florid(VoicesEncoding.split(p)[1], grid) for p, _ in written])}
        rows.append(row)
        print(row, flush=True)
    best = min(rows, key=lambda r: abs(r["mean"] - bach["mean"]) + abs(r["sd"] - bach["sd"]))
    print(f"nearest Bach's: {best['figuration']}; CPU {cpu_name()}")
    if args.json:
        args.json.write_text(json.dumps({"bach": bach, "rows": rows, "fit": best["figuration"],
                                         "melodies": len(songs), "cpu": cpu_name()}, indent=1))


if __name__ == "__main__":
    main()
