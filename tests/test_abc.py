"""abc notation: books split into tunes, normalised text, tokens, extraction, training and generating tunes."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pianocomposer.composing.compose import Sampler, continue_sequences
from pianocomposer.config import shipped_bundle
from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.abc import END, detokenize, tokenize
from pianocomposer.encodings.abc_metre import BarState, MetreConstraint
from pianocomposer.errors import PianoComposerError
from pianocomposer.frontends.generate import generate
from pianocomposer.learning.bundle import read_bundle
from pianocomposer.reading.abc_notation import AbcError, abc2midi_problems, normalise, parse_tune, split_tunes
from pianocomposer.reading.extract import extract
from tests.conftest import REPO, run_cli

BOOK = REPO / "abc_tunes" / "train" / "oneills1850" / "0001-0050.abc"  # 50 tunes of the shipped corpus
ABC_BUNDLE = shipped_bundle("abc")

BAD_BOOK = """% a book with a file header: its L: applies to every tune
L:1/8

X:1
T:Good Jig
M:6/8
K:D
!trill!dfa afd|"G"g2e "A"fed :|  % a comment
N:a note the model should not learn

X:2
T:No Key
M:4/4
abcd|

X:3
T:Broken Chord
M:4/4
K:G
[A2B2 c|

X:4
T:Zero Length
M:4/4
K:G
A1/0 B|
"""


def test_the_independent_check_reads_what_abc2midi_says_not_its_exit_code(tmp_path):
    header = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n"
    (tmp_path / "junk.abc").write_text(header + "[A2B2 c|\n")
    proc = subprocess.run(["abc2midi", "junk.abc", "-o", "junk.mid"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and (tmp_path / "junk.mid").stat().st_size > 0  # the exit code says nothing
    assert abc2midi_problems(header + "[A2B2 c|\n") == ["Error in line-char 7-7 : Sustained notes beyond end of track"]
    assert abc2midi_problems(header + "ABcd efga|abag fedc|\n") == []
    short = abc2midi_problems(header + "ABcd efga|abag fed|\n")  # bar 1 (counted from 0) is an eighth short
    assert len(short) == 1 and "Bar 1 has 7/2 time units while the time signature has 4" in short[0]


def test_a_book_splits_into_tunes_with_the_file_header_given_to_each():
    tunes = split_tunes(BAD_BOOK)
    assert [t.title for t in tunes] == ["Good Jig", "No Key", "Broken Chord", "Zero Length"]
    assert tunes[1].label == "tune 2 (X:2 No Key)"
    text = normalise(tunes[0].text)
    assert text == 'X:1\nT:Good Jig\nM:6/8\nL:1/8\nK:D\ndfa afd|"G"g2e "A"fed :|\n'  # header L:, no noise
    assert len(split_tunes(BOOK.read_text())) == 50


def test_normalising_keeps_what_the_model_should_learn_and_names_what_is_missing():
    tune = "X:7\nT:A\nT:Second title\nZ:someone\nQ:1/4=120\nM:2/4\nR:polka\nK:Am\n%%directive\nAB cd|\\\nef  g2|\n\nX:8"
    assert normalise(tune) == "X:1\nT:A\nR:polka\nM:2/4\nL:1/16\nK:Am\nAB cd|\nef g2|\n"  # L: by the standard
    with pytest.raises(AbcError, match="no key"):
        normalise("X:1\nM:4/4\nabc|\n")
    with pytest.raises(AbcError, match="no metre"):
        normalise("X:1\nK:G\nabc|\n")


@pytest.mark.parametrize("unit", ["token", "char"])
def test_tokens_join_back_to_the_text_of_every_tune(unit):
    for tune in split_tunes(BOOK.read_text()):
        text = normalise(tune.text)
        tokens = tokenize(text, unit)
        assert tokens[-1] == END and detokenize(tokens) == text
    tokens = tokenize("X:1\nM:6/8\nL:1/8\nK:Dmix\n^c'2=B,/ \"Am\"[ce]|:(3abc :|2\n", "token")
    assert tokens[:8] == ["X:1", "\n", "M:6/8", "\n", "L:1/8", "\n", "K:Dmix", "\n"]
    assert tokens[8:20] == ["^c'", "2", "=B,", "/", " ", '"Am"', "[", "c", "e", "]", "|:", "(3"]


def test_the_corpus_book_is_checked_by_music21_and_abc2midi():
    tunes = [normalise(t.text) for t in split_tunes(BOOK.read_text())]
    for text in tunes:
        parse_tune(text)  # music21 reads every tune of the book
    clean = [t for t in tunes if not abc2midi_problems(t)]
    assert len(clean) == 16  # abc2midi finds bars of the wrong length in the others: extract drops them
    for bad in ("[A2B2 c|", "A1/0 B|", "z4|"):
        with pytest.raises(AbcError):
            parse_tune(f"X:1\nM:4/4\nL:1/8\nK:G\n{bad}\n")


def test_extract_keeps_good_tunes_skips_bad_ones_by_name_and_caches_books(tmp_path):
    corpus = tmp_path / "abc"
    corpus.mkdir()
    shutil.copy(BOOK, corpus / "oneill.abc")
    (corpus / "mixed.abc").write_text(BAD_BOOK)
    (corpus / "empty.abc").write_text("% no tunes here\n")
    data = extract(corpus, tmp_path / "data", encoding="abc", progress=False)
    assert len(data.songs) == 1 + 16 and data.songs[0].source == "mixed.abc tune 1 (X:1 Good Jig)"
    reasons = {s.source: s.reason for s in data.skipped}
    assert reasons["mixed.abc tune 2 (X:2 No Key)"] == "no key (K:)"
    assert reasons["mixed.abc tune 3 (X:3 Broken Chord)"].startswith("music21 cannot read it")
    assert "ZeroDivisionError" in reasons["mixed.abc tune 4 (X:4 Zero Length)"]
    assert reasons["empty.abc"] == "no tune in this abc file (no X: line)"
    assert reasons["oneill.abc tune 1 (X:1 The Enchanted Valley)"] == (
        "abc2midi: Track 0 Bar 15 has 9/4 time units while the time signature has 2")
    # the cache keeps a book's tunes together, under the book's new name when it moves
    (corpus / "oneill.abc").rename(corpus / "renamed.abc")
    again = extract(corpus, tmp_path / "data", encoding="abc", progress=False)
    assert again.reused == 3 and len(again.songs) == 17
    assert again.songs[1].source == "renamed.abc tune 2 (X:2 Fare You Well)"
    assert again.songs[1].tokens == data.songs[1].tokens
    # the note encodings read the same book's tunes as music21 plays them
    notes = extract(corpus, tmp_path / "cpc", encoding="cpc", encoding_params={"reader": "symusic"}, progress=False)
    assert len(notes.songs) == 51 and notes.songs[0].tokens[:3] == ["D5", "F#5", "A5"]


def test_abc_text_cannot_be_transposed(tmp_path):
    shutil.copy(BOOK, tmp_path / "book.abc")
    extract(tmp_path, tmp_path / "data", encoding="abc", progress=False)
    proc = run_cli("train", "--data", str(tmp_path / "data"), "--weights", str(tmp_path / "w"), "--preset", "quick",
                   "--epochs", "1", "--transpose=-1..1")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: the abc encoding's text cannot be transposed; train without --transpose"]


def test_generation_stops_when_every_row_has_ended():
    bundle = read_bundle(ABC_BUNDLE)
    net = bundle.step_model()
    end = bundle.vocabulary.index[END]
    primer = bundle.vocabulary.encode(bundle.encoding.primer_from_text("X:1\n"))
    out = continue_sequences(net, [primer] * 3, 3000, Sampler(), np.random.default_rng(0), stop_id=end)
    assert out.shape[1] < 3000 and all(end in row for row in out.tolist())


def test_the_shipped_abc_model_writes_tunes_that_music21_and_abc2midi_play(tmp_path):
    result = generate(ABC_BUNDLE, tmp_path, num_outputs=8, seed=1, sampler=Sampler(top_k=10, top_p=0.95), wav=False,
                      progress=False)
    valid = [p for p in result.pieces if p.error is None]
    assert len(valid) >= 6, [p.error for p in result.pieces]
    for piece in result.pieces:
        text = piece.text.read_text()
        assert text.startswith(f"X:{result.pieces.index(piece) + 1}\n") and "\nM:" in text and "\nK:" in text
    for piece in valid:
        assert piece.midi.stat().st_size > 0 and abc2midi_problems(piece.text.read_text()) == []
    # a primer text starts every tune: here, a metre and a key
    primed = generate(ABC_BUNDLE, tmp_path / "primed", num_outputs=2, seed=2,
                      primer_text="X:1\\nM:6/8\\nL:1/8\\nK:D\\n", wav=False, progress=False)
    assert all(p.text.read_text().split("\n")[1:4] == ["M:6/8", "L:1/8", "K:D"] for p in primed.pieces)


def test_generate_cli_reports_each_tune_as_json(tmp_path):
    proc = run_cli("generate", "--weights", "abc", "--num-outputs", "3", "--seed", "3", "--no-wav", "--out",
                   str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] == sum(p["valid"] for p in report["pieces"]) and len(report["pieces"]) == 3
    for piece in report["pieces"]:
        assert Path(piece["abc"]).is_file() and (piece["midi"] is not None) == piece["valid"]
        assert piece["valid"] == (piece["error"] is None)


def test_a_primer_text_needs_a_text_model(bundle_dir, tmp_path):
    with pytest.raises(PianoComposerError, match="--primer-text is for text encodings"):
        generate(bundle_dir, tmp_path, primer_text="X:1\n", wav=False, progress=False)


def _written(text: str):
    """The tracker's state after text, or None where it breaks a bar."""
    return BarState().feed(text)


def test_the_bar_tracker_follows_lengths_and_refuses_a_bar_that_is_not_full():
    head = "X:1\nM:6/8\nL:1/8\nK:D\n"
    assert _written(head + "dfa afd|B2c d>ef|(3gfe d3 z|[DF]3 {g}a3|Z|\n").can_end()
    assert _written(head + "dfa afd|dfa af|") is None  # a bar one eighth short (not the first: a pickup)
    assert _written(head + "dfa afdd") is None  # a seventh eighth does not fit
    assert _written(head + "dfa af3 ") is None  # a note whose written length overfills the bar
    assert _written(head + "d2>f a3|") is None  # a broken rhythm of unequal notes (abc2midi's error)
    assert _written(head + "d2-e4|") is None  # a tie to another note
    assert not _written(head + "|:dfa afd|").can_end()  # a repeat left open
    assert _written("X:1\nM:4/4\nL:1/16\nK:G\n" + "A8 [M:3/4] B8|") is None  # a metre change inside a bar
    assert _written("X:1\nM:C|\nL:1/8\nK:G\n" + "A8|[M:3/4]B6|\nL:1/4\nB3|").can_end()


def test_the_metre_mask_lets_only_full_bars_be_written():
    vocabulary = [*"X:1\nMLK/68Dabcdefg|23 ", END]

    def allowed_after(written: str) -> set[str]:
        constraint = MetreConstraint(vocabulary, END)
        constraint.start([tokenize("X:1\nM:6/8\nL:1/8\nK:D\n" + written, "char")[:-1]])
        return {t for t, ok in zip(vocabulary, constraint.mask(np.array([0]))[0], strict=True) if ok}

    bar = "dfa afd|"  # a first bar may be a pickup: these are the second
    assert {"f", "2", "3", " "} <= allowed_after(bar + "abc de") and not {"|", END} & allowed_after(bar + "abc de")
    assert "/" in allowed_after(bar + "abc de3") and " " not in allowed_after(bar + "abc de3")  # e3/2 fits, e3 not
    assert allowed_after(bar + "abc def ") & {"|", "a", "2"} == {"|"}  # the bar is full: a bar line, no more notes


def test_the_metre_mask_works_on_folk_rnn_tokens_too():
    tune = tokenize("X:1\nM:2/4\nL:1/8\nK:G\nAB cd|e2 d2|\n", "token")
    constraint = MetreConstraint(sorted(set(tune) | {"3", "|:"}), END)
    constraint.start([tune[:13]])  # ... "A" "B" " " "c" "d": the bar is full
    allowed = {t for t, ok in zip(constraint.tokens, constraint.mask(np.array([0]))[0], strict=True) if ok}
    assert tune[12] == "d" and {"|", "|:"} <= allowed and not {"e", "A"} & allowed  # a bar line, no more notes


def test_after_a_tie_the_mask_allows_only_the_tied_note():
    vocabulary = [*"X:1\nMLK/68Dabcdefg|23 ", END]
    constraint = MetreConstraint(vocabulary, END)
    constraint.start([tokenize("X:1\nM:6/8\nL:1/8\nK:D\nabc d3-| ", "char")[:-1]])
    allowed = {t for t, ok in zip(vocabulary, constraint.mask(np.array([0]))[0], strict=True) if ok}
    assert allowed & set("abcdefgD") == {"d"}


def test_an_octave_mark_is_allowed_only_against_its_letters_case_even_from_the_mask_cache():
    vocabulary = [*"X:1\nMLK/68Dabcdefg|23 ,'", END]
    constraint = MetreConstraint(vocabulary, END)
    head = "X:1\nM:6/8\nL:1/8\nK:D\n"
    constraint.start([tokenize(head + text, "char")[:-1] for text in ("abc D", "abc d")])
    masks = [{t for t, ok in zip(vocabulary, row, strict=True) if ok} for row in constraint.mask(np.array([0, 1]))]
    assert "," in masks[0] and "'" not in masks[0]  # D, is an octave lower; D' is abc2midi's error
    assert "'" in masks[1] and "," not in masks[1]  # d' is an octave higher; d, is abc2midi's error


def test_a_broken_rhythm_needs_room_for_its_second_note_and_grace_notes_hold_notes_only():
    head = "X:1\nM:6/8\nL:1/8\nK:D\n"
    assert _written(head + "dfa f2>") is None  # one eighth left: no room for the second note of `f2>`
    assert _written(head + "dfa a>fd|") is not None
    assert _written(head + "dfa {a>f}") is None and _written(head + "dfa {a{") is None  # abc2midi's errors
    assert _written(head + "dfa {^a'/}afd|") is not None
    assert _written(head + "dfa {a}({b}d") is None  # abc2midi: Intervening note needed between grace notes
    assert abc2midi_problems(head + "dfa {a}({b}(3def) d|\n") and not abc2midi_problems(head + "dfa {a}(3def) d|\n")
    assert _written(head + "dfa {a}(3def) {b}d|") is not None


def test_a_tune_that_did_not_end_in_time_is_cut_back_to_its_last_full_bar():
    encoding = get_encoding("abc")
    tokens = tokenize("X:1\nM:6/8\nL:1/8\nK:D\ndfa afd|:B2c d>ef:|dfa af", "char")[:-1]  # no END: cut short
    assert detokenize(encoding.finish([], tokens)) == "X:1\nM:6/8\nL:1/8\nK:D\ndfa afd|:B2c d>ef:|"
    opened = tokenize("X:1\nM:6/8\nL:1/8\nK:D\ndfa afd|:B2c d>ef|dfa", "char")[:-1]  # the repeat never closes
    assert detokenize(encoding.finish([], opened)) == "X:1\nM:6/8\nL:1/8\nK:D\ndfa afd|"


def test_endings_come_in_order_and_a_tied_note_keeps_its_octave():
    head = "X:1\nM:2/4\nL:1/8\nK:D\n"
    assert _written(head + "|:dfaf|1 d4:|2 d2z2|]").can_end()
    assert _written(head + "|:dfaf|1 d4:|[2 d2z2||").can_end()
    assert _written(head + "|:dfaf:|2 d4|]") is None  # a second ending with no first (abc2midi's error)
    assert _written(head + "|:dfaf:|1 d4|]") is None  # a first ending after the repeat has closed
    assert _written(head + "|:dfaf|1 d4||\n") is None  # a first ending not closed by :|
    second = "dfaf|1 d4:|2 d2z2|]"  # a second section with endings after a first that closed its repeat
    assert _written(head + "dfaf:|" + second) is None  # abc2midi: found [1 or like before |:
    assert abc2midi_problems(head + "dfaf:|" + second + "\n") and not abc2midi_problems(head + "dfaf:|\n|:" + second)
    assert _written(head + "dfaf:|\n|:" + second).can_end() and _written(head + "dfaf|]" + second).can_end()
    assert not _written(head + "|:dfaf|1 d4|").can_end()
    assert _written(head + "dfa F-|F,4|") is None and _written(head + "dfa F,-|F,4|").can_end()


def test_key_metre_and_unit_fields_take_only_values_abc2midi_knows():
    head = "X:1\nM:2/4\nL:1/8\nK:D\n"
    assert _written(head + "dfaf|\nK:Ador\nABcd|[L:1/16]A8|").can_end()
    assert _written(head + "dfaf|\nK:G/") is None  # abc2midi: Unknown mode '/2A2|]'
    assert _written(head + "dfaf|[M:3/") is not None and _written(head + "dfaf|[M:3/x") is None
    assert _written("X:1\nM:2/4\nL:1/8\nK:Q\n") is None and _written("X:1\nT:Kitty's Reel\nM:6/8\nL:1/8\nK:Gm\n")


def test_a_pickup_is_completed_by_the_bar_that_closes_its_section():
    head = "X:1\nM:6/8\nL:1/8\nK:D\n"
    assert _written(head + "A|dfa afd|B2c d2:|").can_end()  # 1 + 5: the repeat plays full bars
    assert _written(head + "A|dfa afd|B2c d2:|e|dfa afd|B2c d2|]").can_end()  # the next section's pickup
    assert _written(head + "A|dfa afd|B2c d2:|dfa") is None  # a full bar after the short one (abc2midi: 11 units)
    assert _written(head + "A|dfa afd|B2c d2|dfa") is None  # a short bar that closes no section
    assert _written(head + "dfa afd|B2c d2|") is None  # no pickup: every bar full
    assert _written(head + "A|dfa afd|B2c d|") is None  # 1 + 4 is not a bar


def test_a_repeated_section_that_starts_with_a_pickup_closes_short_and_one_that_does_not_closes_full():
    head = "X:1\nM:6/8\nL:1/8\nK:D\n"
    assert _written(head + "A|dfa afd|B2c d3:|") is None  # played again: a lone pickup (abc2midi: Bar 0 ...)
    assert _written(head + "dfa afd|B2c d2:|") is None  # played again: 5 + 6
    assert _written(head + "A|dfa afd|B2c d2:|\n|:e|dfa afd|B2c d2:|").can_end()  # each section's pickup
    assert _written(head + "dfa afd:|\n|:A|") is None  # a pickup only where a short bar came before
    assert _written(head + "A|dfa afd|1 B2c d2:|2 B2c d3|]").can_end()
    assert _written(head + "A|dfa afd|B2c d2|1") is None  # a short bar is a section's last


def test_what_abc2midi_refuses_around_pickups_and_accidentals_is_not_written():
    head = "X:1\nM:6/8\nL:1/8\nK:D\n"
    assert _written(head + "z:|") is None  # a lone pickup repeated
    assert _written(head + "A|dfa afd|B2c d2||\n|A|") is None  # an empty bar between a short bar and its pickup
    assert _written(head + "A|dfa afd|B2c d2||\n|:A|dfa afd|B2c d2:|").can_end()
    assert _written(head + "^^f==") is None and _written(head + "^^f__a ^ac =d|").can_end()
    assert _written("X:1\nR:Hornpipe\nM:6/8") is None and _written("X:1\nR:Hornpipe\nM:C|\n") is None
    assert _written("X:1\nR:Hornpipe\nM:2/4\nL:1/8\nK:D\n")


def test_reading_a_tune_without_beams_leaves_music21_as_it_was():
    from music21 import stream

    score = parse_tune("X:1\nM:2/4\nL:1/8\nK:D\nAB cd|e2 d2|\n")
    assert len(score.flatten().notes) == 6 and "makeBeams" not in stream.Part.__dict__
    with pytest.raises(AbcError):
        parse_tune("X:1\nK:D\n")
    assert "makeBeams" not in stream.Part.__dict__
