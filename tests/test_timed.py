"""The timed encoding (MidiTok TSD/REMI): rhythm, rests and octaves survive; a timed bundle trains and generates."""

import json

import pretty_midi
import pytest

from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.generate import generate
from pianocomposer.judging.evaluate import evaluate
from pianocomposer.learning.bundle import read_bundle
from pianocomposer.learning.train import train
from pianocomposer.reading.extract import extract
from tests.conftest import TINY

QUARTER = 0.5  # seconds at 120 qpm
# (pitch, start, length) in quarter notes: chords spread over octaves, a dotted quarter, eighth-note triplets, a rest,
# and a note longer than a whole note
NOTES = [(48, 0, 1), (64, 0, 1), (79, 0, 1),
         (62, 1, 1.5),
         (64, 2.5, 1 / 3), (65, 2.5 + 1 / 3, 1 / 3), (67, 2.5 + 2 / 3, 1 / 3),
         (45, 5, 2), (61, 5, 2), (73, 5.5, 0.75),
         (59, 7, 5)]


def write_midi(path, notes=NOTES, qpm=120.0, split_tracks=False):
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    tracks = [pretty_midi.Instrument(0), pretty_midi.Instrument(40)]
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 36, 0, 0.1))
    q = 60 / qpm
    for i, (pitch, start, length) in enumerate(notes):
        track = tracks[i % 2] if split_tracks else tracks[0]
        track.notes.append(pretty_midi.Note(90, pitch, start * q, (start + length) * q))
    midi.instruments.extend([t for t in tracks if t.notes] + [drums])
    midi.write(str(path))
    return path


def notes_of(midi):
    return sorted((n.pitch, round(n.start, 3), round(n.end, 3)) for i in midi.instruments if not i.is_drum
                  for n in i.notes)


@pytest.mark.parametrize("layout", ["tsd", "remi"])
def test_octaves_dotted_notes_triplets_and_rests_survive_the_round_trip(layout, tmp_path):
    timed = get_encoding("timed", {"layout": layout})
    path = write_midi(tmp_path / "rhythm.mid", split_tracks=True)  # two pitched tracks merged, drums dropped
    tokens = timed.encode_file(path)
    assert timed.read_songs(path)[0]["qpm"] == 120.0
    expected = sorted((p, round(s * QUARTER, 3), round((s + d) * QUARTER, 3)) for p, s, d in NOTES)
    assert notes_of(timed.decode(tokens, qpm=120)) == expected
    slower = notes_of(timed.decode(tokens, qpm=60))
    assert slower == sorted((p, round(s * 2 * QUARTER, 3), round((s + d) * 2 * QUARTER, 3)) for p, s, d in NOTES)


def test_transposition_moves_pitches_only_and_stops_at_the_piano():
    timed = get_encoding("timed")
    assert timed.transpose("Pitch_60", 3) == "Pitch_63" and timed.transpose("Duration_1.0.12", 3) == "Duration_1.0.12"
    assert timed.transpose("Pitch_107", 2) is None and timed.transpose("Pitch_22", -2) is None
    known = ["Pitch_60", "Pitch_72", "Duration_1.0.12", "Duration_2.0.12", "TimeShift_0.6.12"]
    assert timed.nearest("Pitch_70", known) == "Pitch_72"
    assert timed.nearest("Duration_1.3.12", known) == "Duration_1.0.12"
    assert timed.nearest("Duration_1.9.12", known) == "Duration_2.0.12"
    assert timed.nearest("Bar_None", known) is None


def test_bad_parameters_are_one_clear_error(tmp_path):
    for params in ({"layout": "octuple"}, {"grid": {"4-0": 8}}, {"grid": {"0-4": 1000}}, {"tempo": 3}):
        with pytest.raises(PianoComposerError, match="encoding 'timed': bad parameters"):
            get_encoding("timed", params)


def test_a_timed_bundle_trains_reloads_and_generates_timed_music(midi_dir, tmp_path):
    data = extract(midi_dir, tmp_path / "data", encoding="timed", encoding_params={"layout": "tsd"}, progress=False)
    saved = json.loads((tmp_path / "data" / "tokens.json").read_text())
    assert saved["encoding"] == "timed" and saved["encoding_params"]["layout"] == "tsd"
    assert all(s["qpm"] == 120.0 for s in saved["songs"]) and data.songs[0].tokens[0].startswith("Pitch_")
    train(tmp_path / "data", tmp_path / "w", preset="quick", epochs=2, transpose=(-1, 1), progress=False, **TINY)
    bundle = read_bundle(tmp_path / "w")
    assert bundle.meta["qpm"] == 120.0 and bundle.encoding.params == data.encoding_params
    primer = write_midi(tmp_path / "primer.mid", NOTES[:4])
    result = generate(tmp_path / "w", tmp_path / "out", length=60, num_outputs=2, seed=0, primer=primer, wav=False,
                      progress=False)
    alone = generate(tmp_path / "w", tmp_path / "alone", length=60, num_outputs=2, seed=0, wav=False, progress=False)
    assert [p.tokens for p in result.pieces] != [p.tokens for p in alone.pieces]  # the primer leads the pieces
    for piece in result.pieces:
        assert {t.split("_")[0] for t in piece.tokens} <= {"Pitch", "Duration", "TimeShift"}
        midi = pretty_midi.PrettyMIDI(str(piece.midi))
        assert midi.get_tempo_changes()[1][0] == pytest.approx(120.0)
    slow = generate(tmp_path / "w", tmp_path / "slow", length=60, num_outputs=2, seed=0, primer=primer, qpm=60,
                    wav=False, progress=False)
    fast = pretty_midi.PrettyMIDI(str(result.pieces[0].midi))
    assert result.pieces[0].tokens and fast.instruments[0].notes  # a piece with notes, so its length can halve
    assert pretty_midi.PrettyMIDI(str(slow.pieces[0].midi)).get_end_time() == pytest.approx(
        2 * fast.get_end_time(), rel=1e-3)
    report = evaluate(tmp_path / "w", tmp_path / "data", generate=2, length=80, out=tmp_path, progress=False)
    assert report.copy_rate["span_tokens"] > 8  # spans of 8 onsets: several tokens each
    assert report.likelihood.full.tokens > 0 and report.histograms["duration"]["distance"] is not None
