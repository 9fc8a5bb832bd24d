"""Tokens <-> MIDI for the cpc encoding."""

from fractions import Fraction

import pretty_midi
import pytest

from pianocomposer.config import shipped_bundle
from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.cpc import quantize_onset, token_pitches
from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import read_meta
from tests.conftest import PHRASES, REPO, write_song

CPC = get_encoding("cpc")


def test_round_trip_tokens_midi_tokens(tmp_path):
    tokens = [t for p in PHRASES for t in p] + ["C#5", "11.2.6", "F#3", "F#3", "0.4"]
    path = write_song(tmp_path / "round.mid", tokens)
    assert CPC.encode_file(path) == tokens


def test_decode_uses_the_original_timing_and_voices_chords_from_middle_c():
    midi = CPC.decode(["C4", "4.7.11"], program=40)
    notes = sorted(midi.instruments[0].notes, key=lambda n: (n.start, n.pitch))
    assert [n.pitch for n in notes] == [60, 64, 67, 71]
    assert notes[1].start == pytest.approx(0.25)  # half a quarter at 120 qpm
    assert notes[0].end - notes[0].start == pytest.approx(0.5)  # a quarter note
    assert midi.instruments[0].program == 40
    assert token_pitches("11.2.6") == [71, 74, 78]


def test_all_pitched_parts_are_merged_and_drums_skipped(tmp_path):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano, strings = pretty_midi.Instrument(0), pretty_midi.Instrument(48)
    drums = pretty_midi.Instrument(0, is_drum=True)
    piano.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.5))
    strings.notes.append(pretty_midi.Note(velocity=80, pitch=64, start=0.0, end=0.5))  # same onset -> chord
    strings.notes.append(pretty_midi.Note(velocity=80, pitch=67, start=0.5, end=1.0))
    drums.notes.extend(pretty_midi.Note(velocity=100, pitch=36, start=t, end=t + 0.1) for t in (0.0, 0.25, 0.75))
    midi.instruments += [piano, strings, drums]
    midi.write(str(tmp_path / "band.mid"))
    assert CPC.encode_file(tmp_path / "band.mid") == ["0.4", "G4"]


def test_transpose_and_nearest():
    assert CPC.transpose("E-4", 1) == "E4"
    assert CPC.transpose("4.7.11", 1) == "5.8.0"  # F major in normal order
    assert CPC.transpose("G9", 12) is None  # beyond MIDI 127
    assert CPC.nearest("C#9", ["C4", "B5", "0.4.7"]) == "B5"
    assert CPC.nearest("0.4.8", ["C4", "0.4.7", "2.5.9"]) == "0.4.7"
    assert CPC.nearest("1.6", ["C4", "0.4.7"]) is None


def test_unknown_encoding_is_a_clear_error():
    with pytest.raises(PianoComposerError, match=r"unknown encoding 'remi' \(known: abc, cpc, timed, voices\)"):
        get_encoding("remi")


def test_decode_then_encode_is_the_identity_over_the_shipped_vocabulary(tmp_path):
    vocabulary = read_meta(shipped_bundle())["vocabulary"]
    assert len(vocabulary) > 600 and any(t.isdigit() for t in vocabulary)  # single-pitch-class chords among them
    path = write_song(tmp_path / "vocabulary.mid", vocabulary)
    assert CPC.encode_file(path) == vocabulary


def test_onsets_snap_to_sixteenths_or_triplets_as_music21_does():
    assert quantize_onset(0.49) == Fraction(1, 2) and quantize_onset(0.34) == Fraction(1, 3)
    assert quantize_onset(0.73) == Fraction(3, 4) and quantize_onset(0.70) == Fraction(2, 3)
    assert quantize_onset(2.0) == 2
    # music21.common.nearestMultiple rounds halfway down: 0.375 -> 1/3 (nearer), 0.625 -> 2/3, 0.125 -> 0
    assert [quantize_onset(x) for x in (0.125, 0.375, 0.625, 1.125)] == [0, Fraction(1, 3), Fraction(2, 3), 1]


def test_the_symusic_reader_agrees_with_music21(tmp_path):
    fast = get_encoding("cpc", {"reader": "symusic"})
    assert fast.params == {"reader": "symusic"} and CPC.params == {}
    midi = pretty_midi.PrettyMIDI(initial_tempo=90)
    piano, strings, drums = pretty_midi.Instrument(0), pretty_midi.Instrument(48), pretty_midi.Instrument(0, True)
    q = 60 / 90
    for start, pitch in [(0, 60), (0, 64), (1 / 3, 67), (2 / 3, 72), (1.02, 50), (2.5, 61), (2.74, 63)]:
        piano.notes.append(pretty_midi.Note(80, pitch, start * q, (start + 0.3) * q))
    strings.notes.append(pretty_midi.Note(80, 43, 0.99 * q, 2 * q))  # joins the chord at beat 1
    drums.notes.append(pretty_midi.Note(80, 36, 0.5 * q, 0.6 * q))
    midi.instruments.extend([piano, strings, drums])
    midi.write(str(tmp_path / "mixed.mid"))
    tokens = fast.encode_file(tmp_path / "mixed.mid")
    assert tokens == CPC.encode_file(tmp_path / "mixed.mid")
    # C#4 and E-4 start (and end) 0.24 quarter apart, within a sixteenth: music21 makes them one chord, so do we
    assert tokens == ["0.4", "G4", "C5", "2.7", "1.3"]
    for song in sorted((REPO / "midi_songs").glob("*.mid"))[:20]:
        assert fast.encode_file(song) == CPC.encode_file(song), song.name
