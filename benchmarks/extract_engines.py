"""Which distributed engine for `extract` (issue 14): Ray and Apache Beam against the local processes.

Every engine runs the same work: chunks of files, each chunk parsed by extract's own isolated parser (a killable
child process with the time-out and memory limit), cold cache, `workers` CPUs. Beam runs on its local runner
(the DirectRunner in multi-processing mode, what Magenta's pipelines use on one machine), Ray on a private
local Ray; both times include the engine's start-up, as a user pays it. Beam is not a dependency of
pianocomposer, so run this in an environment that has it (and Ray) besides pianocomposer's own packages:

    python -m venv /tmp/beamvenv && /tmp/beamvenv/bin/pip install apache-beam ray music21 pretty_midi numpy \\
        tqdm 'miditok<4' symusic typer && /tmp/beamvenv/bin/pip install --no-deps -e .
    /tmp/beamvenv/bin/python -m benchmarks.extract_engines --midi midi_songs --workers 2

Prints one JSON object: files/s and seconds per engine and reader, and whether the engines' tokens equal the
local path's.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import date
from pathlib import Path

from tqdm import tqdm

from benchmarks.train_speed import cpu_name
from pianocomposer.pool import WORKER_FILES
from pianocomposer.reading.engines import CHUNKS_PER_WORKER, parse_chunk
from pianocomposer.reading.extract import extract


def parse_all_beam(jobs: list[tuple[int, Path]], encoding_name: str, params: dict, timeout_s: float, workers: int,
                   bar: tqdm) -> dict:
    """pool.parse_files on Beam's local runner: the same chunks and per-chunk parser as the Ray engine."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    size = min(WORKER_FILES, math.ceil(len(jobs) / (workers * CHUNKS_PER_WORKER)))
    chunks = [[(i, str(path.absolute())) for i, path in jobs[at:at + size]] for at in range(0, len(jobs), size)]
    options = PipelineOptions(direct_num_workers=workers, direct_running_mode="multi_processing")
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=options) as pipeline:
            _ = (pipeline | beam.Create(chunks)
                 | beam.Map(lambda chunk: json.dumps(parse_chunk([(i, Path(p)) for i, p in chunk], encoding_name,
                                                                  params, timeout_s)))
                 | beam.io.WriteToText(f"{tmp}/parsed"))
        results = {}
        for part in Path(tmp).glob("parsed*"):
            for line in part.read_text().splitlines():
                results.update({int(k): v for k, v in json.loads(line).items()})
    bar.update(len(jobs))
    return results


def run(midi: Path, engine: str, params: dict, workers: int, out: Path) -> tuple[float, list]:
    """Seconds for a cold extract on the engine, and its songs."""
    import pianocomposer.reading.extract as module

    local = module.parse_files
    if engine == "beam":
        module.parse_files = parse_all_beam
    try:
        t0 = time.perf_counter()
        data = extract(midi, out, encoding_params=params, workers=workers,
                       engine="ray" if engine == "ray" else "local", progress=False)
        return time.perf_counter() - t0, [(s.source, s.tokens) for s in data.songs]
    finally:
        module.parse_files = local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, default=Path("midi_songs"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    files = len(list(args.midi.rglob("*.mid")))
    rows = []
    for reader in ("music21", "symusic"):
        params = {"reader": reader}
        local_songs = None
        for engine in ("local", "ray", "beam"):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, songs = run(args.midi, engine, params, args.workers, Path(tmp))
            local_songs = local_songs or songs
            rows.append({"reader": reader, "engine": engine, "seconds": round(seconds, 2),
                         "files_per_s": round(files / seconds, 1), "same_tokens_as_local": songs == local_songs})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"date": date.today().isoformat(), "cpu": cpu_name(), "files": files, "workers": args.workers,
                      "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
