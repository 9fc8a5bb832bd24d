"""Scores a musician reads: a grand staff in the piece's key, SATB on two staves, an abc tune from its own text."""

import json

import pretty_midi
import pytest
from music21 import bar, converter, instrument, meter, stream
from music21 import key as keys

from pianocomposer.writing.score import abc_score, piano_score, satb_score, write_sheet
from tests.conftest import REPO, run_cli


def _piece(pitches_and_beats: list[tuple[int, float, float]], key_number: int | None = None) -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(80, p, start / 2, end / 2) for p, start, end in pitches_and_beats]
    midi.instruments.append(piano)
    if key_number is not None:
        midi.key_signature_changes.append(pretty_midi.KeySignature(key_number, 0))
    return midi


def _read(score, tmp_path, name="score"):
    write_sheet(score, tmp_path / f"{name}.musicxml", tmp_path / f"{name}.svg")
    assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    return converter.parse(str(tmp_path / f"{name}.musicxml"))


def test_a_piano_piece_is_a_grand_staff_in_its_key_split_at_middle_c(tmp_path):
    # F major: a left-hand bass line under a right-hand melody with B flats (MIDI 70 and 58), no key signature given
    melody = [(65, 0, 1), (67, 1, 2), (69, 2, 3), (70, 3, 4), (72, 4, 6), (70, 6, 7), (69, 7, 8), (65, 8, 12)]
    bass = [(41, 0, 4), (46, 4, 8), (48, 8, 10), (41, 10, 12), (58, 2, 3)]
    score = _read(piano_score(_piece(melody + bass), "A title", "pianocomposer, model test"), tmp_path)
    assert score.metadata.bestTitle == "A title" and score.metadata.composer == "pianocomposer, model test"
    treble, low = score.parts
    assert isinstance(treble, stream.PartStaff) and isinstance(low, stream.PartStaff)
    assert {k.sharps for k in score.recurse().getElementsByClass(keys.KeySignature)} == {-1}
    high_pitches = [p.midi for n in treble.recurse().notes for p in n.pitches]
    low_pitches = [p.midi for n in low.recurse().notes for p in n.pitches]
    assert min(high_pitches) >= 60 and max(low_pitches) < 60
    assert sorted(set(high_pitches)) == [65, 67, 69, 70, 72] and sorted(set(low_pitches)) == [41, 46, 48, 58]
    assert {p.name for n in score.recurse().notes for p in n.pitches if p.pitchClass == 10} == {"B-"}  # not A#
    assert len(list(score.recurse().getElementsByClass(instrument.Instrument))) <= 2  # one per staff, no changes
    assert "<part id" in (xml := (tmp_path / "score.musicxml").read_text()) and xml.count("<part id") == 1
    assert "<staves>2</staves>" in xml


@pytest.mark.parametrize(("key_number", "sharps", "names"), [
    (8, -4, {1: "D-", 8: "A-", 3: "E-", 10: "B-"}),  # A flat major: D flat and A flat, not C sharp and G sharp
    (4, 4, {1: "C#", 8: "G#", 3: "D#", 6: "F#"}),  # E major: D sharp, not E flat
])
def test_pitches_are_spelled_for_the_key_signature(key_number, sharps, names, tmp_path):
    notes = [(60 + pc, 2 * i, 2 * i + 2) for i, pc in enumerate(names)] + [(44, 0, 8)]
    score = _read(piano_score(_piece(notes, key_number=key_number), "spelled", "src"), tmp_path)
    assert {k.sharps for k in score.recurse().getElementsByClass(keys.KeySignature)} == {sharps}
    assert {p.pitchClass: p.name for n in score.recurse().notes for p in n.pitches if p.midi >= 60} == names


def test_four_voices_are_soprano_and_alto_over_tenor_and_bass(tmp_path):
    chorale = pretty_midi.PrettyMIDI(str(REPO / "chorales" / "heldout" / "bwv113.8.mid"))
    score = _read(satb_score(chorale, "bwv113.8", "Bach"), tmp_path)
    assert len(score.parts) == 2
    assert {k.sharps for k in score.recurse().getElementsByClass(keys.KeySignature)} == {2}  # B minor
    for part, tracks in zip(score.parts, (chorale.instruments[:2], chorale.instruments[2:]), strict=True):
        written = sorted(p.midi for n in part.stripTies().recurse().notes for p in n.pitches)
        assert written == sorted(n.pitch for t in tracks for n in t.notes)


def test_an_abc_tune_keeps_its_title_key_metre_and_repeats(tmp_path):
    text = "X:1\nT:The Repeat Reel\nM:6/8\nL:1/8\nK:Dmix\n|:DED c2A|GAB c2d:|\n|:ded cAG|FGA G3:|\n"
    score = _read(abc_score(text, "pianocomposer, model abc"), tmp_path)
    assert score.metadata.bestTitle == "The Repeat Reel" and score.metadata.composer == "pianocomposer, model abc"
    assert {m.ratioString for m in score.recurse().getElementsByClass(meter.TimeSignature)} == {"6/8"}
    assert {k.sharps for k in score.recurse().getElementsByClass(keys.KeySignature)} == {1}  # D mixolydian
    repeats = [b.direction for b in score.recurse().getElementsByClass(bar.Repeat)]
    assert repeats.count("start") == 2 and repeats.count("end") == 2


@pytest.mark.parametrize("fixture", ["bundle_dir", "voices_bundle"])
def test_generate_sheet_writes_a_titled_score_and_its_page(fixture, request, tmp_path):
    weights = request.getfixturevalue(fixture)
    proc = run_cli("generate", "--weights", weights, "--out", tmp_path, "--length", "200", "--seed", "5",
                   "--no-wav", "--sheet", "--json")
    assert proc.returncode == 0, proc.stderr
    (piece,) = json.loads(proc.stdout)["pieces"]
    score = converter.parse(piece["musicxml"])
    assert len(score.parts) == 2 and score.metadata.bestTitle.endswith("seed 5, piece 1")
    assert score.metadata.composer == f"pianocomposer, model {weights.name}"
    assert "<svg" in open(piece["svg"]).read()

