"""Harmonise a melody in four parts (`pianocomposer harmonize`): the melody is the soprano, note for note and on the
grid, at every frame; a voices model writes the alto, tenor and bass beneath it, frame by frame (four_parts)."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
from threadpoolctl import threadpool_limits

from pianocomposer.composing.compose import Composer, Sampler, blas_threads
from pianocomposer.composing.four_parts import FIGURATION, four_parts
from pianocomposer.config import FLORID, HARMONY_TEMPERATURE
from pianocomposer.encodings.voices import DEFAULT_QPM, END, START
from pianocomposer.errors import PianoComposerError
from pianocomposer.judging.voice_leading import judge
from pianocomposer.reading.readers import read_midi
from pianocomposer.writing.piece import write_piece

SUFFIX = "-harmonized"


@dataclass
class Harmonization:
    """One melody harmonised: where its files are and how likely the model finds its lower voices."""

    melody: Path
    midi: Path
    musicxml: Path
    wav: Path | None
    frames: int
    melody_notes: int
    left_out: int  # melody notes shorter than the grid step (grace notes, quick ornaments): not on the grid
    nats_per_frame: float  # -log p(alto, tenor, bass | soprano) per frame, under the model
    voice_leading: dict[str, float]  # voice_leading.judge: parallels, crossings, chords, ranges, four voices

    def to_json(self) -> dict:
        """The JSON form `harmonize --json` prints."""
        return {"melody": str(self.melody), "midi": str(self.midi), "musicxml": str(self.musicxml),
                "wav": str(self.wav) if self.wav else None,
                "frames": self.frames, "melody_notes": self.melody_notes, "left_out": self.left_out,
                "nats_per_frame": round(self.nats_per_frame, 4),
                "voice_leading": {k: round(v, 4) for k, v in self.voice_leading.items()}}


def read_melody(path: Path) -> tuple[pretty_midi.PrettyMIDI, list[pretty_midi.Note]]:
    """A file's first piece and its top line: at each onset the highest note, held until the next onset."""
    midi = read_midi(path)
    notes = sorted((n for t in midi.instruments if not t.is_drum for n in t.notes), key=lambda n: (n.start, -n.pitch))
    line: list[pretty_midi.Note] = []
    for note in notes:
        if line and note.start < line[-1].end and note.start == line[-1].start:
            continue  # a lower note of the same onset
        if line and note.start < line[-1].end:
            line[-1] = pretty_midi.Note(line[-1].velocity, line[-1].pitch, line[-1].start, note.start)
        line.append(note)
    if not line:
        raise PianoComposerError(f"{path}: no notes to harmonise")
    return midi, line


def quarters(midi: pretty_midi.PrettyMIDI, time: float) -> float:
    """A time in a file's seconds as quarter notes from its start (through its tempo changes)."""
    return midi.time_to_tick(time) / midi.resolution


def in_half_notes(midi: pretty_midi.PrettyMIDI, line: list[pretty_midi.Note]) -> bool:
    """Whether a melody moves in half notes (a hymn tune in minims; 6 of Bach's 350 chorales): half its onsets or
    more come two quarters or longer after the one before, and none sooner than an eighth. The network learnt
    chorales that move in quarters; Bach's lower voices under such a melody move in quarters too, not eighths."""
    gaps = np.diff([quarters(midi, n.start) for n in line])
    return bool(len(gaps) >= 4 and np.median(gaps) >= 2 - 1e-6 and gaps.min() >= 0.5 - 1e-6)


def halved(midi: pretty_midi.PrettyMIDI, line: list[pretty_midi.Note], qpm: float
           ) -> tuple[pretty_midi.PrettyMIDI, list[pretty_midi.Note]]:
    """A melody in note values of half the length, at `qpm` (its half notes quarters), to harmonise as a melody in
    quarters: a bar of 3/2 becomes one of 3/4, a first short bar (a pickup) stays a pickup, other bars pair up (two
    bars of 4/4 in half notes make one of 4/4 in quarters); fermatas and key signatures move with the notes."""
    def seconds(time: float) -> float:
        return quarters(midi, time) / 2 * 60 / qpm

    def bar(ts: pretty_midi.TimeSignature) -> float:  # in quarters
        return ts.numerator * 4 / ts.denominator

    out = pretty_midi.PrettyMIDI(initial_tempo=qpm, resolution=midi.resolution)
    notes = [pretty_midi.Note(n.velocity, n.pitch, seconds(n.start), seconds(n.end)) for n in line]
    out.instruments.append(pretty_midi.Instrument(0, name="melody"))
    out.instruments[0].notes = notes
    metres = sorted(midi.time_signature_changes, key=lambda ts: ts.time)
    pickup = len(metres) > 1 and bar(metres[0]) < bar(metres[1]) and abs(
        quarters(midi, metres[1].time) - quarters(midi, metres[0].time) - bar(metres[0])) < 1e-6
    out.time_signature_changes = [pretty_midi.TimeSignature(
        ts.numerator, ts.denominator * (2 if (ts.numerator, ts.denominator) == (3, 2) or (i == 0 and pickup) else 1),
        seconds(ts.time)) for i, ts in enumerate(metres)]
    out.key_signature_changes = [pretty_midi.KeySignature(k.key_number, seconds(k.time))
                                 for k in midi.key_signature_changes]
    out.text_events = [pretty_midi.Text(e.text, seconds(e.time)) for e in [*midi.text_events, *midi.lyrics]]
    return out, notes


