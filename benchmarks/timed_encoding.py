"""The timed encoding on a corpus (issue 11): round trip per layout, and the rhythm baseline of cpc pieces.

- Round trip: every MIDI file encoded and decoded with each layout; the share of notes that keep pitch, onset and
  duration at the grid resolution (1/12 quarter), vocabulary size and tokens per song.
- Baseline: the inter-onset-interval and duration histograms of 16 pieces from a cpc bundle (constant spacing)
  against those of the real corpus, as total variation distance (what `evaluate` reports for a timed bundle).
Prints one JSON object.

    .venv/bin/python -m benchmarks.timed_encoding --midi midi_songs --cpc-weights weights/default
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pretty_midi

from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Composer, Sampler
from pianocomposer.encodings import get_encoding
from pianocomposer.judging.metrics import histogram_distance, histograms
from pianocomposer.reading.extract import find_music_files

GRID = 12  # ticks per quarter of the default grid


def grid_notes(midi: pretty_midi.PrettyMIDI) -> Counter:
    """(pitch, onset, duration) of every pitched note, in grid ticks."""
    def ticks(seconds: float) -> int:
        return round(midi.time_to_tick(seconds) / midi.resolution * GRID)

    return Counter((n.pitch, ticks(n.start), ticks(n.end) - ticks(n.start))
                   for i in midi.instruments if not i.is_drum for n in i.notes)


def round_trip(files: list[Path], layout: str) -> dict:
    """Share of notes kept, vocabulary used and tokens per song for one layout."""
    timed = get_encoding("timed", {"layout": layout})
    kept = total = tokens = 0
    used: set[str] = set()
    start = time.perf_counter()
    for path in files:
        song = timed.encode_file(path)
        qpm = timed.qpm(path)
        original, back = grid_notes(pretty_midi.PrettyMIDI(str(path))), grid_notes(timed.decode(song, qpm=qpm))
        kept += sum((original & back).values())
        total += sum(original.values())
        tokens += len(song)
        used.update(song)
    return {"notes": total, "notes_kept": kept, "share_kept": round(kept / total, 6), "vocabulary_used": len(used),
            "tokens_per_song": round(tokens / len(files), 1), "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, default=Path("midi_songs"))
    parser.add_argument("--cpc-weights", type=Path, default=Path("weights/default"))
    args = parser.parse_args()
    files = find_music_files(args.midi)
    report = {"date": date.today().isoformat(), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "files": len(files), "round_trip": {layout: round_trip(files, layout) for layout in ("tsd", "remi")}}

    corpus = {k: sum(histograms(pretty_midi.PrettyMIDI(str(f)))[k] for f in files) for k in ("ioi", "duration")}
    composer = Composer(args.cpc_weights)
    pieces = composer.compose(500, 16, rng=np.random.default_rng(0), sampler=Sampler())
    cpc = {k: sum(histograms(composer.encoding.decode(tokens))[k] for tokens, _ in pieces) for k in corpus}
    report["cpc_baseline_distance"] = {k: round(histogram_distance(cpc[k], corpus[k]), 4) for k in corpus}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
