"""Harmonising held-out melodies: a voices bundle's alto, tenor and bass under Bach's sopranos and under folk tunes,
judged by voice leading beside Bach's own lower voices, with the time of one 40-second melody from process start.

For every chorale in `chorales/heldout/`, its soprano alone is harmonised (`--candidates` samples, the most likely
kept) and judged by `voice_leading.judge`; Bach's own four voices are judged the same way, and the model's
nats per frame for Bach's lower voices given his soprano are reported beside those of its own. Then the first tune of
eight abc books is harmonised the same way. Then `pianocomposer harmonize` is timed on a 40-second melody:

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
from pianocomposer.abc_notation import split_tunes
from pianocomposer.compose import Composer
from pianocomposer.harmonize import harmonize, read_melody, score_lower_voices
from pianocomposer.voice_leading import judge

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
    encoding = composer.encoding
    steps = 100 / 60 * encoding.grid
    chorales = sorted(Path("chorales/heldout").glob("*.mid"))
    result: dict = {"date": date.today().isoformat(), "cpu": cpu_name(), "bundle": str(args.bundle),
                    "candidates": args.candidates, "chorales": len(chorales)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bach, model, bach_nats = [], [], []
        for chorale in chorales:
            midi = pretty_midi.PrettyMIDI(str(chorale))
            bach.append(judge(midi.instruments, steps))
            key, frames = encoding.frames(midi, midi.instruments[0].notes, midi.instruments)
            bach_nats.append(score_lower_voices(composer, key, frames))
            (done,) = harmonize([soprano_file(chorale, folder)], args.bundle, folder / "out", seed=args.seed,
                                candidates=args.candidates, wav=False)
            model.append({**done.voice_leading, "nats_per_frame": done.nats_per_frame})
            kept = pretty_midi.PrettyMIDI(str(done.midi)).instruments[0].notes
            assert [n.pitch for n in kept] == [n.pitch for n in midi.instruments[0].notes], chorale.name
        result["bach"] = {**mean(bach), "nats_per_frame": round(float(np.mean(bach_nats)), 4)}
        result["model"] = mean(model)
        folk = []
        for book in FOLK_BOOKS:
            tune = split_tunes((Path("abc_tunes") / book).read_text(encoding="utf-8", errors="replace"))[0]
            path = folder / f"{Path(book).stem}.abc"
            path.write_text(tune.text, encoding="utf-8")
            (done,) = harmonize([path], args.bundle, folder / "folk", seed=args.seed, candidates=args.candidates,
                                wav=False)
            folk.append({**done.voice_leading, "nats_per_frame": done.nats_per_frame})
        result["folk"] = mean(folk)
        # a 40-second melody: the chorale soprano closest to 40 s at 100 quarters a minute, from process start
        longest = min(chorales, key=lambda c: abs(read_melody(c)[1][-1].end - 40))
        melody = soprano_file(longest, folder)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pianocomposer", "harmonize", str(melody), "--weights",
                               str(args.bundle), "--out", str(folder / "timed"), "--no-wav", "--json"],
                              capture_output=True, text=True)
        result["seconds_40s_melody"] = round(time.perf_counter() - t0, 2)
        result["melody_seconds"] = round(read_melody(melody)[1][-1].end, 1)
        assert proc.returncode == 0, proc.stderr
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
