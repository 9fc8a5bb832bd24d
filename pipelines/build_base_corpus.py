"""Build the base model's broad corpus from music21's public-domain corpus: every part of a work in one MIDI file.

Two folders, split by work and style:
- `base_songs/train/`: what the base model learns from: Renaissance and medieval polyphony (Palestrina, a seeded
  sample; the Trecento), the Viennese classics (Haydn's, Mozart's and Beethoven's string quartets), Romantic songs
  and piano music (Schumann, Schubert, Chopin, ...) and the folk dance tunes of Ryan's Mammoth Collection;
- `base_songs/heldout-monteverdi/`: Monteverdi's 49 madrigals, a whole style the base never sees: the "user's
  folder" on which fine-tuning (`train --from base`) is judged.

Bach's chorales are left out of both: they are `midi_songs/`, the second folder a fine-tune is tried on.
The MIDI files are not committed; `base_songs/MANIFEST.json` (committed) lists every file with its source and notes,
so a rebuild can be checked against it. `python pipelines/build_base_corpus.py` rebuilds it in minutes.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from music21 import chord, converter, corpus, note
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_corpus import EXT_PREFERENCE, bar_meters, convert

TRAIN, HELDOUT = "train", "heldout-monteverdi"
# collection -> (folder, what it is). Only composers long dead and collections the music21 corpus ships as public
# domain; the 20th-century pieces (Schoenberg, Webern, Beach, Johnson) and the teaching files are left out, and so
# are Josquin's chansons (their abc files hold one voice per tune, which music21 reads as an Opus of one-part scores).
COLLECTIONS = {
    "palestrina": (TRAIN, "Palestrina's masses and motets (a seeded sample)"),
    "trecento": (TRAIN, "14th-century Italian songs"),
    "ciconia": (TRAIN, "Ciconia"),
    "monteverdi": (HELDOUT, "Monteverdi's madrigals"),
    "luca": (TRAIN, "a 14th-century Gloria (music21's luca/)"),
    "lusitano": (TRAIN, "Vicente Lusitano"),
    "corelli": (TRAIN, "Corelli"),
    "handel": (TRAIN, "Handel"),
    "cpebach": (TRAIN, "C. P. E. Bach"),
    "weber": (TRAIN, "Weber"),
    "schubert": (TRAIN, "Schubert"),
    "schumann_robert": (TRAIN, "Robert Schumann"),
    "schumann_clara": (TRAIN, "Clara Schumann"),
    "chopin": (TRAIN, "Chopin"),
    "verdi": (TRAIN, "Verdi"),
    "joplin": (TRAIN, "Joplin"),
    "liliuokalani": (TRAIN, "Liliuokalani"),
    "ryansMammoth": (TRAIN, "Ryan's Mammoth Collection (1883): folk dance tunes, one per file"),
    "haydn": (TRAIN, "Haydn's string quartets"),
    "mozart": (TRAIN, "Mozart's string quartets and the sonata K. 545"),
    "beethoven": (TRAIN, "Beethoven's string quartets"),
}
PALESTRINA_SAMPLE = 400  # of 1,318: a broad base, not a Palestrina model (and extract time stays in minutes)


def corpus_files() -> list[tuple[str, Path]]:
    """(collection, file) for every work: one file per work, MusicXML preferred to Humdrum where both exist."""
    chosen: dict[tuple[str, Path], Path] = {}
    for name in corpus.getPaths():
        path = Path(name)
        parts = path.parts
        collection = parts[parts.index("corpus") + 1]
        if collection not in COLLECTIONS or path.suffix not in (*EXT_PREFERENCE, ".abc"):
            continue
        key = (collection, path.with_suffix(""))
        rank = (*EXT_PREFERENCE, ".abc").index
        if key not in chosen or rank(path.suffix) < rank(chosen[key].suffix):
            chosen[key] = path
    files = sorted(((c, p) for (c, _), p in chosen.items()), key=lambda cp: (cp[0], str(cp[1])))
    palestrina = [f for f in files if f[0] == "palestrina"]
    keep = set(np.random.default_rng(0).choice(len(palestrina), PALESTRINA_SAMPLE, replace=False).tolist())
    drop = {str(f[1]) for i, f in enumerate(palestrina) if i not in keep}
    return [f for f in files if str(f[1]) not in drop]


def tied_notes(path: Path) -> tuple[list[tuple[int, float, float]], list[tuple[float, int, int]]]:
    """(pitch, start, end) notes of a score, tied notes joined, and its bar meters: what build_corpus.score_notes
    gives, without music21's stripTies (47 of 59 s for a Beethoven quartet movement)."""
    score = converter.parse(path)
    notes: list[list] = []
    for part in score.parts or [score]:
        flat = part.flatten()
        open_ties: dict[int, int] = {}  # pitch -> index in notes of the note a tie continues
        for element in flat.notes:
            start = float(flat.elementOffset(element))
            end = start + float(element.quarterLength)
            if end <= start:
                continue  # grace notes have no duration
            pitches = element.pitches if isinstance(element, chord.Chord) else (
                [element.pitch] if isinstance(element, note.Note) else [])
            tie = element.tie.type if element.tie is not None else None
            for p in pitches:
                held = open_ties.pop(p.midi, None)
                if held is not None and tie in ("continue", "stop") and abs(notes[held][2] - start) < 1e-6:
                    notes[held][2] = end
                    index = held
                else:
                    notes.append([p.midi, start, end])
                    index = len(notes) - 1
                if tie in ("start", "continue"):
                    open_ties[p.midi] = index
    return [(int(p), s, e) for p, s, e in notes], bar_meters(score)


def out_name(collection: str, path: Path) -> str:
    """A flat, unique file name: collection, the folders below it and the stem."""
    parts = path.parts
    below = parts[parts.index(collection) + 1:]
    return "_".join([collection, *[p for p in below[:-1]], path.stem]).replace(" ", "-") + ".mid"


def main() -> None:
    """Convert every chosen work in parallel and write the manifest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("base_songs"), help="output folder")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    args = parser.parse_args()
    t0 = time.perf_counter()
    files = corpus_files()
    jobs = []
    for collection, path in files:
        folder = args.out / COLLECTIONS[collection][0]
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((path, folder / out_name(collection, path)))
    entries, skipped = [], []
    with Pool(args.workers) as pool:
        results = tqdm(pool.imap(functools.partial(convert, read=tied_notes), jobs), total=len(jobs), unit="file")
        for (collection, path), (_, dst), (_, notes, err) in zip(files, jobs, results, strict=True):
            source = str(path).split("/corpus/", 1)[1]
            if err:
                skipped.append({"source": source, "reason": err})
                tqdm.write(f"skip {source}: {err}")
                continue
            entries.append({"file": str(dst.relative_to(args.out)), "source": source, "collection": collection,
                            "notes": notes, "sha256": hashlib.sha256(dst.read_bytes()).hexdigest()})
    import music21

    manifest = {"music21": music21.__version__, "palestrina_sample": PALESTRINA_SAMPLE,
                "collections": {c: {"folder": f, "what": w} for c, (f, w) in COLLECTIONS.items()},
                "files": entries, "skipped": skipped}
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    for folder in (TRAIN, HELDOUT):
        inside = [e for e in entries if e["file"].startswith(folder + "/")]
        print(f"{folder}: {len(inside)} files, {sum(e['notes'] for e in inside)} notes")
    print(f"skipped {len(skipped)}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
