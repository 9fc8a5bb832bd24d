"""A piece's files, written in one way by every front end (generate, harmonize, demos, serve, infill): its MIDI, its
text form where its encoding has one (an abc tune), its WAV and OGG, a piano roll, and its score (MusicXML, SVG); each
file written atomically beside the piece's MIDI, under the MIDI's stem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pretty_midi

from pianocomposer.writing.atomic import atomic_path, write_text
from pianocomposer.writing.render import render_wav, wav_to_ogg
from pianocomposer.writing.score import write_sheet


@dataclass
class PieceFiles:
    """Where a piece's files are (None: not written)."""

    midi: Path
    text: Path | None = None
    wav: Path | None = None
    ogg: Path | None = None
    png: Path | None = None
    musicxml: Path | None = None
    svg: Path | None = None


def write_midi(midi: pretty_midi.PrettyMIDI, path: Path) -> Path:
    """A piece's MIDI file, written atomically."""
    with atomic_path(path) as tmp:
        midi.write(str(tmp))
    return path


def plot_piano_roll(midi: pretty_midi.PrettyMIDI, target: Path, title: str) -> None:
    """A PNG of the piece's notes: time in seconds across, pitch up (matplotlib without pyplot's global state)."""
    from matplotlib.figure import Figure

    notes = [n for inst in midi.instruments for n in inst.notes]
    fig = Figure(figsize=(9, 2.6), dpi=100)
    ax = fig.add_subplot()
    ax.barh([n.pitch for n in notes], [n.end - n.start for n in notes], left=[n.start for n in notes], height=0.8,
            color="#35618f")
    low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
    ticks = [p for p in range(low - 2, high + 3) if p % 12 == 0]
    ax.set_yticks(ticks, [pretty_midi.note_number_to_name(p) for p in ticks])
    ax.set_ylim(low - 2, high + 2)
    ax.set_xlim(0, max(n.end for n in notes))
    ax.set_xlabel("seconds")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")


def write_score(encoding, midi: pretty_midi.PrettyMIDI, text: str | None, title: str, source: str, musicxml: Path,
                svg: Path | None = None) -> None:
    """The piece engraved as its encoding engraves it (`Encoding.sheet`): MusicXML, and its first page as SVG."""
    write_sheet(encoding.sheet(midi, text, title, source), musicxml, svg)


def write_piece(midi: pretty_midi.PrettyMIDI | None, path: Path, encoding=None, *, text: str | None = None,
                title: str = "", source: str = "pianocomposer", wav: bool = False, ogg: bool = False,
                roll: bool = False, sheet: bool = False, svg: bool = False, soundfont: Path | None = None
                ) -> PieceFiles:
    """Write a piece as asked beside `path` (its .mid; `midi` None: the file is there already): its text form (with
    the encoding's text suffix), WAV, OGG (from the WAV; the WAV is kept only where asked for), a piano roll (.png),
    and the score (.musicxml, and .svg with `svg`) titled `title`."""
    files = PieceFiles(write_midi(midi, path) if midi is not None else path)
    if midi is None and (roll or sheet):
        midi = pretty_midi.PrettyMIDI(str(path))
    if text is not None and encoding is not None and encoding.text_suffix:
        files.text = path.with_suffix(encoding.text_suffix)
        write_text(files.text, text)
    if wav or ogg:
        rendered = render_wav(path, soundfont=soundfont)
        if ogg:
            files.ogg = wav_to_ogg(rendered, path.with_suffix(".ogg"))
        if wav:
            files.wav = rendered
        else:
            rendered.unlink()
    if roll and any(track.notes for track in midi.instruments):
        files.png = path.with_suffix(".png")
        plot_piano_roll(midi, files.png, title)
    if sheet:
        files.musicxml, files.svg = path.with_suffix(".musicxml"), path.with_suffix(".svg") if svg else None
        write_score(encoding, midi, text, title, source, files.musicxml, files.svg)
    return files
