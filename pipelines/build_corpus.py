"""Build the default `midi_songs/` corpus from the Bach chorales bundled with music21."""

from __future__ import annotations

import argparse
import time
from fractions import Fraction
from multiprocessing import Pool
from pathlib import Path

import pretty_midi
from music21 import chord, converter, corpus, note, stream
from tqdm import tqdm

QPM = 100.0
RESOLUTION = 480  # ticks per quarter: divisible by 3 and 16, so triplets and 64ths land on exact ticks
VELOCITY = 80
EXT_PREFERENCE = (".mxl", ".xml", ".musicxml", ".krn")


def chorale_paths() -> list[Path]:
    """Return the sorted, de-duplicated source files of the Riemenschneider chorales."""
    names = set(corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename"))
    paths: list[Path] = []
    for name in names:
        stem = name.split("/")[-1]
        found = corpus.getWork(name)
        candidates = [Path(p) for p in (found if isinstance(found, list) else [found])]
        exact = [p for p in candidates if p.stem == stem and p.suffix in EXT_PREFERENCE]
        if not exact and len(candidates) == 1:
            exact = candidates  # e.g. 'bwv18.5-l' is stored as 'bwv18.5-lz.mxl'
        if not exact:
            print(f"skip {name}: no exact corpus file among {[p.name for p in candidates]}")
            continue
        paths.append(min(exact, key=lambda p: EXT_PREFERENCE.index(p.suffix)))
    return sorted(paths, key=lambda p: p.stem)


def bar_meters(score: stream.Score) -> list[tuple[float, int, int]]:
    """Return (start_quarters, numerator, denominator) wherever the real bar length changes, pickups included."""
    meters: list[tuple[float, int, int]] = []
    ts = None
    for measure in score.parts[0].getElementsByClass(stream.Measure):
        ts = measure.timeSignature or ts
        length = Fraction(measure.duration.quarterLength)
        whole = length / 4
        if ts is not None and length == Fraction(ts.barDuration.quarterLength):
            meter_now = (ts.numerator, ts.denominator)
        elif length > 0 and whole.denominator & (whole.denominator - 1) == 0:  # MIDI needs a power-of-2 denominator
            meter_now = (whole.numerator, whole.denominator)
        else:
            continue
        if not meters or meters[-1][1:] != meter_now:
            meters.append((float(measure.offset), *meter_now))
    return meters


def score_notes(path: Path) -> tuple[list[tuple[int, float, float]], list[tuple[float, int, int]]]:
    """Parse one score and return (pitch, start_quarters, end_quarters) notes plus its bar meters."""
    original = converter.parse(path)
    flat = original.stripTies(inPlace=False).flatten()
    notes: list[tuple[int, float, float]] = []
    for element in flat.notes:
        start = float(flat.elementOffset(element))
        end = start + float(element.quarterLength)
        if end <= start:
            continue  # grace notes have no duration
        if isinstance(element, chord.Chord):
            notes.extend((p.midi, start, end) for p in element.pitches)
        elif isinstance(element, note.Note):
            notes.append((element.pitch.midi, start, end))
    return notes, bar_meters(original)


def merge_unisons(notes: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """Drop duplicate same-pitch notes and cut overlapping ones so one track stays well-formed."""
    merged: list[list[float]] = []
    for pitch, start, end in sorted(notes, key=lambda n: (n[0], n[1], -n[2])):
        if merged and merged[-1][0] == pitch and start < merged[-1][2]:
            if start == merged[-1][1]:
                continue  # same pitch, same start in two voices: keep the longest
            merged[-1][2] = start
        merged.append([pitch, start, end])
    return sorted(((int(p), s, e) for p, s, e in merged), key=lambda n: (n[1], n[0]))


def convert(job: tuple[Path, Path], read=score_notes) -> tuple[str, int, str | None]:
    """Write one score (read by `read`) as a single-track piano MIDI file; return (name, notes, error)."""
    src, dst = job
    try:
        notes, meters = read(src)
        notes = merge_unisons(notes)
        if not notes:
            return src.stem, 0, "no notes"
        pm = pretty_midi.PrettyMIDI(resolution=RESOLUTION, initial_tempo=QPM)
        piano = pretty_midi.Instrument(program=0, is_drum=False, name="Piano")
        sec = 60.0 / QPM
        for pitch, start, end in notes:
            piano.notes.append(pretty_midi.Note(velocity=VELOCITY, pitch=pitch, start=start * sec, end=end * sec))
        pm.instruments.append(piano)
        for start, num, den in meters:  # exact source barlines, so music21 re-splits few notes on import
            pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, start * sec))
        pm.write(str(dst))
        return src.stem, len(notes), None
    except Exception as exc:  # a bad source file is skipped, not fatal
        return src.stem, 0, f"{type(exc).__name__}: {exc}"


def main() -> None:
    """Parse arguments and convert the chorales in parallel."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("midi_songs"), help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N chorales")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    args = parser.parse_args()

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = chorale_paths()[: args.limit]
    jobs = [(p, args.out / f"{p.stem}.mid") for p in paths]
    written, total_notes, skipped = 0, 0, []
    with Pool(args.workers) as pool:
        for name, n, err in tqdm(pool.imap(convert, jobs), total=len(jobs), unit="file"):
            if err:
                skipped.append(name)
                tqdm.write(f"skip {name}: {err}")
            else:
                written, total_notes = written + 1, total_notes + n
    print(
        f"wrote {written} files ({total_notes} notes) to {args.out}, skipped {len(skipped)}, "
        f"{time.perf_counter() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()
