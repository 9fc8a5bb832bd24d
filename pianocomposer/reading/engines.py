"""Extraction on Ray (`extract --engine ray`): each Ray task parses a chunk of files with extract's own isolated
parser (a killable child process under the same memory limit), so a hanging, memory-hungry or crashing file is
named and skipped with the same reasons as on the local path."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pianocomposer.errors import PianoComposerError
from pianocomposer.pool import WORKER_FILES, parse_files

CHUNKS_PER_WORKER = 4  # chunks per Ray CPU on a local Ray: the last ones finish close together, and progress moves


def parse_chunk(jobs: list[tuple[int, Path]], encoding_name: str, params: dict, timeout_s: float) -> dict[int, Any]:
    """One Ray task: its files parsed one after another in a killable child process, as the local path does."""
    with tqdm(disable=True) as bar:
        return parse_files(jobs, encoding_name, params, timeout_s, 1, bar)


def parse_files_ray(jobs: list[tuple[int, Path]], encoding_name: str, params: dict, timeout_s: float, workers: int,
                  bar: tqdm) -> dict[int, Any]:
    """pool.parse_files on Ray: a private local Ray of `workers` CPUs, or the cluster RAY_ADDRESS names (every
    node then needs pianocomposer and the input files at the same absolute paths)."""
    try:
        import ray
    except ImportError:
        raise PianoComposerError("--engine ray needs Ray: pip install 'pianocomposer[ray]'") from None
    cluster = os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        ray.init(address=cluster or "local", num_cpus=None if cluster else workers, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")
    try:
        task = ray.remote(parse_chunk)
        size = min(WORKER_FILES, math.ceil(len(jobs) / (workers * CHUNKS_PER_WORKER)))
        chunks = [[(i, path.absolute()) for i, path in jobs[at:at + size]] for at in range(0, len(jobs), size)]
        running = {task.remote(chunk, encoding_name, params, timeout_s): len(chunk) for chunk in chunks}
        results: dict[int, Any] = {}
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            results.update(ray.get(done[0]))
            bar.update(running.pop(done[0]))
        return results
    finally:
        if started:
            ray.shutdown()
