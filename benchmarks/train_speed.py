"""Training speed and quality per wall-clock: every-position supervision vs the original's last-position-only.

Trains the same preset on the same data twice, each for the same wall-clock budget, with
`--objective last` (the original scheme) and the default `--objective all`, and prints one JSON object
with supervised tokens/s for each, their ratio, and the best validation loss each reached.

    .venv/bin/python benchmarks/train_speed.py --data data --minutes 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name (Linux), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_training(data: str, objective: str, minutes: float, preset: str, extra: list[str]) -> dict:
    """One `pianocomposer train` run in a fresh process; its --json result plus wall seconds."""
    with tempfile.TemporaryDirectory() as weights:
        cmd = [sys.executable, "-m", "pianocomposer", "train", "--data", data, "--weights", weights,
               "--preset", preset, "--objective", objective, "--epochs", "100000", "--max-minutes", str(minutes),
               "--json", *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"training failed: {proc.stderr.strip().splitlines()[-1:]}")
        result = json.loads(proc.stdout)
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        return result


def main() -> None:
    """Run both objectives and print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget per objective")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("extra", nargs="*", help="more `train` options, after --")
    args = parser.parse_args()
    runs = {objective: run_training(args.data, objective, args.minutes, args.preset, args.extra)
            for objective in ("last", "all")}
    report = {
        "date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "preset": args.preset,
        "budget_minutes": args.minutes,
        **{f"{name}_tokens_per_s": r["tokens_per_s"] for name, r in runs.items()},
        "speedup": round(runs["all"]["tokens_per_s"] / runs["last"]["tokens_per_s"], 1),
        **{f"{name}_best_val_loss": r["best_val_loss"] for name, r in runs.items()},
        **{f"{name}_epochs": r["epochs"] for name, r in runs.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
