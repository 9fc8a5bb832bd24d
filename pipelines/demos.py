"""Batch-produce audio demos: a few pieces per sampling setting from one bundle, as MIDI + WAV + an index.

    .venv/bin/python pipelines/demos.py [--weights weights/default] [--out output/demos] [--pieces 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pianocomposer.atomic import write_json
from pianocomposer.generate import Composer, Sampler, generate

SETTINGS = {
    "default": Sampler(),
    "cautious": Sampler(temperature=0.8, top_p=0.9),
    "adventurous": Sampler(temperature=1.2, top_p=0.98),
    "greedy-like-the-original": Sampler(greedy=True),
}


def main() -> None:
    """Generate every setting's pieces and write index.json beside them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="bundle folder [default: as `generate`]")
    parser.add_argument("--out", type=Path, default=Path("output/demos"))
    parser.add_argument("--pieces", type=int, default=3)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    index = {}
    composer = Composer(args.weights)  # loaded once for every setting
    for name, sampler in SETTINGS.items():
        result = generate(composer, args.out / name, length=args.length, num_outputs=args.pieces,
                          seed=args.seed, sampler=sampler)
        index[name] = result.to_json()
        for piece in result.pieces:
            print(f"{name:>26}: {piece.wav}  loop rate {piece.loop_rate:.0%}")
    write_json(args.out / "index.json", index)
    print(json.dumps({"index": str(args.out / "index.json")}))


if __name__ == "__main__":
    main()