def doubled(harmony: pretty_midi.PrettyMIDI, melody: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """A harmonisation of a `halved` melody back in the melody's own note values and metres (`harmony` is at one
    tempo, its first)."""
    qpm = float(harmony.get_tempo_changes()[1][0])
    for track in harmony.instruments:
        for note in track.notes:
            note.start, note.end = 2 * note.start, 2 * note.end
    harmony.time_signature_changes = [
        pretty_midi.TimeSignature(ts.numerator, ts.denominator, quarters(melody, ts.time) * 60 / qpm)
        for ts in melody.time_signature_changes] or [
        pretty_midi.TimeSignature(ts.numerator, ts.denominator, 2 * ts.time) for ts in harmony.time_signature_changes]
    return harmony


def harmonize(melodies: list[Path], weights: Path | Composer | None = None, out_dir: Path | None = None, *,
              seed: int = 0, candidates: int = 1, temperature: float = HARMONY_TEMPERATURE, rules: bool = True,
              figuration: float | None = None, wav: bool = True, soundfont: Path | None = None
              ) -> list[Harmonization]:
    """Harmonise each melody file (MIDI, MusicXML or an abc tune) with a voices bundle (a folder, or a Composer that
    holds one), all in one batch, as florid as `figuration` says (FIGURATION's standard deviations from its mean:
    -2 plain, 2 florid; None: drawn for each melody); each is written beside it (or in out_dir) as
    NAME-harmonized.mid (one named track per voice, at the melody's tempo), .musicxml (SATB on two staves) and .wav."""
    if candidates < 1:
        raise PianoComposerError(f"--candidates must be >= 1 (got {candidates})")
    if figuration is not None and not -FLORID <= figuration <= FLORID:
        raise PianoComposerError(f"--figuration must be between -{FLORID:g} (plain) and {FLORID:g} (florid) "
                                 f"(got {figuration:g})")
    offset = FIGURATION if figuration is None else (FIGURATION[0] + figuration * FIGURATION[1], 0.0)
    composer = weights if isinstance(weights, Composer) else Composer(weights)
    encoding = composer.encoding
    if not encoding.harmonizes:
        raise PianoComposerError(f"{composer.folder}: harmonize needs a four-voice (voices) bundle; this one is "
                                 f"{composer.bundle.encoding_name}")
    # music21 (for the score) takes a second to import: it loads in a thread while the network samples, whose
    # matrix products leave the interpreter free
    threading.Thread(target=importlib.import_module, args=("music21.converter",), daemon=True).start()
    read = [read_melody(path) for path in map(Path, melodies)]  # every file read before any is written
    tempi = [float(midi.get_tempo_changes()[1][0]) if len(midi.get_tempo_changes()[1]) else None for midi, _ in read]
    halves = [in_half_notes(midi, line) for midi, line in read]  # harmonised in quarters, then doubled back
    pieces = [encoding.frames(*(halved(midi, line, qpm or DEFAULT_QPM) if half else (midi, line)))
              for (midi, line), qpm, half in zip(read, tempi, halves, strict=True)]
    with threadpool_limits(blas_threads(), "blas"):
        written = four_parts(composer.bundle, composer.net, pieces, np.random.default_rng(seed), candidates,
                             Sampler(temperature=temperature), rules, figuration=offset)
    done = []
    for path, (midi, line), (key, _), (chosen, nats), qpm, half in zip(map(Path, melodies), read, pieces, written,
                                                                       tempi, halves, strict=True):
        out = encoding.decode([START, key, *(t for frame in chosen for t in frame), END], qpm=qpm)
        if half:
            out = doubled(out, midi)
        folder = Path(out_dir) if out_dir is not None else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        files = write_piece(out, folder / f"{path.stem}{SUFFIX}.mid", encoding, title=f"{path.stem} (harmonised)",
                            source=f"pianocomposer, model {composer.folder.name}", wav=wav, sheet=True,
                            soundfont=soundfont)
        steps_per_second = (qpm or DEFAULT_QPM) / 60 * encoding.grid
        done.append(Harmonization(path, files.midi, files.musicxml, files.wav,
                                  len(chosen) * (1 + half), len(line), len(line) - len(out.instruments[0].notes),
                                  nats,
                                  judge(out.instruments, steps_per_second)))
    return done
