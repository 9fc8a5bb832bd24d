"""Rewriting bars 5-8 (`pianocomposer infill`), judged by what did not choose the candidates (the candidates are chosen
by the likelihood of what follows; that figure is reported, not judged by):

- the in-key share of the notes that begin in the bars (the key found in the whole original piece), rewritten
  beside the original's;
- for a four-voice model, voice leading (`voice_leading.judge`) on bars 4-9 (the new bars and both seams) beside
  Bach's on the same bars;
- real or generated: `evaluate`'s classifiers (logistic regression and boosted trees, 5-fold, seeds 0-2) told the
  windows of bars 3-10 of the rewritten pieces from the same windows of the originals;
- nats per token of what follows under the chosen candidate beside the median candidate's (what choosing buys).

    .venv/bin/python -m benchmarks.infill --weights timed --pieces val
    .venv/bin/python -m benchmarks.infill --weights chorale --pieces chorales/heldout [--keep-melody]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pretty_midi

from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Composer
from pianocomposer.frontends.infill import bar_lines, infill
from pianocomposer.judging.realness import classify, note_array, piece_features
from pianocomposer.judging.voice_leading import judge
from pianocomposer.writing.score import midi_key

SCALES = {False: {0, 2, 4, 5, 7, 9, 11}, True: {0, 2, 3, 5, 7, 8, 10, 11}}  # major; minor with its leading tone


def pieces_of(spec: str, composer: Composer) -> list[Path]:
    """`val`: the bundle's validation songs (in midi_songs/); else a folder's MIDI files."""
    if spec == "val":
        return [Path("midi_songs") / name for name in composer.bundle.meta["split"]["val"]]
    return sorted(Path(spec).glob("*.mid"))


def in_key(midi: pretty_midi.PrettyMIDI, low: float, high: float, key: tuple[int, bool]) -> float:
    """The share of notes beginning in [low, high) seconds whose pitch class is in the key's scale."""
    pitches = [n.pitch for t in midi.instruments if not t.is_drum for n in t.notes if low <= n.start < high]
    scale = {(key[0] + d) % 12 for d in SCALES[key[1]]}
    return float(np.mean([p % 12 in scale for p in pitches])) if pitches else float("nan")


def bar_time(midi: pretty_midi.PrettyMIDI, lines: list[float], bar: int) -> float:
    """Where bar line `bar` (0: the start) lies in the piece, in seconds (the last bar line beyond the piece)."""
    return midi.tick_to_time(round(lines[min(bar, len(lines) - 1)] * midi.resolution))


def window(midi: pretty_midi.PrettyMIDI, low: float, high: float) -> pretty_midi.PrettyMIDI:
    """The notes beginning in [low, high) seconds, from `low` on, in their tracks."""
    out = pretty_midi.PrettyMIDI(initial_tempo=float(midi.get_tempo_changes()[1][0]))
    for track in midi.instruments:
        copy = pretty_midi.Instrument(track.program, track.is_drum, track.name)
        copy.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start - low, min(n.end, high) - low)
                      for n in track.notes if low <= n.start < high]
        out.instruments.append(copy)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="timed")
    parser.add_argument("--pieces", default="val", help="val (the bundle's validation songs) or a folder")
    parser.add_argument("--bars", default="5-8")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--keep-melody", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    composer = Composer(Path(args.weights))
    first, last = map(int, args.bars.split("-"))
    rows, originals, rewritten = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(pieces_of(args.pieces, composer)):
            source = pretty_midi.PrettyMIDI(str(path))
            lines = bar_lines(source)
            if len(lines) - 1 < last + 2:
                continue
            (done,) = infill([path], (first, last), composer, Path(tmp), candidates=args.candidates, seed=i,
                             keep_melody=args.keep_melody, wav=False)
            new = pretty_midi.PrettyMIDI(str(done.midi))
            key = midi_key(source)
            low, high = done.seconds

            row = {"piece": path.name, "in_key_original": in_key(source, low, high, key),
                   "in_key_rewritten": in_key(new, low, high, key)}
            after = [c.get("nats_after") for c in done.candidates if c.get("nats_after") is not None]
            if after:
                row |= {"nats_after_chosen": after[0], "nats_after_median": float(np.median(after))}
            if composer.encoding.harmonizes:
                steps = float(source.get_tempo_changes()[1][0]) / 60 * composer.encoding.grid
                seam = (bar_time(source, lines, first - 2), bar_time(source, lines, last + 1))
                row |= {f"{k}_original": v for k, v in judge(window(source, *seam).instruments, steps).items()}
                row |= {f"{k}_rewritten": v for k, v in judge(window(new, *seam).instruments, steps).items()}
            rows.append(row)
            context = (bar_time(source, lines, first - 3), bar_time(source, lines, last + 2))
            originals.append(piece_features(note_array(window(source, *context))))
            rewritten.append(piece_features(note_array(window(new, *context))))
    accuracy = [classify(originals, rewritten, seed)[:2] for seed in range(3)]
    figures = {name: float(np.nanmean([r[name] for r in rows if name in r])) for name in rows[0]
               if name != "piece"}
    summary = {"weights": args.weights, "pieces": len(rows), "bars": args.bars, "candidates": args.candidates,
               "keep_melody": args.keep_melody, "means": figures,
               "real_or_rewritten": {"logistic": float(np.mean([a[0].mean for a in accuracy])),
                                     "boosted_trees": float(np.mean([a[1].mean for a in accuracy]))},
               "machine": cpu_name(), "date": date.today().isoformat()}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
