"""Where the eighths of harmonisations come from (issue 41): note values and onset gaps of all four parts, Bach's own
on the 35 held-out chorales beside `harmonize` on their sopranos, as shipped and with each part of the sampler taken
away in turn (the rules, the calibrated odds, the figuration draw, the temperature), so that the source of the
excess shows:

    .venv/bin/python -m benchmarks.harmony_rhythm [--seeds 3] [--json output/harmony_rhythm.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pretty_midi

from benchmarks.harmonize import soprano_file
from benchmarks.train_speed import cpu_name
from pianocomposer.frontends.harmonize import harmonize

VALUES = {"sixteenth": 0.25, "eighth": 0.5, "dotted eighth": 0.75, "quarter": 1.0, "dotted quarter": 1.5,
          "half": 2.0}


def rhythm(midis: list[pretty_midi.PrettyMIDI]) -> dict[str, float]:
    """Shares of all notes of the parts by note value (in quarters, as the file's tempo says), and of the gaps
    between successive onsets of the texture that are an eighth or a quarter."""
    values, gaps = [], []
    for midi in midis:
        q = float(midi.get_tempo_changes()[1][0]) / 60  # quarters per second
        notes = [n for t in midi.instruments for n in t.notes]
        values += [round((n.end - n.start) * q * 4) / 4 for n in notes]
        onsets = np.unique(np.round(np.array([n.start for n in notes]) * q * 4) / 4)
        gaps += list(np.diff(onsets))
    values, gaps = np.array(values), np.array(gaps)
    shares = {name: float(np.mean(np.isclose(values, v))) for name, v in VALUES.items()}
    shares["longer"] = float(np.mean(values > 2.0 + 1e-9))
    return {**{f"notes {k}": round(v, 4) for k, v in shares.items()},
            "gaps eighth": round(float(np.mean(np.isclose(gaps, 0.5))), 4),
            "gaps quarter": round(float(np.mean(np.isclose(gaps, 1.0))), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("weights/chorale"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    chorales = sorted(Path("chorales/heldout").glob("*.mid"))
    report: dict = {"date": date.today().isoformat(), "machine": cpu_name(), "chorales": len(chorales),
                    "seeds": args.seeds, "bach": rhythm([pretty_midi.PrettyMIDI(str(c)) for c in chorales])}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        melodies = [soprano_file(c, folder) for c in chorales]
        plain = folder / "uncalibrated"
        shutil.copytree(args.bundle, plain, ignore=shutil.ignore_patterns("last.keras", "tensorboard"))
        meta = json.loads((plain / "bundle.json").read_text())
        meta.pop("calibration", None)
        (plain / "bundle.json").write_text(json.dumps(meta))
        variants = {"as shipped": {}, "no rules": {"rules": False}, "no calibration": {"weights": plain},
                    "no figuration draw (middling)": {"figuration": 0.0}, "temperature 1.0": {"temperature": 1.0},
                    "the network alone": {"weights": plain, "rules": False, "temperature": 1.0, "figuration": 0.0}}
        for name, options in variants.items():
            weights = options.pop("weights", args.bundle)
            midis = []
            for seed in range(args.seeds):
                done = harmonize(melodies, weights, folder / f"{len(report)}-{seed}", seed=seed, wav=False,
                                 **options)
                midis += [pretty_midi.PrettyMIDI(str(d.midi)) for d in done]
            report[name] = rhythm(midis)
            print(name, report[name], flush=True)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
