"""abc text: characters vs folk-rnn-style tokens, and 128-token windows vs whole tunes, measured alike.

Step 1 (`train`, on a GPU machine or here): the abc preset trained for the same number of epochs on each variant,
each data folder made by `pianocomposer extract --input abc_tunes --encoding abc --params '{"unit": U}'`:

    KERAS_BACKEND=torch python benchmarks/abc_compare.py train --token data-token --char data-char --epochs 8 \\
        --out runs

Step 2 (`judge`, CPU): per variant, the held-out tunes' likelihood with the whole tune as context (nats per tune,
comparable across units because both units spell the same text) and the share of 100 generated tunes that
music21 reads with a metre and a key, and that abc2midi converts:

    .venv/bin/python benchmarks/abc_compare.py judge --token data-token --char data-char --out runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

# name -> (unit, sequence length): 128-token windows (the workshop's), or whole tunes (99th percentile length)
VARIANTS = {"token-windows": ("token", 128), "char-windows": ("char", 128),
            "token-whole": ("token", 640), "char-whole": ("char", 720)}


def train(args) -> None:
    """Train every variant for args.epochs epochs; print and write each one's history."""
    from pianocomposer.train import train as run

    for name in args.only.split(","):
        unit, seq_len = VARIANTS[name]
        t0 = time.perf_counter()
        result = run(getattr(args, unit), args.out / name, epochs=args.epochs, preset="abc", seq_len=seq_len,
                     float16=True, progress=False)
        row = {"variant": name, "seconds": round(time.perf_counter() - t0, 1), "best_epoch": result.best_epoch,
               "best_val_loss": result.best_val_loss, "tokens_per_s": round(result.tokens_per_s)}
        print(json.dumps(row), flush=True)


def abc2midi_converts(text: str, folder: Path) -> bool:
    """abc2midi writes a MIDI file for the tune and exits 0."""
    (folder / "t.abc").write_text(text, encoding="utf-8")
    (folder / "t.mid").unlink(missing_ok=True)
    proc = subprocess.run(["abc2midi", "t.abc", "-o", "t.mid"], cwd=folder, capture_output=True, timeout=30)
    return proc.returncode == 0 and (folder / "t.mid").is_file() and (folder / "t.mid").stat().st_size > 0


def judge_one(bundle: Path, data: Path, tunes: int, seed: int) -> dict:
    """Held-out nats per tune and per token, and the validity of `tunes` generated tunes."""
    from pianocomposer.bundle import read_bundle
    from pianocomposer.evaluate import score_likelihood
    from pianocomposer.generate import Sampler, generate
    from pianocomposer.tokens import load_tokens

    meta = read_bundle(bundle)
    songs = {s.source: s.tokens for s in load_tokens(data).songs}
    heldout = [songs[name] for name in meta.meta["split"]["val"]]
    full = score_likelihood(meta.step_model(), meta, heldout, "validation split").full
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = generate(bundle, Path(tmp), num_outputs=tunes, seed=seed, sampler=Sampler(top_k=0, top_p=0.95),
                          wav=False, progress=False)
        seconds = time.perf_counter() - t0
        valid = [p for p in result.pieces if p.error is None]
        converts = sum(abc2midi_converts(p.text.read_text(), Path(tmp)) for p in valid)
        reasons: dict[str, int] = {}
        for p in result.pieces:
            if p.error:
                key = p.error.split("(")[0].strip()
                reasons[key] = reasons.get(key, 0) + 1
    return {"heldout_tunes": len(heldout), "nats_per_token": round(full.cross_entropy, 4),
            "nats_per_tune": round(full.cross_entropy * full.tokens / len(heldout), 1),
            "tokens_per_tune": round(full.tokens / len(heldout), 1), "tunes": tunes, "music21_valid": len(valid),
            "abc2midi_converts": converts, "failures": reasons,
            "generate_seconds": round(result.seconds["generate"], 2), "total_seconds": round(seconds, 2)}


def judge(args) -> None:
    """Judge every trained variant; print one JSON line each."""
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
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tunes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants to train")
    args = parser.parse_args()
    (train if args.step == "train" else judge)(args)


if __name__ == "__main__":
    main()
