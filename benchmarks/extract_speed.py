"""Extraction speed of the cpc readers (issue 14): music21 (the original's) and symusic (the fast one).

- Per file, in one process: seconds per file of each reader, and how far their tokens agree (sequence
  similarity, identical files, vocabulary overlap).
- End to end: `extract` cold (empty cache) and warm (every file cached), files/s, each reader.
Prints one JSON object.

    .venv/bin/python -m benchmarks.extract_speed --midi midi_songs
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.train_speed import cpu_name
from pianocomposer.encodings import get_encoding
from pianocomposer.extract import extract, find_music_files


def per_file(files: list[Path]) -> dict:
    """Seconds per file of each reader and the agreement of their tokens."""
    music21, fast = get_encoding("cpc"), get_encoding("cpc", {"reader": "symusic"})
    music21.encode_file(files[0])  # imports and caches warm
    fast.encode_file(files[0])
    seconds = {"music21": 0.0, "symusic": 0.0}
    similarity, identical, vocab = [], 0, {"music21": set(), "symusic": set()}
    for path in files:
        tokens = {}
        for name, encoding in (("music21", music21), ("symusic", fast)):
            start = time.perf_counter()
            tokens[name] = encoding.encode_file(path)
            seconds[name] += time.perf_counter() - start
            vocab[name].update(tokens[name])
        similarity.append(difflib.SequenceMatcher(None, tokens["music21"], tokens["symusic"], autojunk=False).ratio())
        identical += tokens["music21"] == tokens["symusic"]
    return {"s_per_file": {k: round(v / len(files), 5) for k, v in seconds.items()},
            "speedup": round(seconds["music21"] / seconds["symusic"], 1),
            "mean_similarity": round(sum(similarity) / len(similarity), 6), "identical_files": identical,
            "vocabulary_overlap": round(len(vocab["music21"] & vocab["symusic"]) / len(vocab["music21"]
                                                                                        | vocab["symusic"]), 6)}


def end_to_end(midi: Path, n_files: int) -> dict:
    """extract's files/s, cold and warm, for each reader."""
    out = {}
    for reader in ("music21", "symusic"):
        params = None if reader == "music21" else {"reader": reader}
        with tempfile.TemporaryDirectory() as tmp:
            runs = {}
            for state in ("cold", "warm"):
                start = time.perf_counter()
                extract(midi, Path(tmp), encoding_params=params, progress=False)
                runs[state] = round(n_files / (time.perf_counter() - start), 1)
        out[reader] = {"files_per_s": runs}
    return out


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, default=Path("midi_songs"))
    args = parser.parse_args()
    files = find_music_files(args.midi)
    print(json.dumps({"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
                      "files": len(files), "per_file": per_file(files),
                      "extract": end_to_end(args.midi, len(files))}, indent=2))


if __name__ == "__main__":
    main()
