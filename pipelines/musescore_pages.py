"""Open generated scores in MuseScore 3 (Debian's `musescore3`, headless) and keep its first pages for docs/: a
timed piano piece and an abc tune written with `generate --sheet`, each converted by MuseScore to its own format
and checked there (instrument changes, staves, key signature, title), its first page saved as PNG.

    apt-get install musescore3 && .venv/bin/python pipelines/musescore_pages.py --out docs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PIECES = {"timed": ["--weights", "timed", "--key", "D major", "--bars", "8", "--seed", "3"],
          "abc": ["--weights", "abc", "--seed", "1"]}


def musescore(source: Path, target: Path) -> None:
    """Convert with MuseScore 3 on an offscreen display, PNG pages at 100 dpi (raises on failure)."""
    subprocess.run(["mscore3", "-r", "100", "-o", str(target), str(source)], check=True, capture_output=True,
                   timeout=300,
                   env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    if shutil.which("mscore3") is None:
        raise SystemExit("mscore3 is not installed (apt-get install musescore3)")
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in PIECES.items():
            folder = Path(tmp) / name
            proc = subprocess.run([sys.executable, "-m", "pianocomposer", "generate", *options, "--sheet", "--no-wav",
                                   "--out", str(folder), "--json"], check=True, capture_output=True, text=True)
            xml = Path(json.loads(proc.stdout)["pieces"][0]["musicxml"])
            musescore(xml, folder / "score.mscx")
            mscx = (folder / "score.mscx").read_text(encoding="utf-8")
            title = re.search(r'<metaTag name="workTitle">([^<]*)<', mscx)
            report[name] = {"instrument_changes": mscx.count("<InstrumentChange"),
                            "staves": len(re.findall(r"<Staff id=\"\d+\">\s*<StaffType", mscx)),
                            "key_signatures": mscx.count("<KeySig>"), "title": title.group(1) if title else None}
            musescore(xml, folder / "page.png")  # MuseScore writes page-1.png, page-2.png, ...
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / "page-1.png", args.out / f"musescore-{name}.png")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
