"""Stage 4: evaluate, and each metric on hand-made inputs whose answers are known."""

import json
import math

import numpy as np
import pytest

from pianocomposer.encodings import get_encoding
from pianocomposer.judging.evaluate import evaluate
from pianocomposer.judging.metrics import (
    copy_rate,
    histogram_distance,
    histograms,
    loop_rate,
    music_statistics,
    token_spans,
)
from pianocomposer.learning.bundle import load_bundle
from tests.conftest import PHRASES, run_cli

CPC = get_encoding("cpc")
SONG = [t for p in PHRASES for t in p] * 2


def test_a_constant_sequence():
    constant = ["C4"] * 40
    assert loop_rate(constant) == 1.0
    assert copy_rate(constant, token_spans([constant])) == 1.0
    stats = music_statistics(CPC.decode(constant))
    assert stats["pitch_class_entropy"] == 0.0 and stats["pitch_range"] == 0 and stats["scale_consistency"] == 1.0
    assert stats["polyphony"] == 1.0


def test_a_transposed_song_keeps_its_loop_rate_and_rotates_its_pitch_classes():
    moved = [CPC.transpose(t, 2) for t in SONG]
    assert loop_rate(moved) == loop_rate(SONG)
    before, after = histograms(CPC.decode(SONG)), histograms(CPC.decode(moved))
    assert np.array_equal(after["pitch_class"], np.roll(before["pitch_class"], 2))
    assert np.array_equal(after["ioi"], before["ioi"]) and np.array_equal(after["duration"], before["duration"])
    assert histogram_distance(before["pitch_class"], before["pitch_class"]) == 0.0
    assert 0 < histogram_distance(before["pitch_class"], after["pitch_class"]) <= 1
    assert music_statistics(CPC.decode(moved))["pitch_class_entropy"] == pytest.approx(
        music_statistics(CPC.decode(SONG))["pitch_class_entropy"])


def test_copy_rate_counts_verbatim_spans_within_songs():
    assert copy_rate(SONG, token_spans([SONG])) == 1.0  # a held-out song equal to a training song
    assert copy_rate(["C4", "D4"] * 10, token_spans([SONG])) == 0.0
    # spans never join the end of one song to the start of the next
    assert copy_rate(PHRASES[0][4:] + PHRASES[1][:4], token_spans([PHRASES[0], PHRASES[1]])) == 0.0
    assert math.isnan(copy_rate(["C4"] * 3, token_spans([SONG])))


def test_evaluate_scores_held_out_songs_as_training_validated_them(bundle_dir, data_dir, tmp_path):
    result = evaluate(bundle_dir, data_dir, generate=3, length=30, out=tmp_path, progress=False)
    meta = load_bundle(bundle_dir).meta
    lk = result.likelihood
    assert lk.source == "validation split" and lk.songs == len(meta["split"]["val"]) and lk.unknown == 0
    # the window score is the validation loss training recorded for the best model, computed here in NumPy
    assert lk.window.cross_entropy == pytest.approx(meta["training"]["best_val_loss"], rel=1e-4)
    assert lk.full.tokens == lk.window.tokens > 0 and 0 <= lk.full.accuracy <= lk.full.top5_accuracy <= 1
    assert lk.full.perplexity == pytest.approx(math.exp(lk.full.cross_entropy))
    assert len(result.pieces) == 3 and all(p["tokens"] == 30 for p in result.pieces)
    assert result.plot.is_file() and result.plot.read_bytes()[:4] == b"\x89PNG"
    assert result.copy_rate["heldout"] is not None and result.generated["pitch_range"].n == 3
    assert result.copy_rate["span_tokens"] == 8  # cpc: one token per onset
    assert result.histograms["ioi"]["distance"] == 0  # cpc steps every token by the same half quarter (README)


def test_the_cli_prints_a_table_and_json(bundle_dir, data_dir, tmp_path):
    proc = run_cli("evaluate", "--weights", bundle_dir, "--data", data_dir, "--generate", "2", "--length", "20",
                   "--out", tmp_path / "e.png", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["likelihood"]["full"]["tokens"] > 0 and report["plot"].endswith("e.png")
    assert set(report["statistics"]) >= {"pitch_class_entropy", "scale_consistency", "groove_consistency",
                                         "empty_beat_rate", "polyphony", "pitch_range", "note_density"}
    table = run_cli("evaluate", "--weights", bundle_dir, "--data", data_dir, "--generate", "0", "--out", tmp_path)
    assert table.returncode == 0 and "perplexity" in table.stdout and "copy rate" in table.stdout
    bad = run_cli("evaluate", "--weights", bundle_dir, "--data", tmp_path / "nope")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
