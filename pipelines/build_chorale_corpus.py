"""Build the four-voice `chorales/` corpus from the Bach chorales bundled with music21 (public domain).

Each chorale becomes one MIDI file with four named tracks (Soprano, Alto, Tenor, Bass) at a fixed tempo, its
time signatures (pickups included), its key signature with the key's mode, and a `fermata` text event at every
note that carries one in any voice: what a harmoniser needs to know. Chorales without exactly these four voices are
skipped by name. Every tenth chorale in sorted order is held out (`chorales/heldout/`), whole, for judging
harmonisations; the rest are `chorales/train/`. `chorales/PROVENANCE.md` lists sources, split and skips.

    .venv/bin/python pipelines/build_chorale_corpus.py --out chorales
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from pathlib import Path

import music21
import pretty_midi
from build_corpus import QPM, RESOLUTION, VELOCITY, bar_meters, chorale_paths
from music21 import converter, expressions, key, stream
from tqdm import tqdm

VOICES = ("Soprano", "Alto", "Tenor", "Bass")
PROGRAM = 52  # General MIDI "Choir Aahs"
HELD_OUT_EVERY = 10


def voice_parts(score: stream.Score) -> list[stream.Part]:
    """The score's S, A, T and B parts, found by name (`Soprano`, `S.`, ...), or ValueError saying what is there."""
    found: dict[str, stream.Part] = {}
    for part in score.parts:
        name = (part.partName or part.id or "").strip().lower()
        for voice in VOICES:
            if name.startswith(voice.lower()) or name in (voice[0].lower(), voice[0].lower() + "."):
                found.setdefault(voice, part)
    if len(found) != 4:
        names = [p.partName or p.id for p in score.parts]
        raise ValueError(f"not four voices S, A, T, B (parts: {', '.join(map(str, names))})")
    return [found[v] for v in VOICES]


def convert(job: tuple[Path, Path]) -> tuple[str, int, str | None]:
    """Write one chorale as four-voice MIDI; return (name, notes, error)."""
    src, dst = job
    try:
        score = converter.parse(src)
        parts = voice_parts(score)
        analysed = score.analyze("key")
        signatures = list(score.parts[0].recurse().getElementsByClass(key.KeySignature))
        sharps = signatures[0].sharps if signatures else analysed.sharps
        tonic = key.KeySignature(sharps).asKey(analysed.mode)
        sec = 60.0 / QPM
        midi = pretty_midi.PrettyMIDI(resolution=RESOLUTION, initial_tempo=QPM)
        fermatas: set[float] = set()
        count = 0
        for voice, part in zip(VOICES, parts, strict=True):
            track = pretty_midi.Instrument(program=PROGRAM, name=voice)
            flat = part.stripTies(inPlace=False).flatten()
            for element in flat.notes:
                start = float(flat.elementOffset(element))
                end = start + float(element.quarterLength)
                if end <= start or not hasattr(element, "pitch"):
                    continue  # grace notes have no duration; a voice sings one note at a time
                track.notes.append(pretty_midi.Note(VELOCITY, element.pitch.midi, start * sec, end * sec))
                if any(isinstance(e, expressions.Fermata) for e in element.expressions):
                    fermatas.add(round(start * sec, 6))
            if not track.notes:
                raise ValueError(f"the {voice.lower()} has no notes")
            midi.instruments.append(track)
            count += len(track.notes)
        for start, num, den in bar_meters(score):
            midi.time_signature_changes.append(pretty_midi.TimeSignature(num, den, start * sec))
        name = f"{tonic.tonic.name.replace('-', 'b')} {'minor' if tonic.mode == 'minor' else 'major'}"
        midi.key_signature_changes.append(pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(name), 0.0))
        midi.text_events.extend(pretty_midi.Text("fermata", t) for t in sorted(fermatas))
        midi.write(str(dst))
        return src.stem, count, None
    except Exception as exc:  # a chorale that cannot be used is skipped by name, not fatal
        return src.stem, 0, f"{type(exc).__name__}: {exc}"


def main() -> None:
    """Convert the chorales in parallel into train/ and heldout/, and write PROVENANCE.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("chorales"), help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N chorales")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    args = parser.parse_args()

    t0 = time.perf_counter()
    paths = chorale_paths()[: args.limit]
    jobs = []
    for i, path in enumerate(paths):
        folder = args.out / ("heldout" if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 else "train")
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((path, folder / f"{path.stem}.mid"))
    written: dict[str, list[str]] = {"train": [], "heldout": []}
    skipped: list[tuple[str, str]] = []
    notes = 0
    with Pool(args.workers) as pool:
        for (_, dst), (name, n, err) in zip(jobs, tqdm(pool.imap(convert, jobs), total=len(jobs), unit="file"),
                                            strict=True):
            if err:
                skipped.append((name, err))
            else:
                written[dst.parent.name].append(name)
                notes += n
    skips = "\n".join(f"- `{name}`: {reason}" for name, reason in skipped) or "none"
    (args.out / "PROVENANCE.md").write_text(
        f"""# Provenance of `chorales/`

Four-voice Bach chorales (Soprano, Alto, Tenor, Bass: one named MIDI track each, {QPM:.0f} quarter notes per
minute, the source's time signatures, key signature and mode, and a `fermata` text event at every fermata),
converted by `pipelines/build_chorale_corpus.py` from the chorales bundled with music21 {music21.__version__}: the
same 350 source files as `midi_songs/` (Riemenschneider numbering; see `midi_songs/PROVENANCE.md` for how they are
chosen and their rights: Bach died in 1750, the music is in the public domain). {notes:,} notes.

**Split.** Every {HELD_OUT_EVERY}th chorale in sorted order is held out whole in `heldout/`
({len(written['heldout'])} chorales), for judging harmonisations of melodies the model never saw; `train/` holds
the other {len(written['train'])}.

**Skipped** ({len(skipped)}):

{skips}
""", encoding="utf-8")
    print(f"wrote {sum(map(len, written.values()))} chorales ({notes} notes) to {args.out}, skipped {len(skipped)}, "
          f"{time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
