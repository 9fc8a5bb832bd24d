"""Rewrite bars of a piece (`pianocomposer infill`): the notes that begin in those bars are written anew by a model so
that they lead into what follows (composing/infill.py); every other note of the file is kept exactly as it was (with
its velocity, track and length), its tempo and metre too, and the new notes are spliced in."""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
from threadpoolctl import threadpool_limits

from pianocomposer.composing.compose import Composer, Sampler, blas_threads
from pianocomposer.composing.four_parts import four_parts
from pianocomposer.composing.infill import fill
from pianocomposer.config import HARMONY_TEMPERATURE
from pianocomposer.encodings.voices_tokens import LOWER
from pianocomposer.errors import PianoComposerError
from pianocomposer.reading.readers import read_midi
from pianocomposer.writing.piece import write_piece

SUFFIX = "-infilled"
FOLLOWING_BARS = 4  # how much of what follows the bars the candidates are scored on (by the network's own reading)
DEFAULT_VELOCITY = 80


@dataclass
class Infilled:
    """One piece with bars rewritten: where its files are, the bars, and the candidates' scores (the chosen first)."""

    source: Path
    midi: Path
    wav: Path | None
    musicxml: Path | None
    bars: tuple[int, int]
    seconds: tuple[float, float]  # where the bars lie in the piece
    kept: int  # the source's notes kept as they were
    replaced: int  # its notes that began in the bars
    written: int  # the new notes
    candidates: list[dict] = field(default_factory=list)  # nats per token of each candidate and of what follows

    def to_json(self) -> dict:
        """The JSON form `infill --json` prints."""
        return {"source": str(self.source), "midi": str(self.midi), "wav": str(self.wav) if self.wav else None,
                "musicxml": str(self.musicxml) if self.musicxml else None, "bars": list(self.bars),
                "seconds": [round(s, 3) for s in self.seconds], "kept": self.kept, "replaced": self.replaced,
                "written": self.written, "candidates": self.candidates}


def parse_bars(spec: str) -> tuple[int, int]:
    """'5-8' -> (5, 8); '5' -> (5, 5); bars count from 1."""
    first, _, last = spec.partition("-")
    try:
        bars = int(first), int(last or first)
    except ValueError:
        raise PianoComposerError(f"--bars {spec!r}: expected FIRST-LAST bar numbers, e.g. 5-8") from None
    if bars[0] < 1 or bars[1] < bars[0]:
        raise PianoComposerError(f"--bars {spec!r}: an empty range (bars count from 1, the first before the last)")
    return bars


def bar_lines(midi: pretty_midi.PrettyMIDI) -> list[float]:
    """Where each bar of a piece begins, in quarter notes (by its time signatures; 4/4 without one), and where its
    last bar ends; a pickup (a first bar shorter than the next) is bar 0, as musicians count: its start is left out,
    so that bar n (from 1) lies between lines n-1 and n."""
    end = midi.time_to_tick(midi.get_end_time()) / midi.resolution
    quarters = [q for t in midi.get_downbeats() if (q := midi.time_to_tick(t) / midi.resolution) < end - 1e-6]
    metres = midi.time_signature_changes
    last = metres[-1].numerator * 4 / metres[-1].denominator if metres else 4.0
    while quarters and quarters[-1] + last < end - 1e-6:  # a bar begins before the piece ends
        quarters.append(quarters[-1] + last)
    lines = [*quarters, quarters[-1] + last] if quarters else [0.0, last]
    return lines[1:] if len(lines) > 2 and lines[1] - lines[0] < lines[2] - lines[1] - 1e-6 else lines


def infill(pieces: list[Path], bars: tuple[int, int], weights: Path | Composer | None = None,
           out_dir: Path | None = None, *, candidates: int = 8, temperature: float | None = None, seed: int = 0,
           keep_melody: bool = False, sheet: bool = False, wav: bool = True, soundfont: Path | None = None
           ) -> list[Infilled]:
    """Rewrite `bars` (first, last; from 1, a pickup not counted) of each piece (MIDI, MusicXML or abc) with a timed
    or four-voice bundle: `candidates` fillings sampled at `temperature` (default: a four-voice model's as harmonize's,
    else 1), the one that leads likeliest into what follows kept (with `keep_melody`, a four-voice model writes only
    the lower voices under the piece's own top voice); written beside each piece (or in out_dir) as NAME-infilled.mid
    (and .wav, and .musicxml with `sheet`)."""
    if candidates < 1:
        raise PianoComposerError(f"--candidates must be >= 1 (got {candidates})")
    composer = weights if isinstance(weights, Composer) else Composer(weights or Path("timed"))
    encoding = composer.encoding
    if temperature is None:
        temperature = HARMONY_TEMPERATURE if encoding.harmonizes else 1.0
    if keep_melody and not encoding.harmonizes:
        raise PianoComposerError(f"{composer.folder}: --keep-melody needs a four-voice (voices) model such as "
                                 f"chorale; this one is {composer.bundle.encoding_name}")
    read = [read_midi(Path(path)) for path in pieces]  # every file read before any is written
    done = []
    for path, midi in zip(map(Path, pieces), read, strict=True):
        lines = bar_lines(midi)
        if bars[1] > len(lines) - 1:
            raise PianoComposerError(f"{path}: bars {bars[0]}-{bars[1]} are outside the piece (it has "
                                     f"{len(lines) - 1} bars)")
        start, end = lines[bars[0] - 1], lines[bars[1]]
        rng = np.random.default_rng(seed)
        with threadpool_limits(blas_threads(), "blas"):
            if keep_melody:
                new, tracks, scores = _lower_voices(composer, midi, start, end, candidates, temperature, rng)
            else:
                following = lines[min(bars[1] + FOLLOWING_BARS, len(lines) - 1)]
                new, tracks, scores = _fill(composer, midi, start, end, following, candidates, temperature, rng)
        out, kept, replaced = _splice(midi, new, start, end, tracks)
        folder = Path(out_dir) if out_dir is not None else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        files = write_piece(out, folder / f"{path.stem}{SUFFIX}.mid", encoding, wav=wav, sheet=sheet,
                            title=f"{path.stem}, bars {bars[0]}-{bars[1]} rewritten",
                            source=f"pianocomposer, model {composer.folder.name}", soundfont=soundfont)
        seconds = (midi.tick_to_time(round(start * midi.resolution)), midi.tick_to_time(round(end * midi.resolution)))
        done.append(Infilled(path, files.midi, files.wav, files.musicxml, bars, seconds, kept, replaced,
                             sum(len(t.notes) for t in out.instruments) - kept, scores))
    return done


