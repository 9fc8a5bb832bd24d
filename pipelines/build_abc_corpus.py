"""Build the shipped abc corpus `abc_tunes/` from the public-domain abc tune books bundled with music21, and report
per book how many tunes extract keeps as they are, keeps repaired, and drops, and why (the same checks: music21 and
abc2midi). The books a model trains on go to `train/`; one whole book goes to `heldout/`, never trained on, to
measure how a model does on a collection it never saw (as does music21's Nottingham sample, left out)."""

from __future__ import annotations

import argparse
import hashlib
import re
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from music21 import corpus

from pianocomposer.reading.abc_notation import AbcError, abc2midi_problems, normalise, parse_tune, split_tunes

# music21 corpus folder -> (book, year, transcription credit as the files give it)
BOOKS = {
    "oneills1850": ("Francis O'Neill, O'Neill's Music of Ireland", 1903,
                    "transcribed by Henrik Norbeck, Bob Safranek, Trish O'Neil, John Chambers, Norbert Paap and others "
                    "(credited in each tune's Z: field)"),
    "ryansMammoth": ("William Bradbury Ryan, Ryan's Mammoth Collection", 1883,
                     "contributed by Ray Davies, Bob Puckette, John Walsh and others (credited in each tune's Z: "
                     "field); some from Cole's 1000 Fiddle Tunes, M. M. Cole's 1940 reprint of the book"),
    "airdsAirs": ("James Aird, A Selection of Scotch, English, Irish and Foreign Airs, volumes 1-6", 1782,
                  "transcribed from the printed volumes (the file headers name the volumes and printers)"),
    "miscFolk": ("Colonial and Civil War American fife music; Bruce and Stokoe, Northumbrian Minstrelsy", 1882,
                 "transcribed by Jack Campin and others (named in the file headers)"),
    "essenFolksong": ("The Essen Folksong Collection (German, European and Chinese folk songs)", 1995,
                      "encoded by Helmut Schaffrath and the EsAC project, abc by music21's corpus"),
}
HELD_OUT = "nottingham-dataset"  # never copied: the model is tested on it (BENCHMARKS.md)
HELD_OUT_BOOK = "miscFolk"  # copied to heldout/, never trained on: a whole collection the model never saw


def part(folder: str) -> str:
    """Where a book goes: train/ or heldout/."""
    return "heldout" if folder == HELD_OUT_BOOK else "train"


def build(out: Path) -> list[tuple[Path, int, str]]:
    """Copy every abc file of BOOKS, unchanged, into out/train/<book>/ (out/heldout/ for the held-out book); return
    (file, tunes, sha256) for each."""
    root = Path(corpus.__file__).resolve().parent
    written = []
    for folder in BOOKS:
        for source in sorted((root / folder).glob("*.abc")):
            data = source.read_bytes()
            target = out / part(folder) / folder / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            tunes = len(split_tunes(data.decode("utf-8", errors="replace")))
            written.append((target, tunes, hashlib.sha256(data).hexdigest()))
    return written


def tune_health(path: Path) -> tuple[int, int, Counter]:
    """How extract's abc encoding will take a book's tunes: (kept unchanged, kept repaired, why the rest drop)."""
    kept = repaired = 0
    dropped: Counter = Counter()
    for tune in split_tunes(path.read_bytes().decode("utf-8", errors="replace")):
        repairs: list[str] = []
        try:
            text = normalise(tune.text, repairs)
            parse_tune(text)
        except AbcError as exc:
            dropped[str(exc).split(" (")[0]] += 1
            continue
        except Exception as exc:
            dropped[f"music21: {type(exc).__name__}"] += 1
            continue
        problems = abc2midi_problems(text)
        if problems:  # named by kind: the message without its line, bar and numbers
            kind = re.sub(r"\d+(/\d+)?", "N", problems[0].split(" : ", 1)[-1]).strip()
            dropped[f"abc2midi: {kind}"] += 1
        elif repairs:
            repaired += 1
        else:
            kept += 1
    return kept, repaired, dropped


def provenance(out: Path, written: list[tuple[Path, int, str]]) -> str:
    """The provenance note: sources, licence, counts and a checksum per file."""
    lines = ["# abc_tunes/ provenance", "",
             f"Built by `python pipelines/build_abc_corpus.py --out {out}` from the abc files that music21 "
             f"{version('music21')} ships in its corpus (`music21/corpus/<folder>/`), copied byte for byte.", "",
             "The tunes are traditional; the books were printed over a century ago and are in the public domain. "
             "music21 distributes these abc transcriptions with its corpus (see music21/corpus/license.txt: "
             "\"out of copyright in the United States or licensed for use\"). Transcribers are credited in each "
             "tune's own fields, which are kept in the files.", "",
             f"`train/` holds the books the abc model trains on; `heldout/{HELD_OUT_BOOK}/` is a whole book it never "
             f"sees, on which its generalisation is measured, as on music21's `{HELD_OUT}/` (a sample of two tunes, "
             "not copied; BENCHMARKS.md).", "",
             "| folder | book | printed | transcriptions | files | tunes |", "| --- | --- | --- | --- | --- | --- |"]
    for folder, (book, year, credit) in BOOKS.items():
        rows = [w for w in written if w[0].parent.name == folder]
        lines.append(f"| `{part(folder)}/{folder}/` | {book} | {year} | {credit} | {len(rows)} | "
                     f"{sum(w[1] for w in rows)} |")
    lines += ["", "## What extract keeps (`--encoding abc`)", "",
              "Every tune is normalised (`pianocomposer/reading/abc_notation.py`), mechanical faults repaired (letter "
              "decorations dropped; ties between different notes, which are slurs, dropped; R:hornpipe dropped "
              "where the metre is not 2/4 or 4/4), then checked: music21 must read it with a metre, a key and "
              "notes, and abc2midi must report no error and no bar of the wrong length. The rest are dropped, "
              "named with the reason.", "",
              "| folder | tunes | kept as they are | kept repaired | dropped | why dropped (most common) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for folder in BOOKS:
        counts = [tune_health(w[0]) for w in written if w[0].parent.name == folder]
        kept, repaired = sum(c[0] for c in counts), sum(c[1] for c in counts)
        dropped = sum((c[2] for c in counts), Counter())
        total = kept + repaired + sum(dropped.values())
        why = "; ".join(f"{reason} ({n})" for reason, n in dropped.most_common(4))
        lines.append(f"| `{part(folder)}/{folder}/` | {total} | {kept} | {repaired} | {sum(dropped.values())} "
                     f"({sum(dropped.values()) / max(total, 1):.0%}) | {why} |")
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
