"""A musician's controls measured on the shipped models: `--key "D major"` as music21's key analysis hears the
pieces, `--bars 16` and `--seconds 30` as the pieces' last notes end, an abc tune's asked-for key and metre and its
bars under abc2midi, each run timed from process start. Then what makes a piece come out in a key, before generate's
last step (keeping only pieces music21 hears in the key asked for): the voices model started from the key's token
alone, and each MIDI model's pieces moved by the key heard in them:

    .venv/bin/python -m benchmarks.controls --pieces 10
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
from music21 import converter

from benchmarks.train_speed import cpu_name
from pianocomposer.composing.compose import Composer, Sampler
from pianocomposer.composing.controls import analysed_key, interval_to, transpose_tokens


def generate(folder: Path, *args: str) -> tuple[list[dict], float]:
    """Run `pianocomposer generate --json` and return its pieces and the seconds from process start."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pianocomposer", "generate", "--out", str(folder), "--no-wav",
                           "--json", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)["pieces"], round(time.perf_counter() - t0, 1)


def last_end(path: str) -> tuple[float, pretty_midi.PrettyMIDI]:
    midi = pretty_midi.PrettyMIDI(path)
    return max(n.end for t in midi.instruments for n in t.notes), midi


def heard_in_d(composer: Composer, pieces: int, seed: int) -> dict:
    """How often music21 hears D major in `pieces` raw pieces: started from the D major token (where the encoding
    names keys), and moved from the key heard in them to D, of those heard in a major key."""
    rng = np.random.default_rng(seed)
    start = composer.encoding.key_primer(2, False)
    out = {}
    if start is not None:
        started = composer.compose(composer.encoding.default_length, pieces, rng=rng, sampler=Sampler(), start=start)
        out["started_in_d"] = sum(analysed_key(composer.to_midi(t)) == (2, False) for t, _ in started)
    major = moved = 0
    for tokens, _ in composer.compose(500 if start is None else composer.encoding.default_length, pieces, rng=rng,
                                      sampler=Sampler()):
        tonic, minor = analysed_key(composer.to_midi(tokens))
        if not minor:
            major += 1
            moved += analysed_key(composer.to_midi(transpose_tokens(composer.encoding, tokens,
                                                                    interval_to(tonic, 2)))) == (2, False)
    return {**out, "pieces": pieces, "heard_major": major, "moved_and_heard_in_d": moved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=10)
    args = parser.parse_args()
    n = str(args.pieces)
    result: dict = {"date": date.today().isoformat(), "cpu": cpu_name(), "pieces": args.pieces}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for weights in ("timed", "default", "chorale"):
            pieces, seconds = generate(out / weights / "key", "--weights", weights, "--key", "D major",
                                       "--num-outputs", n, "--seed", "1")
            heard = [converter.parse(p["midi"]).analyze("key") for p in pieces]
            in_d = sum((k.tonic.name, k.mode) == ("D", "major") for k in heard)
            bar_pieces, bar_seconds = generate(out / weights / "bars", "--weights", weights, "--bars", "16",
                                               "--num-outputs", n, "--seed", "1")
            exact = 0
            for p in bar_pieces:  # the last note ends in the 16th bar after any pickup, none sounds past it
                end, midi = last_end(p["midi"])
                pickup = len(midi.time_signature_changes) > 1 and midi.time_signature_changes[1].time > 0
                bars = [*midi.get_downbeats()[int(pickup):], midi.get_end_time()]
                exact += bool(len(bars) >= 17 and bars[15] < end <= bars[16] + 1e-6)
            sec_pieces, sec_seconds = generate(out / weights / "seconds", "--weights", weights, "--seconds", "30",
                                               "--num-outputs", n, "--seed", "1")
            off = []
            for p in sec_pieces:
                end, midi = last_end(p["midi"])
                beat = 60 / midi.get_tempo_changes()[1][0]
                off.append(abs(end - 30) / beat)
            result[weights] = {"key_d_major": in_d, "key_seconds": seconds, "bars_16_exact": exact,
                               "bars_seconds": bar_seconds, "seconds_30_within_a_beat": sum(bool(o <= 1) for o in off),
                               "seconds_30_max_off_beats": round(float(max(off)), 2), "seconds_seconds": sec_seconds}
            print(weights, result[weights], file=sys.stderr, flush=True)
        tunes, seconds = generate(out / "abc", "--weights", "abc", "--key", "D major", "--metre", "6/8",
                                  "--num-outputs", n, "--seed", "1")
        asked = clean = 0
        for p in tunes:
            header = Path(p["abc"]).read_text().split("\n")
            asked += "K:D" in header and "M:6/8" in header
            report = subprocess.run(["abc2midi", p["abc"], "-o", str(out / "check.mid")], capture_output=True,
                                    text=True).stdout
            clean += "Error" not in report and "time units" not in report
        bar_tunes, bar_seconds = generate(out / "abc-bars", "--weights", "abc", "--bars", "16", "--num-outputs", n,
                                          "--seed", "1")
        exact = 0
        for p in bar_tunes:  # 16 bars of the metre's length, and at most a pickup beside them
            measures = list(converter.parse(p["abc"], format="abc").recurse().getElementsByClass("Measure"))
            full = sum(m.duration.quarterLength == m.barDuration.quarterLength for m in measures)
            exact += full == 16 and len(measures) - full <= 1
        result["abc"] = {"key_and_metre_as_asked": asked, "abc2midi_clean": clean, "seconds": seconds,
                         "bars_16_exact": exact, "bars_seconds": bar_seconds}
    for weights in ("timed", "default", "chorale"):
        result[weights]["raw"] = heard_in_d(Composer(Path(weights)), 20, 2)
        print(weights, result[weights]["raw"], file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
