"""Fine-tuning against training from scratch on a folder the base never saw: held-out loss against minutes.

The folder (or its first --files files) is extracted like the base; `--run from` fine-tunes the base on it
(`train --from`), `--run scratch` trains the design's network from nothing (`--preset paper`), each for --minutes and
stopping early on the folder's held-out songs (the same songs for both); the two may run side by side, one core each
(taskset). `--run report` gives each epoch's validation loss in nats per token and per note against the minutes of
training so far (the base's own loss on those songs at minute 0), as JSON, and draws it to --plot.

    taskset -c 1 .venv/bin/python -m benchmarks.fine_tune --run scratch --minutes 60
    taskset -c 0 .venv/bin/python -m benchmarks.fine_tune --run from --minutes 10
    .venv/bin/python -m benchmarks.fine_tune --run report --plot docs/benchmarks/fine_tune.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from benchmarks.base_layout import val_notes_per_token
from benchmarks.train_speed import cpu_name


def pianocomposer(*args) -> dict:
    """One command in a fresh process; its --json result."""
    proc = subprocess.run([sys.executable, "-m", "pianocomposer", *map(str, args), "--json"], capture_output=True,
                          text=True)
    if proc.returncode not in (0, 130):  # 130: stopped by a signal, the bundle saved as it stood
        raise SystemExit(f"{args[:2]}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


def curve(weights: Path, per_note: float, start: float | None) -> list[dict]:
    """(minutes of training so far, validation nats per token and per note) after each epoch."""
    rows, minutes = [], 0.0
    if start is not None:
        rows.append({"minutes": 0.0, "nats_per_token": round(start, 4), "nats_per_note": round(start / per_note, 4)})
    with open(weights / "history.csv", newline="") as f:
        for row in csv.DictReader(f):
            minutes += float(row["seconds"]) / 60
            loss = float(row["val_loss"])
            rows.append({"minutes": round(minutes, 2), "nats_per_token": round(loss, 4),
                         "nats_per_note": round(loss / per_note, 4)})
    return rows


def base_loss(base: Path, data: Path, tuned: Path) -> float:
    """The base's own loss on the fine-tune's validation songs, in training's windows (as val_loss is)."""
    from pianocomposer.judging.evaluate import score_likelihood
    from pianocomposer.learning.bundle import read_bundle, read_meta
    from pianocomposer.reading.tokens import load_tokens

    val = set(read_meta(tuned)["split"]["val"])
    bundle = read_bundle(base)
    songs = [s.tokens for s in load_tokens(data).songs if s.source in val]
    return score_likelihood(bundle.step_model(), bundle, songs, "validation split").window.cross_entropy


def prepare(midi_dir: Path, files: int | None, base: Path, work: Path) -> Path:
    """The folder (or its first `files` files) extracted like the base, once; its data folder."""
    data = work / "data"
    if not (data / "tokens.json").is_file():
        midi = work / "midi"
        midi.mkdir(parents=True, exist_ok=True)
        for path in sorted(midi_dir.glob("*.mid"))[:files]:
            shutil.copy(path, midi / path.name)
        pianocomposer("extract", "--input", midi, "--out", data, "--like", base)
    return data


def main() -> None:
    """Fine-tune or train from scratch on the folder (--run), or report both curves (--run report)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=("from", "scratch", "report"), required=True)
    parser.add_argument("--base", type=Path, default=Path("weights/base"))
    parser.add_argument("--midi", type=Path, default=Path("base_songs/heldout-monteverdi"))
    parser.add_argument("--files", type=int, default=None, help="only the first N files of the folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="the run's budget")
    parser.add_argument("--val-split", type=float, default=0.1)
    parser.add_argument("--work", type=Path, default=Path("output/fine_tune"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    work = args.work / f"files-{args.files or 'all'}"
    data = prepare(args.midi, args.files, args.base, work)
    common = ["--data", data, "--epochs", 1000, "--val-split", args.val_split, "--max-minutes", args.minutes]
    if args.run == "from":
        result = pianocomposer("train", *common, "--weights", work / "from", "--from", args.base)
        result["base_loss"] = base_loss(args.base, data, work / "from")
    elif args.run == "scratch":
        result = pianocomposer("train", *common, "--weights", work / "scratch", "--preset", "paper", "--patience", 3)
    if args.run != "report":
        result.pop("last", None)
        (work / f"{args.run}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=2))
        return
    per_note = val_notes_per_token(data, work / "from")
    runs = {}
    for name, run in (("from_base", "from"), ("from_scratch", "scratch")):
        result = json.loads((work / f"{run}.json").read_text())
        runs[name] = {**result, "curve": curve(work / run, per_note, result.get("base_loss"))}
    report = {"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "folder": str(args.midi),
              "files": len(list((work / "midi").glob("*.mid"))), "notes_per_token": round(per_note, 4),
              **{f"best_{name}": min(r["nats_per_note"] for r in run["curve"]) for name, run in runs.items()},
              "runs": runs}
    print(json.dumps(report, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for name, run in runs.items():
            ax.plot([r["minutes"] for r in run["curve"]], [r["nats_per_note"] for r in run["curve"]], "o-",
                    label=name.replace("_", " "))
        ax.set_xlabel("minutes of training (one core each)")
        ax.set_ylabel("held-out loss (nats per note)")
        ax.set_title(f"{report['files']} files of {args.midi.name}")
        ax.legend()
        ax.grid(alpha=0.3)
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, bbox_inches="tight")


if __name__ == "__main__":
    main()