def _fill(composer: Composer, midi: pretty_midi.PrettyMIDI, start: float, end: float, following: float,
          candidates: int, temperature: float, rng: np.random.Generator
          ) -> tuple[pretty_midi.PrettyMIDI, dict[int, pretty_midi.Instrument] | None, list[dict]]:
    """Every voice of [start, end) quarters written anew (composing/infill.py): the chosen filling as MIDI timed in
    quarters from `start`, which of its tracks go to which of the piece's (None: all to one), the candidates' scores."""
    encoding, raw = composer.encoding, io.BytesIO()
    midi.write(raw)
    before, after = encoding.span(raw.getvalue(), 0, start), encoding.span(raw.getvalue(), end, following)
    found = fill(composer.bundle, composer.net, before, after, end - start, candidates,
                 Sampler(temperature=temperature), rng)
    new = encoding.decode(found[0].tokens, qpm=60.0)
    tracks = None
    if encoding.harmonizes:  # each voice to its own track
        tracks = dict(enumerate(encoding.voice_tracks(midi)))
    return new, tracks, [{"nats": round(c.nats, 4), "nats_after": None if np.isnan(c.nats_after)
                          else round(c.nats_after, 4)} for c in found]


def _lower_voices(composer: Composer, midi: pretty_midi.PrettyMIDI, start: float, end: float, candidates: int,
                  temperature: float, rng: np.random.Generator
                  ) -> tuple[pretty_midi.PrettyMIDI, dict[int, pretty_midi.Instrument], list[dict]]:
    """The lower voices of [start, end) quarters written anew under the piece's own soprano, the rest of the piece
    given (four_parts scores it: the likeliest candidate leads best into what follows)."""
    encoding = composer.encoding
    tracks = encoding.voice_tracks(midi)
    key, frames = encoding.frames(midi, tracks[0].notes, tracks)
    first, last = round(start * encoding.grid), round(end * encoding.grid)
    frames = [[t for t in frame if t[:2] not in LOWER] if first <= i < last else frame
              for i, frame in enumerate(frames)]
    ((chosen, nats),) = four_parts(composer.bundle, composer.net, [(key, frames)], rng, candidates,
                                   Sampler(temperature=temperature))
    new = encoding.decode([t for frame in chosen[first:last] for t in frame], qpm=60.0)
    return new, {i: track for i, track in enumerate(tracks) if i > 0}, [{"nats_per_frame": round(nats, 4)}]


def _splice(midi: pretty_midi.PrettyMIDI, new: pretty_midi.PrettyMIDI, start: float, end: float,
            tracks: dict[int, pretty_midi.Instrument] | None = None) -> tuple[pretty_midi.PrettyMIDI, int, int]:
    """The piece without its notes that begin in [start, end) quarters, with `new`'s notes (timed in quarters from
    `start`, at 60 qpm) placed there through the piece's own tempo map and cut at `end`; and how many notes were
    kept and replaced. `tracks` maps new tracks to the piece's tracks they rewrite (the others stay as they are);
    without it every pitched track is rewritten and the new notes join the one that lost the most."""
    out = copy.deepcopy(midi)
    low, high = round(start * midi.resolution), round(end * midi.resolution)
    pitched = [i for i, t in enumerate(midi.instruments) if not t.is_drum]
    if not pitched:
        raise PianoComposerError("the piece has no pitched notes to rewrite")
    rewritten = pitched if tracks is None else [i for i, t in enumerate(midi.instruments)
                                                if any(t is v for v in tracks.values())]
    removed: dict[int, list[pretty_midi.Note]] = {}
    for i in rewritten:
        track = out.instruments[i]
        inside = [low <= midi.time_to_tick(n.start) < high for n in track.notes]
        removed[i] = [n for n, x in zip(track.notes, inside, strict=True) if x]
        track.notes = [n for n, x in zip(track.notes, inside, strict=True) if not x]
    gone = [n for notes in removed.values() for n in notes]
    velocity = int(np.median([n.velocity for n in gone])) if gone else DEFAULT_VELOCITY
    most = max(removed, key=lambda i: len(removed[i]))

    def seconds(quarters: float) -> float:
        return out.tick_to_time(round(min(start + quarters, end) * midi.resolution))

    for j, source in enumerate(new.instruments):
        if tracks is not None and j not in tracks:
            continue
        index = most if tracks is None else next(i for i, t in enumerate(midi.instruments) if t is tracks[j])
        target = out.instruments[index]
        for note in source.notes:
            begin, finish = seconds(note.start), seconds(note.end)
            if finish > begin:
                target.notes.append(pretty_midi.Note(velocity, note.pitch, begin, finish))
        target.notes.sort(key=lambda n: (n.start, n.pitch))
    kept = sum(len(t.notes) for t in midi.instruments) - len(gone)
    return out, kept, len(gone)
