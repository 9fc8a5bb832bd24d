"""Extraction speed of the cpc readers (issue 14): music21 (the original's) and symusic (the fast one).

- Per file, in one process: seconds per file of each reader, and how far their tokens agree (sequence
  similarity, identical files, vocabulary overlap).
- End to end: `extract` cold (empty cache) and warm (every file cached), files/s, each reader, at 1 and 2 workers,
  and the token store's bytes per token.
- With --synthetic N: the same on N files made from the corpus (each song transposed by -5..6 semitones and
  stretched in time by 0.8-1.25x, so every file is new to the cache), for the scaling curve.
Prints one JSON object.

    .venv/bin/python -m benchmarks.extract_speed --midi midi_songs [--synthetic 10000 --music21-files 1000]
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

import numpy as np

from benchmarks.train_speed import cpu_name
from pianocomposer.encodings import get_encoding
from pianocomposer.reading.extract import extract, find_music_files


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


def end_to_end(midi: Path, readers: tuple[str, ...] = ("music21", "symusic")) -> dict:
    """extract's files/s, cold and warm, for each reader at 1 and 2 workers, and bytes per stored token."""
    n_files = len(find_music_files(midi))
    out = {"files": n_files}
    for reader in readers:
        params = None if reader == "music21" else {"reader": reader}
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                runs = {}
                for state in ("cold", "warm"):
                    start = time.perf_counter()
                    data = extract(midi, Path(tmp), encoding_params=params, workers=workers, progress=False)
                    runs[state] = round(n_files / (time.perf_counter() - start), 1)
                tokens = sum(len(song.tokens) for song in data.songs)
                out[f"{reader}, {workers} workers"] = {
                    "files_per_s": runs, "tokens": tokens,
                    "store_bytes_per_token": round((Path(tmp) / "tokens.json").stat().st_size / tokens, 2)}
    return out


def synthetic_corpus(files: list[Path], n: int, folder: Path) -> Path:
    """n MIDI files: the corpus songs transposed by -5..6 semitones and stretched in time by 0.8-1.25x."""
    from symusic import Score

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        score = Score(str(files[i % len(files)]))
        shift, stretch = int(rng.integers(-5, 7)), float(rng.uniform(0.8, 1.25))
        for track in score.tracks:
            for note in track.notes:
                note.pitch = min(127, max(0, note.pitch + shift))
                note.time, note.duration = round(note.time * stretch), max(1, round(note.duration * stretch))
        score.dump_midi(str(folder / f"synthetic-{i:05d}.mid"))
    return folder


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, default=Path("midi_songs"))
    parser.add_argument("--synthetic", type=int, default=0, help="also measure on this many synthetic files")
    parser.add_argument("--music21-files", type=int, default=1000, help="synthetic files for the slow reader")
    args = parser.parse_args()
    files = find_music_files(args.midi)
    report = {"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "files": len(files), "per_file": per_file(files), "extract": end_to_end(args.midi)}
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            big = synthetic_corpus(files, args.synthetic, Path(tmp) / "big")
            report["synthetic_make_s"] = round(time.perf_counter() - start, 1)
            report["synthetic"] = end_to_end(big, ("symusic",))
            small = Path(tmp) / "small"
            small.mkdir()
            for path in sorted(big.iterdir())[: args.music21_files]:
                path.rename(small / path.name)
            report["synthetic_music21"] = end_to_end(small, ("music21",))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
