"""abc text: characters vs folk-rnn-style tokens, and 128-token windows vs whole tunes, measured alike.

Step 1 (`train`): the abc preset trained on each variant for the same wall-clock budget (the question a CPU user
asks: which trains best in the time I have) or the same number of epochs, each data folder made by
`pianocomposer extract --input abc_tunes/train --encoding abc --params '{"unit": U}' --out data/abc[-token]`:

    .venv/bin/python benchmarks/abc_compare.py train --token data/abc-token --char data/abc --minutes 5

Step 2 (`judge`): per variant, the held-out tunes' likelihood with the whole tune as context (nats per tune,
comparable across units because both units spell the same text) and the share of 100 tunes generated with the
default sampling that music21 reads with a metre and a key, and that abc2midi converts (with and without Error
lines), with the failure reasons and the generation time:

    .venv/bin/python benchmarks/abc_compare.py judge --token data/abc-token --char data/abc
    .venv/bin/python benchmarks/abc_compare.py judge --token data/abc-token --char data/abc --bundle weights/abc \\
        --examples 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

# name -> (unit, changes to the abc preset): 128-token windows (the workshop's) or whole tunes (the 99th percentile
# length, folk-rnn's way), GRU (the workshop's) or LSTM (folk-rnn's), 512 units (the workshop's) or 256
VARIANTS = {"token-windows": ("token", {}), "char-windows": ("char", {}),
            "token-whole": ("token", {"seq_len": 640}), "char-whole": ("char", {"seq_len": 720}),
            "token-windows-lstm": ("token", {"cell": "lstm"}),
            "token-windows-256": ("token", {"rnn_units": 256}), "char-windows-256": ("char", {"rnn_units": 256}),
            "char-whole-256": ("char", {"rnn_units": 256, "seq_len": 640})}


def train(args) -> None:
    """Train every variant for args.epochs epochs; print and write each one's history."""
    from pianocomposer.learning.train import train as run

    for name in args.only.split(","):
        unit, changes = VARIANTS[name]
        t0 = time.perf_counter()
        result = run(getattr(args, unit), args.out / name, epochs=args.epochs, max_minutes=args.minutes,
                     preset="abc", float16=True, progress=False, **changes)
        row = {"variant": name, "seconds": round(time.perf_counter() - t0, 1), "best_epoch": result.best_epoch,
               "best_val_loss": result.best_val_loss, "tokens_per_s": round(result.tokens_per_s),
               "epochs": result.epochs}
        print(json.dumps(row), flush=True)


def abc2midi_check(text: str, folder: Path) -> tuple[bool, bool]:
    """(abc2midi writes a MIDI file for the tune and exits 0, and it prints no Error line while doing so)."""
    (folder / "t.abc").write_text(text, encoding="utf-8")
    (folder / "t.mid").unlink(missing_ok=True)
    proc = subprocess.run(["abc2midi", "t.abc", "-o", "t.mid"], cwd=folder, capture_output=True, text=True,
                          timeout=30)
    converts = proc.returncode == 0 and (folder / "t.mid").is_file() and (folder / "t.mid").stat().st_size > 0
    return converts, converts and "Error" not in proc.stdout + proc.stderr


def judge_one(bundle: Path, data: Path, tunes: int, seed: int, examples: int = 0) -> dict:
    """Held-out nats per tune and per token, and the validity of `tunes` generated tunes (default sampling)."""
    from pianocomposer.frontends.generate import generate
    from pianocomposer.judging.evaluate import score_likelihood
    from pianocomposer.learning.bundle import read_bundle
    from pianocomposer.reading.tokens import load_tokens

    meta = read_bundle(bundle)
    songs = {s.source: s.tokens for s in load_tokens(data).songs}
    heldout = [songs[name] for name in meta.meta["split"]["val"]]
    full = score_likelihood(meta.step_model(), meta, heldout, "validation split").full
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = generate(bundle, Path(tmp), num_outputs=tunes, seed=seed, wav=False, progress=False)
        seconds = time.perf_counter() - t0
        texts = [p.text.read_text() for p in result.pieces]
        valid = [p.error is None for p in result.pieces]
        checks = [abc2midi_check(text, Path(tmp)) for text in texts]
        reasons: dict[str, int] = {}
        for p in result.pieces:
            if p.error:
                key = p.error.split(" (")[0].split(":")[0].strip()
                reasons[key] = reasons.get(key, 0) + 1
    both = sum(v and c for v, (c, _) in zip(valid, checks, strict=True))
    return {"heldout_tunes": len(heldout), "nats_per_token": round(full.cross_entropy, 4),
            "nats_per_tune": round(full.cross_entropy * full.tokens / len(heldout), 1),
            "tokens_per_tune": round(full.tokens / len(heldout), 1), "tunes": tunes,
            "music21_valid": sum(valid), "abc2midi_converts": sum(c for c, _ in checks),
            "abc2midi_clean": sum(clean for _, clean in checks), "valid_and_converts": both, "failures": reasons,
            "generate_seconds": round(result.seconds["generate"], 2), "total_seconds": round(seconds, 2),
            **({"examples": [t for t, v in zip(texts, valid, strict=True) if v][:examples]} if examples else {})}


def judge(args) -> None:
    """Judge every trained variant under args.out (or the one --bundle); print one JSON line each."""
    if args.bundle:
        row = judge_one(args.bundle, getattr(args, args.unit), args.tunes, args.seed, args.examples)
        print(json.dumps({"bundle": str(args.bundle), **row}), flush=True)
        return
    for name, (unit, _) in VARIANTS.items():
        if (args.out / name / "bundle.json").is_file():
            print(json.dumps({"variant": name, **judge_one(args.out / name, getattr(args, unit), args.tunes,
                                                              args.seed)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train", "judge"])
    parser.add_argument("--token", type=Path, required=True, help="tokens.json folder, unit token")
    parser.add_argument("--char", type=Path, required=True, help="tokens.json folder, unit char")
    parser.add_argument("--out", type=Path, default=Path("output/abc-compare"))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget per variant")
    parser.add_argument("--tunes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants to train")
    parser.add_argument("--bundle", type=Path, help="judge this one bundle (e.g. weights/abc) instead")
    parser.add_argument("--unit", choices=["token", "char"], default="char", help="--bundle's unit")
    parser.add_argument("--examples", type=int, default=0, help="print this many valid tunes (--bundle)")
    args = parser.parse_args()
    (train if args.step == "train" else judge)(args)


if __name__ == "__main__":
    main()
