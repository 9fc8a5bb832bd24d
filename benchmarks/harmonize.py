"""Harmonising held-out melodies: a voices bundle's alto, tenor and bass under Bach's sopranos and under folk tunes,
judged by voice leading beside Bach's own lower voices, with the time of one 40-second melody from process start.

For every chorale in `chorales/heldout/`, its soprano alone is harmonised (`--candidates` samples, one
kept) and judged by `voice_leading.judge`, beside Bach's own four voices, with the model's nats per frame for Bach's
lower voices given his soprano and for its own (`judge_heldout`, as `evaluate` reports it). Then the first
playable tune of eight abc books is harmonised, and each melody checked to be kept note for note. Then `pianocomposer
harmonize` is timed on a 40-second melody, three runs. Last, 20 whole chorales are written from `<start>` with and
without the sampler's grammar and rules (`generate --weights chorale` and its `--no-rules`) and judged the same way:

    .venv/bin/python -m benchmarks.harmonize --bundle weights/chorale --candidates 4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pretty_midi

from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Composer, Sampler
from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.harmonize import harmonize, read_melody
from pianocomposer.judging.evaluate import judge_heldout
from pianocomposer.judging.voice_leading import SATB_RANGES
from pianocomposer.reading.abc_notation import split_tunes

FOLK_BOOKS = ["oneills1850/0001-0050.abc", "oneills1850/0101-0200.abc", "ryansMammoth/7thRegimentReel.abc",
              "airdsAirs/book1.abc", "airdsAirs/book2.abc", "miscFolk/americanfifeopus.abc",
              "essenFolksong/altdeu10.abc", "essenFolksong/ballad10.abc"]


def mean(rows: list[dict]) -> dict:
    """The mean of each figure over pieces."""
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}


def soprano_file(chorale: Path, folder: Path) -> Path:
    """The chorale's soprano alone, as a one-track MIDI file with its time signatures and fermatas."""
    source = pretty_midi.PrettyMIDI(str(chorale))
    melody = pretty_midi.PrettyMIDI(initial_tempo=100)
    melody.instruments.append(source.instruments[0])
    melody.time_signature_changes = source.time_signature_changes
    melody.key_signature_changes = source.key_signature_changes
    melody.text_events = source.text_events
    path = folder / chorale.name
    melody.write(str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("weights/chorale"))
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    composer = Composer(args.bundle)
    chorales = sorted(Path("chorales/heldout").glob("*.mid"))
    result: dict = {"date": date.today().isoformat(), "cpu": cpu_name(), "bundle": str(args.bundle),
                    "candidates": args.candidates}
    t0 = time.perf_counter()
    songs = [composer.encoding.read_songs(c)[0]["tokens"] for c in chorales]
    heldout = judge_heldout(composer.bundle, composer.net, songs, np.random.default_rng(args.seed), args.candidates)
    result.update(chorales=heldout["pieces"], bach=heldout["original"], model=heldout["model"],
                  seconds_heldout=round(time.perf_counter() - t0, 1))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = []
        for book in FOLK_BOOKS:  # each book's first tune that plays (some lack a metre)
            text = next(Path("abc_tunes").glob(f"*/{book}")).read_text(encoding="utf-8", errors="replace")
            for tune in split_tunes(text):
                path = folder / f"{Path(book).stem}.abc"
                path.write_text(tune.text, encoding="utf-8")
                try:
                    read_melody(path)
                except PianoComposerError:
                    continue
                paths.append(path)
                break
        done = harmonize(paths, args.bundle, folder / "folk", seed=args.seed, candidates=args.candidates, wav=False)
        for path, one in zip(paths, done, strict=True):  # the melody kept note for note, but for grace notes
            melody = iter(n.pitch for n in read_melody(path)[1])
            soprano = [n.pitch for n in pretty_midi.PrettyMIDI(str(one.midi)).instruments[0].notes]
            assert all(pitch in melody for pitch in soprano), path  # in order, only notes left out
        result["folk"] = mean([{**d.voice_leading, "nats_per_frame": d.nats_per_frame} for d in done])
        for name, voices in (("melody", slice(0, 1)), ("lower_voices", slice(1, 4))):  # a tune may leave the range
            notes = [(n.pitch, compass) for d in done for track, compass in
                     zip(pretty_midi.PrettyMIDI(str(d.midi)).instruments[voices], SATB_RANGES[voices], strict=True)
                     for n in track.notes]
            result[f"folk_{name}_in_range"] = round(sum(lo <= p <= hi for p, (lo, hi) in notes) / len(notes), 4)
        result["folk_notes"] = sum(d.melody_notes for d in done)
        result["folk_notes_left_out"] = sum(d.left_out for d in done)
        # a 40-second melody: the chorale soprano closest to 40 s at 100 quarters a minute, from process start
        longest = min(chorales, key=lambda c: abs(read_melody(c)[1][-1].end - 40))
        melody = soprano_file(longest, folder)
        runs = []
        for _ in range(3):  # the first run also reads the files from disk
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "pianocomposer", "harmonize", str(melody), "--weights",
                                   str(args.bundle), "--out", str(folder / "timed"), "--no-wav", "--json"],
                                  capture_output=True, text=True)
            runs.append(round(time.perf_counter() - t0, 2))
            assert proc.returncode == 0, proc.stderr
        result["seconds_40s_melody"] = runs
        result["melody_seconds"] = round(read_melody(melody)[1][-1].end, 1)
    for rules in (False, True):
        pieces = composer.compose(composer.encoding.default_length, 20, rng=np.random.default_rng(args.seed),
                                  sampler=Sampler(), constrained=rules)
        lengths = [len(tokens) for tokens, _ in pieces]
        result[f"whole_chorales_rules_{rules}"] = {
            **mean([composer.encoding.check(tokens) for tokens, _ in pieces]),
            # a piece that ran to its length is ended after its last frame (at most 8 tokens) by the encoding
            "ended": sum(n < composer.encoding.default_length - 8 for n in lengths),
            "median_tokens": int(np.median(lengths))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
