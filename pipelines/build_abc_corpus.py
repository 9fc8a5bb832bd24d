"""Build the shipped abc corpus `abc_tunes/` from the public-domain abc tune books bundled with music21."""

from __future__ import annotations

import argparse
import hashlib
from importlib.metadata import version
from pathlib import Path

from music21 import corpus

from pianocomposer.abc_notation import split_tunes

# music21 corpus folder -> (book, year, transcription credit as the files give it)
BOOKS = {
    "oneills1850": ("Francis O'Neill, O'Neill's Music of Ireland", 1903,
                    "transcribed by Henrik Norbeck, Bob Safranek, Trish O'Neil, John Chambers, Norbert Paap and others "
                    "(credited in each tune's Z: field)"),
    "ryansMammoth": ("William Bradbury Ryan, Ryan's Mammoth Collection", 1883,
                     "contributed by Ray Davies, Bob Puckette, John Walsh and others (credited in each tune's Z: "
                     "field); some from Cole's 1000 Fiddle Tunes, M. M. Cole's 1940 reprint of the book"),
}


def build(out: Path) -> list[tuple[Path, int, str]]:
    """Copy every abc file of BOOKS, unchanged, into out/<book>/; return (file, tunes, sha256) for each."""
    root = Path(corpus.__file__).resolve().parent
    written = []
    for folder in BOOKS:
        for source in sorted((root / folder).glob("*.abc")):
            data = source.read_bytes()
            target = out / folder / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            tunes = len(split_tunes(data.decode("utf-8", errors="replace")))
            written.append((target, tunes, hashlib.sha256(data).hexdigest()))
    return written


def provenance(out: Path, written: list[tuple[Path, int, str]]) -> str:
    """The provenance note: sources, licence, counts and a checksum per file."""
    lines = ["# abc_tunes/ provenance", "",
             f"Built by `python pipelines/build_abc_corpus.py --out {out}` from the abc files that music21 "
             f"{version('music21')} ships in its corpus (`music21/corpus/<folder>/`), copied byte for byte.", "",
             "The tunes are traditional; the books were printed over a century ago and are in the public domain. "
             "music21 distributes these abc transcriptions with its corpus (see music21/corpus/license.txt: "
             "\"out of copyright in the United States or licensed for use\"). Transcribers are credited in each "
             "tune's own fields, which are kept in the files.", "",
             "| folder | book | printed | transcriptions | files | tunes |", "| --- | --- | --- | --- | --- | --- |"]
    for folder, (book, year, credit) in BOOKS.items():
        rows = [w for w in written if w[0].parent.name == folder]
        lines.append(f"| `{folder}/` | {book} | {year} | {credit} | {len(rows)} | {sum(w[1] for w in rows)} |")
    lines += ["", "## Files (sha256)", ""]
    lines += [f"- `{w[0].relative_to(out)}`: {w[1]} tunes, `{w[2]}`" for w in written]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("abc_tunes"))
    out = parser.parse_args().out
    written = build(out)
    (out / "PROVENANCE.md").write_text(provenance(out, written), encoding="utf-8")
    print(f"{len(written)} files, {sum(w[1] for w in written)} tunes -> {out}")


if __name__ == "__main__":
    main()
