"""The token store at scale (issue 14): tokens.json for N songs, format 4 (ids into one vocabulary) against
format 3 (a list of token strings per song): bytes per token, seconds to write and to load, and the memory the
loaded songs hold. The songs are the corpus's own tokens repeated (each a real song, cut or repeated to
--tokens), so the vocabulary and the token spelling are real. Each measurement runs in a fresh process
(peak resident memory is per process). Prints one JSON object.

    .venv/bin/python -m benchmarks.token_store --data data --songs 100000 --tokens 500
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

from benchmarks.train_speed import cpu_name
from pianocomposer.reading.tokens import Song, TokenData, load_tokens
from pianocomposer.writing.atomic import write_json


def make_store(data: Path, songs: int, tokens: int) -> TokenData:
    """N songs of `tokens` tokens each, cycled from the real songs of data/tokens.json."""
    real = load_tokens(data)
    pool = [s.tokens for s in real.songs if s.tokens]
    made = []
    for i in range(songs):
        song = pool[i % len(pool)]
        made.append(Song(f"synthetic/{i:06d}.mid", f"{i:064x}", (song * (tokens // len(song) + 1))[:tokens]))
    return TokenData(real.encoding, real.parser, made, encoding_params=real.encoding_params)


def child(args) -> None:
    """One measurement in this process: write (format 3 or 4) or load a store; print seconds and peak memory."""
    if args.step == "write":
        store = make_store(args.data, args.songs, args.tokens)
        t0 = time.perf_counter()
        if args.version == 4:
            write_json(args.file, store.to_json())
        else:  # format 3: the token strings themselves
            write_json(args.file, {"format": "pianocomposer-tokens", "version": 3, "encoding": store.encoding,
                                   "encoding_params": store.encoding_params, "parser": store.parser,
                                   "songs": [asdict(s) for s in store.songs], "skipped": []})
        seconds = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        store = load_tokens(args.file)
        seconds = time.perf_counter() - t0
        assert len(store.songs) == args.songs and all(len(s.tokens) == args.tokens for s in store.songs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20)}))


def measure(args, step: str, version: int, file: Path) -> dict:
    """Run one step in a fresh process."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.token_store", "--child", step, "--version", str(version),
                          "--file", str(file), "--data", str(args.data), "--songs", str(args.songs),
                          "--tokens", str(args.tokens)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--songs", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--child", dest="step", choices=["write", "load"])
    parser.add_argument("--version", type=int, default=4)
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.step:
        return child(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for version in (3, 4):
            file = Path(tmp) / f"tokens-v{version}.json"
            write, load = measure(args, "write", version, file), measure(args, "load", version, file)
            rows.append({"format": version, "bytes_per_token": round(file.stat().st_size / (args.songs * args.tokens),
                                                                     2),
                         "file_mb": round(file.stat().st_size / 2**20), "write_s": write["seconds"],
                         "load_s": load["seconds"], "load_peak_rss_mb": load["peak_rss_mb"]})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"date": date.today().isoformat(), "cpu": cpu_name(), "songs": args.songs,
                      "tokens_per_song": args.tokens, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
