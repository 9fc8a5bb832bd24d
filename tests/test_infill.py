"""`infill`: bars of a piece rewritten by a timed model, every other note of the file kept as it was."""

import json

import pretty_midi
import pytest

from pianocomposer.composing.compose import Composer
from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.infill import bar_lines, infill, parse_bars
from tests.conftest import REPO, run_cli

PIECE = REPO / "midi_songs" / "bwv10.7.mid"


def notes(midi: pretty_midi.PrettyMIDI, inside: bool, low: float, high: float) -> list[tuple]:
    """Every note (track, pitch, start, end, velocity) beginning inside or outside [low, high) seconds."""
    return sorted((i, n.pitch, round(n.start, 6), round(n.end, 6), n.velocity)
                  for i, t in enumerate(midi.instruments) for n in t.notes if (low <= n.start < high) == inside)


@pytest.fixture(scope="module")
def timed():
    return Composer("timed")


@pytest.fixture(scope="module")
def rewritten(timed, tmp_path_factory):
    out = tmp_path_factory.mktemp("infill")
    (done,) = infill([PIECE], (5, 8), timed, out, candidates=4, seed=1, wav=False)
    return done, pretty_midi.PrettyMIDI(str(done.midi))


def test_every_note_outside_the_bars_stays_as_it_was_in_the_file(rewritten):
    done, out = rewritten
    source = pretty_midi.PrettyMIDI(str(PIECE))
    low, high = done.seconds
    assert notes(out, False, low, high) == notes(source, False, low, high)
    assert done.kept == len(notes(source, False, low, high)) and done.replaced == len(notes(source, True, low, high))
    assert out.time_signature_changes == source.time_signature_changes or [
        (t.numerator, t.denominator, t.time) for t in out.time_signature_changes] == [
        (t.numerator, t.denominator, t.time) for t in source.time_signature_changes]
    assert [round(x, 6) for x in out.get_tempo_changes()[1]] == [round(x, 6) for x in source.get_tempo_changes()[1]]


def test_the_new_notes_fill_the_bars_and_end_by_the_next(rewritten):
    done, out = rewritten
    low, high = done.seconds
    new = [n for t in out.instruments for n in t.notes if low <= n.start < high]
    assert len(new) == done.written > 0
    assert all(n.end <= high + 1e-6 for n in new)
    assert done.midi.name == "bwv10.7-infilled.mid"
    source = pretty_midi.PrettyMIDI(str(PIECE))
    lines = bar_lines(source)
    assert done.seconds == pytest.approx((source.tick_to_time(round(lines[4] * source.resolution)),
                                          source.tick_to_time(round(lines[8] * source.resolution))))
    assert lines[1] - lines[0] == lines[2] - lines[1]  # no pickup: bar 5 begins at the fifth bar line
    assert notes(out, True, low, high) != notes(source, True, low, high)  # rewritten, not copied


def test_candidates_are_scored_by_what_follows_the_chosen_first(rewritten):
    done, _ = rewritten
    after = [c["nats_after"] for c in done.candidates]
    assert len(after) == 4 and after == sorted(after)


def test_bars_are_checked(timed):
    assert parse_bars("5-8") == (5, 8) and parse_bars("3") == (3, 3)
    for spec in ("8-5", "0-2", "five"):
        with pytest.raises(PianoComposerError, match="--bars"):
            parse_bars(spec)
    with pytest.raises(PianoComposerError, match=r"bars 90-99 are outside the piece \(it has \d+ bars\)"):
        infill([PIECE], (90, 99), timed, wav=False)


