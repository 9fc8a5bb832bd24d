"""The base model's choices on a short equal budget: TSD against REMI (nats per note), TensorFlow against JAX.

Each variant is one `pianocomposer train` run in a fresh process for the same wall-clock budget on the same
folder (extracted with the variant's layout), the design's network; the report gives supervised tokens/s and the
held-out loss per token and per note (a note is a `Pitch_` token: both layouts spell each note with one, so nats per
note compare layouts whose token counts differ).

    .venv/bin/python -m benchmarks.base_layout --midi base_songs/train --minutes 6 \\
        --variants tsd:jax remi:jax -- --random-transpose --transpose=-5..6 --val-split 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from benchmarks.train_speed import cpu_name


def val_notes_per_token(data: Path, bundle: Path) -> float:
    """Notes per scored target token over the bundle's validation songs."""
    from pianocomposer.learning.bundle import read_meta
    from pianocomposer.reading.tokens import load_tokens

    val = set(read_meta(bundle)["split"]["val"])
    songs = [s.tokens for s in load_tokens(data).songs if s.source in val]
    targets = sum(len(s) - 1 for s in songs)
    return sum(t.startswith("Pitch_") for s in songs for t in s[1:]) / max(targets, 1)


def run(midi: Path, work: Path, layout: str, backend: str, minutes: float, extra: list[str]) -> dict:
    """Extract (once per layout) and train one variant; its figures."""
    data = work / f"data-{layout}"
    if not (data / "tokens.json").is_file():
        subprocess.run([sys.executable, "-m", "pianocomposer", "extract", "--input", str(midi), "--out", str(data),
                        "--encoding", "timed", "--params", json.dumps({"layout": layout}), "--json"],
                       check=True, capture_output=True)
    weights = work / f"w-{layout}-{backend}"
    cmd = [sys.executable, "-m", "pianocomposer", "train", "--data", str(data), "--weights", str(weights),
           "--preset", "paper", "--epochs", "1000", "--max-minutes", str(minutes), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend})
    if proc.returncode != 0:
        raise SystemExit(f"{layout}/{backend}: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout)
    per_note = val_notes_per_token(data, weights)
    loss = result["best_val_loss"]
    return {"layout": layout, "backend": backend, "tokens_per_s": result["tokens_per_s"], "epochs": result["epochs"],
            "val_nats_per_token": loss, "notes_per_token": round(per_note, 4),
            "val_nats_per_note": round(loss / per_note, 4) if loss else None}


def main() -> None:
    """Run the variants in turn and print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, default=Path("base_songs/train"))
    parser.add_argument("--work", type=Path, default=Path("output/base_layout"))
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--variants", nargs="+", default=["tsd:tensorflow", "remi:tensorflow"],
                        help="LAYOUT:BACKEND pairs")
    parser.add_argument("extra", nargs="*", help="more `train` options, after --")
    args = parser.parse_args()
    rows = [run(args.midi, args.work, *v.split(":"), args.minutes, args.extra) for v in args.variants]
    print(json.dumps({"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
                      "minutes": args.minutes, "extra": args.extra, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
