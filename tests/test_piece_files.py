"""The one writer of a piece's files (writing/piece.py), as every front end uses it."""

import pretty_midi

from pianocomposer.encodings import get_encoding
from pianocomposer.writing.piece import write_piece


def _piece() -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    track = pretty_midi.Instrument(0)
    track.notes = [pretty_midi.Note(80, p, i * 0.5, i * 0.5 + 0.5) for i, p in enumerate((60, 64, 67, 72))]
    midi.instruments.append(track)
    return midi


def test_every_file_asked_for_is_written_under_the_pieces_stem_and_nothing_else(tmp_path):
    files = write_piece(_piece(), tmp_path / "song.mid", get_encoding("timed"), title="song", ogg=True, roll=True,
                        sheet=True, svg=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["song.mid", "song.musicxml", "song.ogg", "song.png", "song.svg"]  # the WAV only made the OGG
    assert (files.midi, files.ogg, files.png, files.musicxml, files.svg, files.wav, files.text) == (
        tmp_path / "song.mid", tmp_path / "song.ogg", tmp_path / "song.png", tmp_path / "song.musicxml",
        tmp_path / "song.svg", None, None)
    assert [n.pitch for n in pretty_midi.PrettyMIDI(str(files.midi)).instruments[0].notes] == [60, 64, 67, 72]
    assert files.png.read_bytes()[:4] == b"\x89PNG" and files.ogg.read_bytes()[:4] == b"OggS"


def test_a_text_encoding_writes_its_text_and_a_piece_already_on_disk_is_not_rewritten(tmp_path):
    abc = get_encoding("abc")
    _piece().write(str(tmp_path / "tune.mid"))
    before = (tmp_path / "tune.mid").stat().st_mtime_ns
    files = write_piece(None, tmp_path / "tune.mid", abc, text="X:1\nM:4/4\nK:C\nCEGc|]\n", wav=True)
    assert files.text == tmp_path / "tune.abc" and files.text.read_text().startswith("X:1")
    assert files.wav == tmp_path / "tune.wav" and files.wav.stat().st_size > 1000
    assert (tmp_path / "tune.mid").stat().st_mtime_ns == before
