"""Compose in a second (issue 15): process start to MIDI, peak memory, and the step kernel against memory bandwidth.

Runs, in one go and on the same machine:
- `pianocomposer generate --length 500 --no-wav` in a fresh process (weights read without Keras), against the
  previous path in a fresh process (Keras model loaded in safe mode, then the same NumPy generation); wall seconds
  and peak resident memory of each;
- memory bandwidth: a large NumPy copy (DRAM) and a copy the size of the weights (cache-resident when it fits);
- the step kernel at batch 1 and 32: seconds per step, weight bytes read per step, effective bandwidth and its share
  of each measured bandwidth; variants: float16 weights (float32 accumulation), one BLAS thread.
Prints one JSON object.

    .venv/bin/python -m benchmarks.step_kernel --weights weights/default
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks.train_speed import cpu_name

OLD_PATH = """
import sys, numpy as np
from pianocomposer.learning.bundle import load_bundle
from pianocomposer.composing.compose import Sampler, continue_sequences
b = load_bundle(sys.argv[1])
rows = continue_sequences(b.step_model(), [b.vocabulary.encode(b.meta['seeds'][0])], 500, Sampler(),
                          np.random.default_rng(0))
b.encoding.decode(b.vocabulary.decode(rows[0])).write(sys.argv[2])
"""


def run_process(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one child process."""
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def copy_bandwidth(n_bytes: int, repeats: int) -> float:
    """GB/s of an array copy (bytes read + bytes written), best of repeats."""
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(np.copyto, dst, src) for _ in range(repeats))
    return 2 * n_bytes / best / 1e9


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def kernel(weights: str, batch: int, steps: int, dtype: str) -> dict:
    """Seconds per step of the StepModel at this batch size, with its arrays cast to dtype."""
    from pianocomposer.learning.bundle import read_bundle

    net = read_bundle(Path(weights)).step_model()
    arrays = [name for name, value in vars(net).items() if isinstance(value, np.ndarray)]
    for name in arrays:
        setattr(net, name, getattr(net, name).astype(dtype))
    net.stacked = [tuple(a.astype(dtype) for a in layer) for layer in net.stacked]
    if isinstance(net.first_recurrent, tuple):
        net.first_recurrent = tuple(a.astype(dtype) for a in net.first_recurrent)
    else:
        net.first_recurrent = net.first_recurrent.astype(dtype)
    read = [net.first_recurrent, *[a for layer in net.stacked for a in layer], net.out_w, net.out_b]
    flat = [a for item in read for a in (item if isinstance(item, tuple) else (item,))]
    weight_bytes = sum(a.nbytes for a in flat)
    state = net.initial_state(batch)
    ids = np.zeros(batch, np.int64)
    for _ in range(10):
        _, state = net.step(ids, state)
    start = time.perf_counter()
    for _ in range(steps):
        _, state = net.step(ids, state)
    per_step = (time.perf_counter() - start) / steps
    return {"batch": batch, "dtype": dtype, "ms_per_step": round(per_step * 1e3, 4),
            "weight_mb_per_step": round(weight_bytes / 1e6, 2),
            "effective_gb_s": round(weight_bytes / per_step / 1e9, 1)}


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/default")
    parser.add_argument("--kernel", help=argparse.SUPPRESS)  # internal: batch,dtype in a child process
    args = parser.parse_args()
    if args.kernel:
        batch, dtype = args.kernel.split(",")
        print(json.dumps(kernel(args.weights, int(batch), 300 if int(batch) == 1 else 100, dtype)))
        return

    pianocomposer = str(Path(sys.executable).with_name("pianocomposer"))
    with tempfile.TemporaryDirectory() as tmp:
        processes = {}
        for name, command in [
            ("keras_free", [pianocomposer, "generate", "--weights", args.weights, "--length", "500", "--no-wav",
                            "--out", tmp, "--seed", "0"]),
            ("keras_load", [sys.executable, "-c", OLD_PATH, args.weights, f"{tmp}/old.mid"])]:
            # RUSAGE_CHILDREN keeps the largest child so far: measure the smaller path first
            runs = [run_process(command) for _ in range(3)]
            processes[name] = {"wall_s": round(min(w for w, _ in runs), 2), "peak_mb": round(runs[-1][1])}
    dram = copy_bandwidth(1 << 30, 3)
    cache = copy_bandwidth(24 << 20, 20)
    kernels = []
    for batch, dtype, threads in [(1, "float32", None), (1, "float32", "1"), (1, "float16", None),
                                  (32, "float32", None), (32, "float32", "1")]:
        env = {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads} if threads else {}
        out = subprocess.run([sys.executable, "-m", "benchmarks.step_kernel", "--weights", args.weights,
                              "--kernel", f"{batch},{dtype}"], check=True, capture_output=True, text=True,
                             env={**os.environ, **env})
        row = json.loads(out.stdout)
        row["blas_threads"] = threads or "default"
        row["share_of_dram_copy"] = round(row["effective_gb_s"] / dram, 2)
        row["share_of_cache_copy"] = round(row["effective_gb_s"] / cache, 2)
        kernels.append(row)
    print(json.dumps({"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
                      "bundle": args.weights, "process_500_tokens": processes,
                      "speedup": round(processes["keras_load"]["wall_s"] / processes["keras_free"]["wall_s"], 1),
                      "copy_gb_s": {"dram_1gib": round(dram, 1), "cache_24mib": round(cache, 1)},
                      "kernel": kernels}, indent=2))


if __name__ == "__main__":
    main()
