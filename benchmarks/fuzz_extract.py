"""Fuzz `extract` with many mutated MIDI files and print a JSON summary.

The same seeds and mutations as tests/test_fuzz.py (bit flips, truncation, chunk-length changes, splices, byte
deletes and inserts), run in folders of --batch files per extract call. Each folder also holds one untouched
control song, so every call must succeed. Counted: inputs tried, ok, skipped (by reason), crashes (an exception
out of extract, or a file not reported exactly once) and hangs (files killed at the time-out).

    python benchmarks/fuzz_extract.py --n 10000 [--batch 200] [--seed 0] [--max-minutes 10] [--save DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.hostile_midi

from pianocomposer.reading.extract import extract
from tests.hostile_midi import GOOD_TOKENS, MUTATIONS, SEEDS, good_bytes, mutate


def random_mutant(rng: random.Random) -> bytes:
    """One seed with one to four random mutations; half the time chunk lengths are then made to fit again, so
    that the damage reaches music21's event parser instead of stopping at extract's truncation check."""
    ops = [(rng.choice(MUTATIONS), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5:
        ops.append(("fix_lengths", 0, 0))
    return mutate(rng.choice(SEEDS), ops)


def reason_kind(reason: str) -> str:
    """A skip reason without its details, for counting: 'not a readable MIDI file (MidiException)'."""
    if reason.startswith("not a readable MIDI file ("):
        return f"not a readable MIDI file ({reason.split('(', 1)[1].split(':', 1)[0].rstrip(')')})"
    return re.sub(r"\d+(\.\d+)?", "N", reason.split(" (", 1)[0])


def forget_music21_pickles(files: list[Path]) -> None:
    """music21 caches each parsed file as a pickle in its scratch folder; remove ours so runs do not fill /tmp."""
    from music21 import converter

    for path in files:
        converter.PickleFilter(path).getPickleFp(zipType="gz").unlink(missing_ok=True)


def run_batch(inputs: list[bytes], timeout_s: float, save: Path | None, counts: Counter, reasons: Counter) -> None:
    """Extract one folder of mutants plus the control song and check the contract."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        folder = Path(tmp)
        names = [f"f{i:04d}.mid" for i in range(len(inputs))]
        for name, data in zip(names, inputs, strict=True):
            (folder / name).write_bytes(data)
        (folder / "control.mid").write_bytes(good_bytes())
        try:
            result = extract(folder, folder / "out", timeout_s=timeout_s, progress=False)
            problem = None
            seen = sorted([s.source for s in result.songs] + [s.source for s in result.skipped])
            if seen != sorted([*names, "control.mid"]):
                problem = "files not reported exactly once"
            elif {s.source: s.tokens for s in result.songs}.get("control.mid") != GOOD_TOKENS:
                problem = "control song not extracted"
        except Exception as exc:
            problem, result = f"{type(exc).__name__}: {exc}", None
        forget_music21_pickles([folder / n for n in names] + [folder / "control.mid"])
    counts["inputs"] += len(inputs)
    if problem:
        counts["crashes"] += 1
        print(f"crash: {problem}", file=sys.stderr)
        if save:
            for name, data in zip(names, inputs, strict=True):
                (save / f"crash-{counts['inputs']}-{name}").write_bytes(data)
        return
    by_name = dict(zip(names, inputs, strict=True))
    counts["ok"] += sum(s.source != "control.mid" for s in result.songs)
    counts["skipped"] += len(result.skipped)
    for skip in result.skipped:
        reasons[reason_kind(skip.reason)] += 1
        if skip.reason.startswith("parsing took longer than"):
            counts["hangs"] += 1
        if save and skip.reason.startswith(("parsing took longer than", "parser crashed", "parsing needs")):
            (save / f"slow-{counts['inputs']}-{skip.source}").write_bytes(by_name[skip.source])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="inputs to try (default 10000)")
    parser.add_argument("--batch", type=int, default=200, help="mutated files per extract call")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-file parse time-out in seconds")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after the batch that passes this")
    parser.add_argument("--save", type=Path, default=None, help="folder to keep crashing and slow inputs in")
    args = parser.parse_args()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    rng = random.Random(args.seed)
    counts: Counter = Counter(inputs=0, ok=0, skipped=0, crashes=0, hangs=0)
    reasons: Counter = Counter()
    started = time.monotonic()
    while counts["inputs"] < args.n:
        size = min(args.batch, args.n - counts["inputs"])
        run_batch([random_mutant(rng) for _ in range(size)], args.timeout, args.save, counts, reasons)
        print(f"{counts['inputs']} inputs, {counts['crashes']} crashes, {counts['hangs']} hangs, "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
        if args.max_minutes and time.monotonic() - started > args.max_minutes * 60:
            break
    seconds = time.monotonic() - started
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(json.dumps({**counts, "seconds": round(seconds, 1), "inputs_per_s": round(counts["inputs"] / seconds, 1),
                      "skip_reasons": dict(reasons.most_common()), "batch": args.batch, "seed": args.seed,
                      "timeout_s": args.timeout, "cpu": cpu, "cpus": os.cpu_count(),
                      "python": platform.python_version(), "music21": version("music21"),
                      "date": time.strftime("%Y-%m-%d")}, indent=2))


if __name__ == "__main__":
    main()
