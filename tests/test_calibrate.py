"""calibrate: the lower voices' odds (the bass's motion, clashes, the key's degrees), fitted to a bundle's own
chorales and used by harmonize."""

import dataclasses
import json
import shutil

import numpy as np
import pretty_midi

from pianocomposer.composing.four_parts import CALIBRATION, calibration_features
from pianocomposer.learning.calibrate import Events, calibrate, fit, nats
from tests.conftest import REPO, run_cli


def test_the_features_tell_the_bass_moves_the_clashes_and_the_keys_degrees():
    new = np.array([50, 45, 55, -1, 48])  # up a step, down, up a fourth, not a new note, the same pitch
    holds = np.array([False, False, False, True, False])
    bass = calibration_features(new, True, np.array([48, 48, -1]), np.array([1, 0, 1]), np.full(3, -1),
                                np.zeros(3, bool), np.full((3, 1), -1), holds,
                                np.array([[True, False], [False, False], [False, True]]))
    assert bass.shape == (3, 5, len(CALIBRATION))
    assert CALIBRATION[:5] == ("bass similar", "bass contrary", "bass leap", "bass repeat", "semitone clash")
    assert bass[0, :, :4].tolist() == [[True, False, False, False], [False, True, False, False],
                                       [True, False, True, False], [False, False, False, False],
                                       [False, False, False, True]]
    assert bass[1, :, :2].sum() == 0 and bass[1, 2, 2] and bass[1, 4, 3]  # the soprano holds: leaps, repeats
    assert bass[2, :, :-1].sum() == 0 and bass[..., 4:-2].sum() == 0  # a silent bass moves nowhere; no key
    assert CALIBRATION[-2:] == ("hold under a dotted melody", "move off the beat")
    assert bass[..., -2].tolist() == [holds.tolist(), [False] * 5, [False] * 5]  # the held note, under a dotted one
    assert bass[..., -1].tolist() == [[False] * 5] * 2 + [(new >= 0).tolist()]  # new notes on the off-beat
    # an alto in A minor under a soprano's A (69), the tenor silent: G# the leading tone and Bb clash with the A
    alto = calibration_features(np.array([56, 57, 55, 58, -1]), False, np.array([60]), np.array([1]), np.array([9]),
                                np.array([True]), np.array([[69, -1]]), np.zeros(5, bool), np.zeros((1, 2), bool))
    degrees = alto[0, :, 5:-2]
    assert [CALIBRATION[5 + i] for i in degrees[:4].argmax(axis=1)] == ["minor 7", "minor 1", "minor b7", "minor b2"]
    assert degrees.sum(axis=1).tolist() == [1, 1, 1, 1, 0]  # one degree each; a held note none
    assert alto[0, :, 4].tolist() == [True, False, False, True, False] and alto[..., :4].sum() == 0
    major = calibration_features(np.array([62, 63]), False, np.array([60]), np.array([0]), np.array([2]),
                                 np.array([False]), np.full((1, 1), -1), np.zeros(2, bool), np.zeros((1, 2), bool))
    assert [CALIBRATION[5 + i] for i in major[0, :, 5:-2].argmax(axis=1)] == ["major 1", "major b2"]


def test_a_dotted_melody_is_a_beat_the_soprano_holds_over_and_leaves_within():
    from pianocomposer.composing.four_parts import dotted

    def frames(*soprano):  # one frame a sixteenth, from a bar's first beat
        return [[f"Beat_{i}", f"S_{s}"] for i, s in enumerate(soprano)]

    quarter = ["72", "72~", "72~", "72~"]
    dotted_quarter = frames("72", "72~", "72~", "72~", "72~", "72~", "74", "74~", *quarter)
    assert np.flatnonzero(dotted(dotted_quarter, 4)).tolist() == [4]  # the second beat; the tie leaves in it
    assert not dotted(frames(*quarter, "72~", "72~", "72~", "72~", *quarter), 4).any()  # a half note stays the beat
    assert not dotted(frames("72", "72~", "74", "74~"), 4).any()  # eighths: a note begun on the beat
    assert dotted(frames(*quarter, "72~", "72~", "rest", "rest"), 4).tolist() == [False] * 4 + [True] + [False] * 3
    assert not dotted([[f[1]] for f in dotted_quarter], 4).any()  # without beats, no beat to hold over


def test_the_fit_finds_the_corrections_that_made_the_choices():
    rng = np.random.default_rng(0)
    events, tokens = 8000, 12
    probs = rng.dirichlet(np.ones(tokens), events)
    features = rng.random((events, tokens, len(CALIBRATION))) < 0.3
    truth = rng.normal(0, 0.5, len(CALIBRATION))
    odds = probs * np.exp(features @ truth)
    odds /= odds.sum(axis=1, keepdims=True)
    actual = np.array([rng.choice(tokens, p=p) for p in odds])
    made = [Events(probs[:4000], features[:4000].astype(float), actual[:4000]),
            Events(probs[4000:], features[4000:].astype(float), actual[4000:])]  # two voices
    fitted = fit(made)
    assert np.abs(fitted - truth).max() < 0.15, fitted
    assert nats(made, fitted) < nats(made, np.zeros(len(CALIBRATION)))


