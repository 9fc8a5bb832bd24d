"""The six music metrics, computed in numpy, against muspy's own implementations on real and generated MIDI."""

from __future__ import annotations

import math

import numpy as np
import pretty_midi
import pytest

from pianocomposer.judging.metrics import RESOLUTION, music_statistics
from tests.conftest import REPO

muspy = pytest.importorskip("muspy")  # in the [test] extra only: the core computes the metrics without it


def muspy_statistics(midi: pretty_midi.PrettyMIDI) -> dict[str, float]:
    """The six metrics as muspy computes them."""
    music = muspy.from_pretty_midi(midi, resolution=RESOLUTION)
    bar = 4 * RESOLUTION
    if music.time_signatures:
        ts = music.time_signatures[0]
        bar = max(1, round(RESOLUTION * 4 * ts.numerator / ts.denominator))
    return {"pitch_class_entropy": muspy.pitch_class_entropy(music),
            "scale_consistency": muspy.scale_consistency(music),
            "groove_consistency": muspy.groove_consistency(music, bar), "empty_beat_rate": muspy.empty_beat_rate(music),
            "polyphony": muspy.polyphony(music), "pitch_range": muspy.pitch_range(music)}


def odd_piece(tempo_changes: bool) -> pretty_midi.PrettyMIDI:
    """Maybe tempo changes, a rest of several bars, a drum track, 3/4, overlapping notes and off-grid times."""
    rng = np.random.default_rng(5)
    midi = pretty_midi.PrettyMIDI(initial_tempo=97)
    if tempo_changes:
        midi._tick_scales.append((960, 60.0 / (71.5 * midi.resolution)))  # a tempo change at tick 960
        midi._tick_scales.append((2400, 60.0 / (140 * midi.resolution)))
        midi._update_tick_to_time(10000)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0))
    piano, drums = pretty_midi.Instrument(0), pretty_midi.Instrument(0, is_drum=True)
    t = 0.0
    for _ in range(120):
        length = float(rng.choice([0.13, 0.25, 0.5, 0.777, 1.0]))
        piano.notes.append(pretty_midi.Note(80, int(rng.integers(30, 90)), t, t + length * 1.4))
        t += length if rng.random() > 0.05 else length + 6.0
    drums.notes += [pretty_midi.Note(80, 36, x, x + 0.1) for x in np.arange(0, t + 3, 0.7)]
    midi.instruments += [piano, drums]
    return midi


def test_the_numpy_metrics_are_muspys_to_the_bit():
    pieces = [pretty_midi.PrettyMIDI(str(p)) for p in sorted((REPO / "midi_songs").glob("*.mid"))[:25]]
    pieces += [pretty_midi.PrettyMIDI(str(p)) for p in sorted((REPO / "chorales" / "heldout").glob("*.mid"))[:5]]
    pieces += [odd_piece(False), odd_piece(True)]
    assert len(pieces[-1].get_tempo_changes()[1]) == 3
    for midi in pieces:
        ours, theirs = music_statistics(midi), muspy_statistics(midi)
        for name, value in theirs.items():
            assert (math.isnan(value) and math.isnan(ours[name])) or ours[name] == value, (name, ours[name], value)
