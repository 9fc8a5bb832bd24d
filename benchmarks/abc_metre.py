"""Bars of the right length: an abc bundle's tunes with and without the metre-aware sampler, beside the corpus.

For each sampler setting, `pianocomposer generate --weights BUNDLE --num-outputs N --no-wav` is timed from process
start, and every tune it writes is judged: music21 reads it (generate's own check), abc2midi reports no `Error` and
no `Bar ... has ... time units` warning (clean), and its share of bars as long as the metre (music21's measures).
The corpus line judges the raw books' tunes the same way (normalised and repaired, before extract drops any).
Held-out likelihood: the bundle's validation tunes, every tune of music21's Nottingham collection, which no
model here has seen, and the books of `--unseen` folders held out of training (nats per character, the end-of-tune
token included); the shipped model is trained on `abc_tunes/train/` and never sees `abc_tunes/heldout/`:

    .venv/bin/python -m benchmarks.abc_metre --bundle weights/abc --data data/abc --tunes 100 --examples 3 \
        --unseen abc_tunes/heldout/miscFolk
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from benchmarks.train_speed import cpu_name
from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.abc import END, tokenize
from pianocomposer.reading.abc_notation import abc2midi_problems, normalise, split_tunes


def judge_texts(texts: list[str]) -> dict:
    """Shares of tunes clean under abc2midi and their bars of the metre's length, with the commonest problems."""
    encoding = get_encoding("abc")
    problems = [abc2midi_problems(text) for text in texts]
    checks = [encoding.check(tokenize(text, "char")) for text in texts]
    kinds = Counter(p[0].split(" : ", 1)[-1].split(" Bar ")[0][:60] for p in problems if p)
    return {"tunes": len(texts), "clean": sum(not p for p in problems) / max(len(texts), 1),
            "full_bars": sum(c["full_bars"] for c in checks) / max(len(checks), 1),
            "problems": kinds.most_common(5)}


def generated(bundle: str, tunes: int, seed: int, metre: bool) -> tuple[dict, list[str]]:
    """Run generate from a fresh process; its timing, validity and the tunes' texts."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pianocomposer", "generate", "--weights", bundle, "--num-outputs",
                               str(tunes), "--seed", str(seed), "--no-wav", "--out", out, "--json",
                               "--rules" if metre else "--no-rules"], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
        report = json.loads(proc.stdout)
        texts = [Path(p["abc"]).read_text(encoding="utf-8") for p in report["pieces"]]
    return {"seconds_from_start": round(seconds, 2), "generate_s": report["seconds"]["generate"],
            "music21_valid": report["valid"] / tunes}, texts


def corpus_texts(root: Path, count: int, seed: int) -> list[str]:
    """A fixed sample of the raw books' tunes, normalised and repaired as extract does before its checks."""
    texts = []
    for path in sorted(root.rglob("*.abc")):
        for tune in split_tunes(path.read_text(encoding="utf-8", errors="replace")):
            try:
                texts.append(normalise(tune.text))
            except ValueError:
                continue
    return random.Random(seed).sample(texts, min(count, len(texts)))


def likelihoods(bundle: str, data: Path, unseen: list[Path]) -> dict:
    """Nats per character on the bundle's validation tunes, on music21's Nottingham collection and on each folder
    of `unseen` (books held out of the bundle's training)."""
    from music21 import corpus

    from pianocomposer.judging.evaluate import score_likelihood
    from pianocomposer.learning.bundle import read_bundle
    from pianocomposer.reading.extract import extract
    from pianocomposer.reading.tokens import load_tokens

    loaded = read_bundle(bundle)
    net = loaded.step_model()
    val = set(loaded.meta["split"]["val"])
    collections = {"validation": ([s.tokens for s in load_tokens(data).songs if s.source in val], 0)}
    for folder in [Path(corpus.__file__).parent / "nottingham-dataset", *unseen]:
        with tempfile.TemporaryDirectory() as tmp:
            read = extract(folder, Path(tmp), encoding="abc", encoding_params=loaded.meta["encoding_params"],
                           progress=False)
        collections[folder.name.replace("-dataset", "")] = ([s.tokens for s in read.songs], len(read.skipped))
    out = {}
    for name, (songs, skipped) in collections.items():
        scored = score_likelihood(net, loaded, songs, name)
        # per character of the scored text (every token but each tune's first; the end token counts as one), so
        # that models writing characters and folk-rnn tokens compare
        chars = sum(len(t) if t != END else 1 for song in songs for t in song[1:])
        out[name] = {"tunes": len(songs), "skipped": skipped, "unknown_tokens": scored.unknown,
                     "nats_per_char": round(scored.full.cross_entropy * scored.full.tokens / chars, 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="weights/abc")
    parser.add_argument("--data", type=Path, default=Path("data/abc"), help="the bundle's tokens (validation split)")
    parser.add_argument("--corpus", type=Path, default=Path("abc_tunes/train"))
    parser.add_argument("--tunes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--examples", type=int, default=3, help="clean tunes to print from the metre-aware run")
    parser.add_argument("--unseen", type=Path, nargs="*", default=[], help="folders of abc books held out of training")
    args = parser.parse_args()
    result = {"date": date.today().isoformat(), "cpu": cpu_name(), "bundle": args.bundle}
    for metre in (True, False):
        timing, texts = generated(args.bundle, args.tunes, args.seed, metre)
        result["metre" if metre else "no_metre"] = {**timing, **judge_texts(texts)}
        if metre:
            result["examples"] = [t for t in texts if not abc2midi_problems(t)][:args.examples]
    result["corpus"] = judge_texts(corpus_texts(args.corpus, args.tunes * 3, args.seed))
    result["likelihood"] = likelihoods(args.bundle, args.data, args.unseen)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