def test_calibrate_saves_the_corrections_in_the_bundle_and_refuses_other_bundles(voices_bundle, bundle_dir,
                                                                                 tmp_path):
    weights = tmp_path / "w"
    shutil.copytree(voices_bundle, weights)
    done = calibrate(weights, voices_bundle.parent / "data", songs=4)
    saved = json.loads((weights / "bundle.json").read_text())["calibration"]
    assert set(saved) == set(CALIBRATION) and saved == done.calibration and all(np.isfinite(list(saved.values())))
    assert done.train_nats[1] <= done.train_nats[0] and done.songs == 4

    result = run_cli("calibrate", "--weights", bundle_dir, "--data", voices_bundle.parent / "data")
    assert result.returncode != 0 and "calibrate needs a four-voice (voices) bundle" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_shipped_chorales_bass_moves_clashes_and_keys_come_nearer_bachs_once_calibrated():
    from pianocomposer.composing.compose import Composer, Sampler
    from pianocomposer.composing.four_parts import reharmonize
    from pianocomposer.judging.realness import FEATURE_NAMES, note_array, piece_features

    composer = Composer(REPO / "weights" / "chorale")
    encoding = composer.encoding
    songs = [encoding.read_songs(p)[0]["tokens"] for p in sorted((REPO / "chorales" / "heldout").glob("*.mid"))]
    def feature(name: str):  # similar motion of the outer voices, semitone clashes, pieces heard in a minor key
        def mean(pieces: list[list[str]]) -> float:
            return float(np.nanmean([piece_features(note_array(encoding.decode(p)))[FEATURE_NAMES.index(name)]
                                     for p in pieces]))
        return mean

    def leading_tones(pieces: list[list[str]]) -> float:  # of the lower voices' new notes in minor keys
        notes = [int(t[2:]) - int(p[1][4:-1]) for p in pieces if p[1].endswith("m") for t in p
                 if t[:2] in ("A_", "T_", "B_") and not t.endswith(("~", "rest"))]
        return float(np.mean(np.array(notes) % 12 == 11))

    plain = dataclasses.replace(composer.bundle, meta={**composer.bundle.meta, "calibration": None})
    written = {name: [p for p, _ in reharmonize(bundle, composer.net, songs, np.random.default_rng(0), 1,
                                               Sampler(temperature=0.5))]
               for name, bundle in (("calibrated", composer.bundle), ("plain", plain))}
    assert set(composer.bundle.meta["calibration"]) == set(CALIBRATION)
    # Bach, calibrated, the network alone: similar motion 0.36, 0.35, 0.40; clashes 0.084, 0.088, 0.107; heard in
    # a minor key 0.46, 0.37, 0.26; leading tones 4.5 %, 2.5 %, 1.4 %
    checks = (feature("similar motion"), feature("semitone clashes"), feature("minor key"), leading_tones)
    figures = [(f(songs), f(written["calibrated"]), f(written["plain"])) for f in checks]
    for bach, calibrated, plain_figure in figures:
        assert abs(calibrated - bach) < abs(plain_figure - bach), figures


def test_under_a_dotted_melody_the_calibrated_lower_voices_move_on_the_beat_it_holds_over_as_bachs_do():
    from pianocomposer.composing.compose import Composer, Sampler
    from pianocomposer.composing.four_parts import dotted, four_parts
    from pianocomposer.encodings.voices_tokens import LOWER

    composer = Composer(REPO / "weights" / "chorale")
    encoding = composer.encoding
    midi = pretty_midi.PrettyMIDI(initial_tempo=90)
    melody = pretty_midi.Instrument(0)
    scale = [72, 74, 76, 77, 79, 77, 76, 74] * 2
    for bar, (a, b) in enumerate(zip(scale, [*scale[1:], 72], strict=True)):  # C major: a dotted quarter and an eighth
        start = bar * 4 / 3  # seconds, a half note at 90 a minute
        melody.notes += [pretty_midi.Note(80, a, start, start + 1), pretty_midi.Note(80, b, start + 1, start + 4 / 3)]
    midi.instruments.append(melody)
    piece = encoding.frames(midi, melody.notes)
    beats = dotted(piece[1], encoding.grid)
    assert beats.sum() == 16

    def still(bundle) -> float:  # of the dotted beats, the share where no lower voice begins a note
        written = four_parts(bundle, composer.net, [piece] * 16, np.random.default_rng(0), 1, Sampler(temperature=0.5))
        frames = [f for frames, _ in written for f, d in zip(frames, beats, strict=True) if d]
        return float(np.mean([all(t.endswith("~") for t in f if t[:2] in LOWER) for f in frames]))

    fitted = composer.bundle.meta["calibration"]["hold under a dotted melody"]
    plain = dataclasses.replace(composer.bundle, meta={**composer.bundle.meta, "calibration": {
        **composer.bundle.meta["calibration"], "hold under a dotted melody": 0.0}})
    assert fitted < 0, fitted
    figures = still(composer.bundle), still(plain)  # 7.0 % and 13.7 % (Bach's chorales: 6 %)
    assert figures[0] < 0.7 * figures[1], figures
