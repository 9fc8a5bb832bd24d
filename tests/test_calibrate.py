"""calibrate: the bass's motion against the soprano, fitted to a bundle's own chorales and used by harmonize."""

import dataclasses
import json
import shutil

import numpy as np

from pianocomposer.calibrate import Events, calibrate
from pianocomposer.harmonize import MOTIONS, motion_features
from tests.conftest import REPO, run_cli


def test_motion_features_tell_similar_contrary_and_leaping_bass_moves():
    new_bass = np.array([50, 45, 55, -1, 48])  # up a step, down, up a fourth, not a new note, the same pitch
    features = motion_features(new_bass, np.array([48, 48, -1]), np.array([1, 0, 1]))
    assert features.shape == (3, 5, len(MOTIONS))
    assert features[0].tolist() == [[True, False, False], [False, True, False], [True, False, True],
                                    [False, False, False], [False, False, False]]
    assert features[1, :, :2].sum() == 0 and features[1, 2, 2]  # the soprano holds: only leaps count
    assert features[2].sum() == 0  # a silent bass moves nowhere


def test_the_fit_finds_the_corrections_that_made_the_choices():
    rng = np.random.default_rng(0)
    events, tokens = 4000, 12
    probs = rng.dirichlet(np.ones(tokens), events)
    features = rng.random((events, tokens, len(MOTIONS))) < 0.3
    truth = np.array([-0.5, 0.8, 0.3])
    odds = probs * np.exp(features @ truth)
    odds /= odds.sum(axis=1, keepdims=True)
    actual = np.array([rng.choice(tokens, p=p) for p in odds])
    made = Events(probs, features.astype(float), actual)
    fitted = made.fit()
    assert np.abs(fitted - truth).max() < 0.15, fitted
    assert made.nats(fitted) < made.nats(np.zeros(3))


def test_calibrate_saves_the_corrections_in_the_bundle_and_refuses_other_bundles(voices_bundle, bundle_dir,
                                                                                 tmp_path):
    weights = tmp_path / "w"
    shutil.copytree(voices_bundle, weights)
    done = calibrate(weights, voices_bundle.parent / "data", songs=4)
    saved = json.loads((weights / "bundle.json").read_text())["bass_motion"]
    assert set(saved) == set(MOTIONS) and saved == done.motion and all(np.isfinite(list(saved.values())))
    assert done.train_nats[1] <= done.train_nats[0] and done.songs == 4

    result = run_cli("calibrate", "--weights", bundle_dir, "--data", voices_bundle.parent / "data")
    assert result.returncode != 0 and "calibrate needs a four-voice (voices) bundle" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_shipped_chorale_bass_moves_with_the_soprano_as_often_as_bachs_once_calibrated():
    from pianocomposer.compose import Composer, Sampler
    from pianocomposer.harmonize import reharmonize
    from pianocomposer.realness import FEATURE_NAMES, note_array, piece_features

    composer = Composer(REPO / "weights" / "chorale")
    encoding = composer.encoding
    songs = [encoding.read_songs(p)[0]["tokens"] for p in sorted((REPO / "chorales" / "heldout").glob("*.mid"))]
    similar = FEATURE_NAMES.index("similar motion")

    def share(pieces: list[list[str]]) -> float:  # outer voices moving the same way, of their moves
        return float(np.nanmean([piece_features(note_array(encoding.decode(p)))[similar] for p in pieces]))

    plain = dataclasses.replace(composer.bundle, meta={**composer.bundle.meta, "bass_motion": None})
    written = {name: [p for p, _ in reharmonize(bundle, composer.net, songs, np.random.default_rng(0), 1,
                                               Sampler(temperature=0.5))]
               for name, bundle in (("calibrated", composer.bundle), ("plain", plain))}
    bach, calibrated, uncalibrated = share(songs), share(written["calibrated"]), share(written["plain"])
    assert set(composer.bundle.meta["bass_motion"]) == set(MOTIONS)
    # the network alone moves its bass with the soprano's more often than Bach (0.42 against 0.36 over 6 seeds)
    assert calibrated < uncalibrated and abs(calibrated - bach) < abs(uncalibrated - bach), (bach, calibrated,
                                                                                            uncalibrated)