def test_the_command_line_writes_json_and_refuses_bad_input_in_one_line(tmp_path):
    ok = run_cli("infill", PIECE, "--bars", "2-3", "--candidates", "2", "--no-wav", "--out", tmp_path, "--json")
    assert ok.returncode == 0, ok.stderr
    (done,) = json.loads(ok.stdout)["infilled"]
    assert done["bars"] == [2, 3] and len(done["candidates"]) == 2 and (tmp_path / "bwv10.7-infilled.mid").is_file()
    for args, reason in [(("--bars", "99"), "outside the piece"), (("--bars", "3-2"), "an empty range"),
                         (("--bars", "2", "--weights", "default"), "cannot cut a piece at its bars"),
                         (("--bars", "2", "--keep-melody"), "--keep-melody needs a four-voice")]:
        bad = run_cli("infill", PIECE, *args, "--no-wav", "--out", tmp_path)
        assert bad.returncode == 1 and reason in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_new_notes_are_cut_at_the_bars_end_through_the_pieces_tempo_map():
    from pianocomposer.frontends.infill import _splice

    source = pretty_midi.PrettyMIDI(initial_tempo=120)  # a quarter is 0.5 s, then 1 s from the 8th quarter on
    source._tick_scales.append((source.time_to_tick(4.0), 60.0 / (60.0 * source.resolution)))
    source._update_tick_to_time(source.time_to_tick(20.0))
    track = pretty_midi.Instrument(0)
    track.notes = [pretty_midi.Note(30 + i, 60 + i, source.tick_to_time(i * source.resolution),
                                    source.tick_to_time((i + 1) * source.resolution)) for i in range(12)]
    source.instruments.append(track)
    new = pretty_midi.PrettyMIDI(initial_tempo=60)  # quarters as seconds, from the span's start
    new.instruments.append(pretty_midi.Instrument(0))
    new.instruments[0].notes = [pretty_midi.Note(90, 50, 0.0, 1.0), pretty_midi.Note(90, 52, 3.0, 9.0),
                                pretty_midi.Note(90, 54, 4.0, 5.0)]  # the last begins where the span ends
    out, kept, replaced = _splice(source, new, 6.0, 10.0)
    assert (kept, replaced) == (8, 4)
    got = sorted((n.pitch, round(n.start, 6), round(n.end, 6), n.velocity) for n in out.instruments[0].notes)
    spans = {q: source.tick_to_time(round(q * source.resolution)) for q in (6, 7, 9, 10)}
    assert (50, round(spans[6], 6), round(spans[7], 6), 37) in got  # the median velocity of the notes replaced
    assert (52, round(spans[9], 6), round(spans[10], 6), 37) in got  # cut at the span's end
    assert not any(p == 54 for p, *_ in got)


CHORALE = REPO / "chorales" / "heldout" / "bwv113.8.mid"


@pytest.mark.parametrize("keep_melody", [False, True])
def test_a_chorale_model_rewrites_every_voice_or_only_those_under_the_melody(keep_melody, tmp_path):
    (done,) = infill([CHORALE], (3, 4), Composer("chorale"), tmp_path, candidates=2, keep_melody=keep_melody,
                     wav=False)
    source, out = pretty_midi.PrettyMIDI(str(CHORALE)), pretty_midi.PrettyMIDI(str(done.midi))
    low, high = done.seconds
    lines = bar_lines(source)  # a one-beat pickup is bar 0, so bar 1 begins on the second beat, as musicians count
    assert lines[0] == 1.0 and lines[1] == 5.0
    assert (low, high) == pytest.approx(tuple(source.tick_to_time(round(q * source.resolution))
                                              for q in (lines[2], lines[4])))
    assert notes(out, False, low, high) == notes(source, False, low, high)
    assert [t.name for t in out.instruments] == [t.name for t in source.instruments]
    soprano = [i for i, t in enumerate(source.instruments) if t.name == "Soprano"]
    inside = {i for i, *_ in notes(out, True, low, high)}
    kept_soprano = [n for n in notes(out, True, low, high) if n[0] in soprano]
    if keep_melody:  # the melody's notes in the bars are the file's own, every voice has notes there
        assert kept_soprano == [n for n in notes(source, True, low, high) if n[0] in soprano]
        assert done.kept == len(notes(source, False, low, high)) + len(kept_soprano)
    else:
        assert kept_soprano != [n for n in notes(source, True, low, high) if n[0] in soprano]
    assert len(inside) == 4
