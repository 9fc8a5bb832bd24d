"""What a musician asks for: a key, a metre, a length in bars or seconds."""

import json
import subprocess

import numpy as np
import pretty_midi
import pytest
from music21 import converter

from pianocomposer.composing.controls import Key, parse_key
from pianocomposer.config import shipped_bundle
from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.abc import tokenize
from pianocomposer.encodings.abc_metre import BarState
from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import read_bundle
from tests.conftest import run_cli


def _generate(weights, tmp_path, *args):
    proc = run_cli("generate", "--weights", weights, "--out", tmp_path, "--seed", "4", "--no-wav", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return [p for p in json.loads(proc.stdout)["pieces"]]


@pytest.mark.parametrize(("text", "key"), [("D major", Key(2, "", "D")), ("F# minor", Key(6, "m", "F#")),
                                           ("Bbm", Key(10, "m", "Bb")), ("A dorian", Key(9, "dor", "A")),
                                           ("Dmix", Key(2, "mix", "D")), ("e", Key(4, "", "E"))])
def test_keys_are_read_as_musicians_write_them(text, key):
    assert parse_key(text) == key
    assert parse_key(str(key)) == key


@pytest.mark.parametrize("text", ["H major", "D majestic", "", "C##"])
def test_a_key_that_is_not_one_is_refused(text):
    with pytest.raises(PianoComposerError, match="expected a tonic and a mode"):
        parse_key(text)


def test_pieces_come_out_in_the_key_asked_for_with_its_signature(bundle_dir, tmp_path):
    for piece in _generate(bundle_dir, tmp_path, "--key", "E minor", "--num-outputs", "3", "--length", "120"):
        found = converter.parse(piece["midi"]).analyze("key")
        assert (found.tonic.name, found.mode) == ("E", "minor"), piece
        assert [k.key_number for k in pretty_midi.PrettyMIDI(piece["midi"]).key_signature_changes] == [16]


def test_bars_end_a_piece_at_that_bar_line_and_seconds_at_a_beat(bundle_dir, tmp_path):
    (piece,) = _generate(bundle_dir, tmp_path / "bars", "--bars", "5")
    midi = pretty_midi.PrettyMIDI(piece["midi"])  # 120 quarters a minute in 4/4: a bar is 2 s
    last = max(n.end for t in midi.instruments for n in t.notes)
    assert 8.0 < last <= 10.0 + 1e-6  # the last note ends in the fifth bar, none sounds past it
    (piece,) = _generate(bundle_dir, tmp_path / "seconds", "--seconds", "13.2")
    last = max(n.end for t in pretty_midi.PrettyMIDI(piece["midi"]).instruments for n in t.notes)
    assert abs(last - 13.2) <= 0.5 and last * 2 == int(last * 2)  # within a beat, on a beat


def test_chorales_count_bars_after_their_pickup(voices_bundle, tmp_path):
    for piece in _generate(voices_bundle, tmp_path, "--bars", "3", "--num-outputs", "2"):
        midi = pretty_midi.PrettyMIDI(piece["midi"])
        metres = midi.time_signature_changes  # a bar's length wherever it changes (voices.decode)

        def length(ts: pretty_midi.TimeSignature) -> float:
            return ts.numerator / ts.denominator

        pickup = len(metres) > 1 and length(metres[0]) < length(metres[1])
        last = max(n.end for t in midi.instruments for n in t.notes)
        begun = [t for t in midi.get_downbeats() if t < last - 1e-6 and not (pickup and t == 0)]
        assert len(begun) == 3  # bars begun, counted after the pickup


def test_an_abc_tune_is_written_in_the_key_and_metre_asked_for(tmp_path):
    pieces = _generate("abc", tmp_path, "--key", "A dorian", "--metre", "3/4", "--num-outputs", "3")
    for piece in pieces:
        header = open(piece["abc"]).read().split("\n")
        assert "M:3/4" in header and "K:Ador" in header
        report = subprocess.run(["abc2midi", piece["abc"], "-o", str(tmp_path / "check.mid")], capture_output=True,
                                text=True).stdout
        assert "Error" not in report and "time units" not in report, report


def test_an_abc_tune_of_so_many_bars_ends_at_that_bar_line_with_no_repeat_open(tmp_path):
    for piece in _generate("abc", tmp_path, "--bars", "8", "--num-outputs", "3"):
        measures = list(converter.parse(piece["abc"], format="abc").recurse().getElementsByClass("Measure"))
        full = [m for m in measures if m.duration.quarterLength == m.barDuration.quarterLength]
        assert len(full) == 8 and len(measures) - len(full) <= 1  # and a pickup, if the tune has one
        report = subprocess.run(["abc2midi", piece["abc"], "-o", str(tmp_path / "check.mid")], capture_output=True,
                                text=True).stdout
        assert "Error" not in report and "time units" not in report, report


def test_bars_are_counted_after_a_pickup_and_a_tune_ends_only_where_no_repeat_is_open():
    from pianocomposer.encodings import get_encoding
    from pianocomposer.encodings.abc_metre import bar_ending

    encoding = get_encoding("abc")
    repeated = encoding.primer_from_text("X:1\nT:A\nM:4/4\nL:1/8\nK:D\n|:d2f2 a2f2|e2c2 A4|d2f2 a2f2|e2c2 d4:|\n")
    assert [bar_ending(repeated, n) is not None for n in range(1, 6)] == [False, False, False, True, False]
    pickup = encoding.primer_from_text("X:1\nT:A\nM:3/4\nL:1/8\nK:D\nA2|d2f2 a2|e2c2 A2|d2f2 a2|]\n")
    cut = bar_ending(pickup, 2)
    assert "".join(pickup[:cut]).endswith("A2|d2f2 a2|e2c2 A2|")
    # a section's short closing bar and the next pickup are one bar to abc2midi but two on the page: no cut after it
    sections = encoding.primer_from_text("X:1\nT:A\nM:3/4\nL:1/8\nK:G\nd2|GA BG A2|B4||A2|G2 E2 F2|G4|]\n")
    assert [bar_ending(sections, n) is not None for n in range(1, 4)] == [True, False, False]


def test_the_sampler_holds_an_abc_header_to_the_values_asked_for():
    state = BarState(wanted=(("K", "Ador"), ("M", "3/4"))).feed("X:1\nT:A\n")
    assert state.feed("K:") is None  # the metre comes first
    assert state.feed("M:6/8\n") is None and state.feed("M:3/4\n") is not None
    after_metre = state.feed("M:3/4\nL:1/8\n")
    assert after_metre.feed("K:D\n") is None and after_metre.feed("K:Adorian") is None
    assert after_metre.feed("K:Ador\n").mode == "body"
    # abc2midi plays a hornpipe only in 2/4 or 4/4: asked for 3/4, a tune is no hornpipe, and the sampler's mask
    # (cached per state) says so at the R: line's first letter
    assert state.feed("R:hornpipe") is None and state.feed("R:reel\n") is not None
    assert BarState(wanted=(("M", "2/4"),)).feed("X:1\nT:A\nR:hornpipe\nM:2/4\n") is not None
    constraint = get_encoding("abc").constraint(read_bundle(shipped_bundle("abc")).vocabulary.tokens, {"M": "3/4"})
    constraint.start([tokenize("X:1\nT:A\n", "char")[:-1], tokenize("X:1\nT:A\nR:", "char")[:-1]])
    mask = constraint.mask(np.arange(2))
    h = constraint.tokens.index("h")
    assert mask[0, h] and not mask[1, h]


@pytest.mark.parametrize(("args", "message"), [
    (["--weights", "abc", "--seconds", "8"], "--seconds is for MIDI encodings"),
    (["--metre", "6/8"], "--metre is for abc models"),
    (["--key", "D mixolydian"], "modes are for abc models"),
    (["--bars", "8", "--length", "100"], "choose one of --length"),
    (["--key", "Q minor"], "expected a tonic and a mode"),
    (["--weights", "abc", "--metre", "5/3"], "expected a metre"),
])
def test_controls_that_cannot_be_kept_are_a_one_line_error(args, message, bundle_dir, tmp_path):
    weights = [] if "--weights" in args else ["--weights", str(bundle_dir)]
    proc = run_cli("generate", *weights, *args, "--out", tmp_path, "--no-wav")
    assert proc.returncode == 1 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
        proc.stderr


def test_continue_writes_the_primer_and_its_continuation_at_its_tempo_and_key(bundle_dir, tmp_path):
    from pianocomposer.learning.bundle import read_bundle

    primer = pretty_midi.PrettyMIDI(initial_tempo=90)
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(80, p, i / 3, (i + 1) / 3) for i, p in enumerate([60, 64, 67, 72, 67, 64] * 3)]
    primer.instruments.append(piano)
    primer.key_signature_changes.append(pretty_midi.KeySignature(7, 0.0))  # G major
    primer.write(str(tmp_path / "primer.mid"))
    (piece,) = _generate(bundle_dir, tmp_path / "out", "--primer", tmp_path / "primer.mid", "--continue",
                         "--length", "40")
    whole, alone = pretty_midi.PrettyMIDI(piece["midi"]), pretty_midi.PrettyMIDI(piece["continuation"])
    encoding = read_bundle(bundle_dir).encoding
    rendered = encoding.decode(encoding.encode_file(tmp_path / "primer.mid"))  # the primer as the encoding plays it
    count = [sum(len(t.notes) for t in m.instruments) for m in (whole, alone, rendered)]
    assert count[0] == count[1] + count[2] and count[1] > 0
    primer_pitches = [n.pitch for n in sorted(rendered.instruments[0].notes, key=lambda n: (n.start, n.pitch))]
    assert [n.pitch for n in sorted(whole.instruments[0].notes, key=lambda n: (n.start, n.pitch))][
        :len(primer_pitches)] == primer_pitches
    for midi in (whole, alone):
        assert midi.get_tempo_changes()[1][0] == pytest.approx(90, rel=1e-4)
        assert [k.key_number for k in midi.key_signature_changes] == [7]
    proc = run_cli("generate", "--weights", bundle_dir, "--continue", "--out", tmp_path, "--no-wav")
    assert proc.returncode == 1 and "--continue needs --primer FILE" in proc.stderr


def test_json_reports_every_control_the_pieces_were_made_with(bundle_dir, tmp_path):
    proc = run_cli("generate", "--weights", bundle_dir, "--out", tmp_path, "--seed", "2", "--no-wav", "--json",
                   "--key", "A minor", "--bars", "2", "--temperature", "0.8", "--min-p", "0.05", "--sheet")
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(proc.stdout)["settings"]
    assert {k: settings[k] for k in ("key", "bars", "seconds", "temperature", "min_p", "seed", "sheet", "rules")} == {
        "key": "A minor", "bars": 2, "seconds": None, "temperature": 0.8, "min_p": 0.05, "seed": 2, "sheet": True,
        "rules": True}
    help_text = run_cli("generate", "--help").stdout
    for option in ("--key", "--metre", "--bars", "--seconds", "--continue", "--sheet", "--rules", "--length",
                   "--min-p"):
        assert option in help_text
