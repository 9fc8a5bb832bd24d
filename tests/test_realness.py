"""realness.py: per-piece features on known inputs, the classifiers on real against real and against degenerate
pieces, and evaluate's real-or-generated figures with the shipped bundles."""

import json
import shutil

import numpy as np
import pretty_midi
import pytest

from pianocomposer.judging.evaluate import evaluate
from pianocomposer.judging.realness import (
    FEATURE_NAMES,
    FEATURES,
    GROUPS,
    MEANINGFUL_PER_CLASS,
    excerpt,
    note_array,
    piece_features,
    realness_test,
)
from pianocomposer.learning.bundle import resolve_weights
from pianocomposer.reading.extract import extract
from tests.conftest import REPO, run_cli

SONGS = sorted((REPO / "midi_songs").glob("*.mid"))


@pytest.fixture(scope="module")
def chorales() -> list[np.ndarray]:
    """The notes of every song in midi_songs/ (Bach chorales), in quarters."""
    return [note_array(pretty_midi.PrettyMIDI(str(p))) for p in SONGS]


def feature(notes: np.ndarray, name: str) -> float:
    """One named feature of a piece."""
    return float(piece_features(notes)[FEATURE_NAMES.index(name)])


def test_every_feature_is_named_grouped_and_explained():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) > 60
    assert set(GROUPS) >= {"pitch", "melody", "rhythm", "texture", "register", "structure", "position",
                           "voice motion"}
    assert all(group in GROUPS and meaning for group, meaning in FEATURES.values())


def test_a_scale_in_quarter_notes():
    # C D E F G A B C, a quarter each, one voice: a C major scale going up by steps
    notes = np.array([[i, i + 1, p] for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])], float)
    assert feature(notes, "degree 1") == pytest.approx(2 / 8) and feature(notes, "minor key") == 0
    assert feature(notes, "top line up 1-2") == 1.0 and feature(notes, "top line repeat") == 0.0
    assert feature(notes, "IOI 1") == 1.0 and feature(notes, "duration 1") == 1.0
    assert feature(notes, "polyphony") == 1.0 and feature(notes, "single-note onsets") == 1.0
    assert feature(notes, "silence") == 0.0 and feature(notes, "notes per quarter") == 1.0
    assert feature(notes, "onsets on the beat") == 1.0
    rests = notes.copy()
    rests[:, 1] = rests[:, 0] + 0.5  # the same onsets, each note half as long: half the time is silent
    assert feature(rests, "silence") == pytest.approx(1 - 4 / 7.5)  # 8 half quarters sound in 7.5 quarters


def test_a_transposed_chorale_has_the_same_features_but_register(chorales):
    song = chorales[0]
    moved = song.copy()
    moved[:, 2] += 5
    before, after = piece_features(song), piece_features(moved)
    for i, name in enumerate(FEATURE_NAMES):
        if FEATURES[name][0] == "register" and "pitch" in name and name != "pitch span" and name != "pitch sd":
            assert after[i] == pytest.approx(before[i] + 5), name
        else:
            assert after[i] == pytest.approx(before[i]), name


def test_an_excerpt_is_as_long_as_asked(chorales):
    rng = np.random.default_rng(0)
    song = chorales[1]
    cut = excerpt(song, 16.0, rng)
    assert 0 < len(cut) < len(song) and cut[0, 0] == 0.0 and cut[:, 0].max() < 16.0
    assert excerpt(song, 10_000.0, rng) is song  # a song shorter than asked stays whole


def test_real_against_real_is_near_chance(chorales):
    result = realness_test(chorales[:200], chorales[200:260], seed=1)
    assert result.pieces == 60 and result.meaningful and result.control_pieces == 60
    for accuracy in (result.logistic, result.boosted, result.control_logistic, result.control_boosted):
        assert 0.3 <= accuracy.mean <= 0.7 and 0 <= accuracy.sd < 0.2 and len(accuracy.folds) == 5


def test_degenerate_pieces_are_told_apart(chorales):
    repeated = [np.array([[i, i + 1, 60] for i in range(40)], float)] * 60  # one note, again and again
    result = realness_test(chorales[:200], repeated)
    assert result.logistic.mean >= 0.95 and result.boosted.mean >= 0.95
    assert result.control_logistic.mean <= 0.7 and result.control_boosted.mean <= 0.7  # the control is real only
    # the chorales' own notes on a fixed rhythm (as cpc decodes: an onset every half quarter, a quarter long)
    fixed = []
    for song in chorales[200:260]:
        onsets = np.unique(song[:, 0])
        slot = {o: i * 0.5 for i, o in enumerate(onsets)}
        fixed.append(np.array([[slot[s], slot[s] + 1.0, p] for s, _, p in song]))
    result = realness_test(chorales[:200], fixed)
    assert result.logistic.mean >= 0.9 and result.boosted.mean >= 0.9
    assert {g.group for g in result.giveaways} & {"rhythm", "position", "structure", "texture"}
    assert len(result.giveaways) == 5 and set(result.groups) == set(GROUPS)


def test_too_few_pieces(chorales):
    assert realness_test(chorales[:20], chorales[20:24]) is None  # fewer than the folds
    few = realness_test(chorales[:40], chorales[40:50])
    assert few.pieces == 10 and not few.meaningful and str(MEANINGFUL_PER_CLASS) in few.notes[-1]


@pytest.fixture(scope="module")
def some_songs(tmp_path_factory):
    """40 songs of midi_songs/ in a folder of their own."""
    folder = tmp_path_factory.mktemp("songs")
    for path in SONGS[:40]:
        shutil.copy(path, folder / path.name)
    return folder


def test_evaluate_reports_the_timed_models_pieces_against_real_ones(some_songs, tmp_path):
    data = tmp_path / "data"
    extract(some_songs, data, encoding="timed", progress=False)
    result = evaluate(resolve_weights("timed"), data, generate=30, length=150, out=tmp_path, progress=False)
    r = result.realness
    assert r.pieces == 30 and r.meaningful and not r.whole and r.control_pieces >= 5
    assert 0 < r.quarters < 100 and "corpus songs decoded" in r.real_source
    report = result.to_json()["realness"]
    assert report["chance"] == 0.5 and report["features"] == len(FEATURES)
    for key in ("logistic", "boosted", "control_logistic", "control_boosted"):
        assert 0 <= report[key]["mean"] <= 1 and len(report[key]["folds"]) == 5
    assert [g["name"] for g in report["giveaways"]] and all(g["name"] in FEATURES for g in report["giveaways"])
    assert "real or generated?" in "\n".join(result.table())
    assert result.plot.read_bytes()[:4] == b"\x89PNG"


def test_the_cli_tells_the_cpc_models_fixed_rhythm_from_the_original_midi(some_songs, tmp_path):
    data = tmp_path / "data"
    extract(some_songs, data, progress=False)
    proc = run_cli("evaluate", "--weights", "default", "--data", data, "--generate", "30", "--real", some_songs,
                   "--out", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)["realness"]
    assert r["logistic"]["mean"] >= 0.9 and r["boosted"]["mean"] >= 0.9  # one rhythm, by design
    assert r["real_source"] == f"40 MIDI files of {some_songs}"
    bad = run_cli("evaluate", "--weights", "default", "--data", data, "--real", tmp_path / "nope")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "--real" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    off = run_cli("evaluate", "--weights", "default", "--data", data, "--generate", "6", "--no-realness", "--out",
                  tmp_path, "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["realness"] is None
