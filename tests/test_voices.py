"""The voices encoding: four voices frame by frame, read from the chorales and written back note for note."""

import io

import numpy as np
import pretty_midi
import pytest

from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.voices import END, START, estimate_key
from pianocomposer.errors import PianoComposerError, Unplayable
from pianocomposer.extract import extract
from pianocomposer.readers import Music
from tests.conftest import REPO

CHORALES = REPO / "chorales"


def _notes(midi: pretty_midi.PrettyMIDI) -> list[list[tuple[int, float, float]]]:
    return [[(n.pitch, round(n.start, 3), round(n.end, 3)) for n in t.notes] for t in midi.instruments]


def _music(midi: pretty_midi.PrettyMIDI) -> Music:
    out = io.BytesIO()
    midi.write(out)
    return Music(None, _midi=out.getvalue())


def test_chorales_come_back_note_for_note_with_their_key_beats_and_fermatas():
    encoding = get_encoding("voices")
    exact = 0
    paths = sorted(CHORALES.glob("*/*.mid"))[::10]
    for path in paths:
        (song,) = encoding.read_songs(path)
        tokens = song["tokens"]
        assert tokens[0] == START and tokens[1].startswith("Key_") and tokens[-1] == END
        frames = [i for i, t in enumerate(tokens) if t.startswith("Beat_")]
        assert all(tokens[i + 1:i + 5][0].startswith(("S_", "Fermata")) for i in frames)
        source, back = pretty_midi.PrettyMIDI(str(path)), encoding.decode(tokens)
        exact += _notes(back) == _notes(source)
        assert [t.name for t in back.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
        assert back.key_signature_changes[0].key_number == source.key_signature_changes[0].key_number
        assert [round(e.time, 3) for e in back.text_events] == [round(e.time, 3) for e in source.text_events]
    assert exact >= len(paths) - 1  # a 32nd note or two are moved to the sixteenth grid


def test_a_pickup_counts_as_the_end_of_a_bar():
    tokens = get_encoding("voices").read_songs(CHORALES / "heldout" / "bwv113.8.mid")[0]["tokens"]
    beats = [t for t in tokens if t.startswith("Beat_")]
    assert beats[:6] == ["Beat_12", "Beat_13", "Beat_14", "Beat_15", "Beat_0", "Beat_1"]


def test_four_unnamed_tracks_are_voices_from_the_highest_and_fewer_are_refused():
    midi = pretty_midi.PrettyMIDI()
    for pitch in (48, 72, 60, 65):  # T, S, A... in no order
        track = pretty_midi.Instrument(0)
        track.notes.append(pretty_midi.Note(80, pitch, 0.0, 1.0))
        midi.instruments.append(track)
    tokens = get_encoding("voices").encode(_music(midi))
    assert tokens[3:7] == ["S_72", "A_65", "T_60", "B_48"]
    midi.instruments.pop()
    with pytest.raises(Unplayable, match="not four voices"):
        get_encoding("voices").encode(_music(midi))


def test_transposing_moves_voices_within_their_compass_and_the_key_with_them():
    encoding = get_encoding("voices")
    assert encoding.transpose("S_72~", 2) == "S_74~" and encoding.transpose("Key_11m", 2) == "Key_1m"
    assert encoding.transpose("B_36", -6) is None and encoding.transpose("Beat_3", 5) == "Beat_3"
    assert encoding.nearest("T_80", ["T_60", "T_70", "T_71~", "A_79"]) == "T_70"


def test_a_key_is_estimated_from_notes_when_the_file_has_no_signature():
    c_major = np.zeros(12)
    c_major[[0, 2, 4, 5, 7, 9, 11]] = [4, 1, 2, 1, 3, 1, 1]
    assert estimate_key(c_major) == (0, False)
    assert estimate_key(np.roll(c_major, 7)) == (7, False)  # G major
    with pytest.raises(PianoComposerError, match="grid"):
        get_encoding("voices", {"grid": 3})


def test_extract_reads_the_chorales_folder(tmp_path):
    data = extract(CHORALES / "heldout", tmp_path, encoding="voices", progress=False)
    assert len(data.songs) == 35 and not data.skipped


def test_a_voices_bundle_trains_and_writes_four_named_voices(tmp_path):
    from pianocomposer.generate import generate
    from pianocomposer.train import train
    from tests.conftest import TINY

    extract(CHORALES / "heldout", tmp_path / "data", encoding="voices", progress=False)
    train(tmp_path / "data", tmp_path / "w", preset="quick", epochs=1, progress=False, **TINY)
    result = generate(tmp_path / "w", tmp_path / "out", num_outputs=2, length=200, seed=1, wav=False,
                      progress=False)
    for piece in result.pieces:  # cut at 200 tokens, each ends after its last whole frame
        assert piece.error is None, piece.error
        midi = pretty_midi.PrettyMIDI(str(piece.midi))
        assert [t.name for t in midi.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
        assert sum(len(t.notes) for t in midi.instruments) > 0
