"""Calibrate a voices bundle (`pianocomposer calibrate`): log-odds corrections to the network's odds for the lower
voices (four_parts.CALIBRATION: how the bass moves against the soprano or repeats its note, a new note a semitone
from another voice, each of the twelve degrees of the key in either mode, a voice holding on under a dotted melody
(which the network cannot see coming) and a note begun on the off-beat eighth), fitted by maximum likelihood on the
bundle's own training chorales with the network fixed, and saved in its bundle.json (`calibration`), where
harmonize applies them. Under Bach's own chorales the shipped network moves its bass with the soprano more often
than he does (its odds 46 %, his 39 %), repeats its bass note and sounds semitone clashes too readily, and sharpens
the key: the flat third and flat seventh in major, the raised sixth in minor; it holds on under a dotted melody and
begins too few notes on the off-beat eighth. The corrections lower its held-out nats as well (0.5401 -> 0.5318 per
lower-voice token)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from pianocomposer.composing.compose import blas_threads, prime
from pianocomposer.composing.four_parts import CALIBRATION, calibration_features, pulse
from pianocomposer.config import CALIBRATION_SONGS
from pianocomposer.encodings.voices import HELD, PREFIXES, VoicesEncoding, is_frame
from pianocomposer.encodings.voices_tokens import key_tonic, pitch
from pianocomposer.errors import PianoComposerError
from pianocomposer.learning.bundle import BUNDLE_FILE, read_bundle, resolve_weights
from pianocomposer.learning.model import StepModel
from pianocomposer.reading.tokens import load_tokens
from pianocomposer.writing.atomic import write_json

SOPRANO, BASS = (f"{p}_" for p in (PREFIXES[0], PREFIXES[-1]))
VOICES = tuple(f"{p}_" for p in PREFIXES[1:])  # the lower voices' token prefixes, in a fixed order


@dataclass
class Calibration:
    """The corrections fitted and what they do to the lower voices' nats per token (training songs used, held-out)."""

    bundle: Path
    calibration: dict[str, float]
    songs: int
    tokens: int
    train_nats: tuple[float, float]  # before, after
    heldout_nats: tuple[float, float]

    def to_json(self) -> dict:
        """The JSON form `calibrate --json` prints."""
        return {"bundle": str(self.bundle), "calibration": self.calibration, "songs": self.songs,
                "tokens": self.tokens, "train_nats": [round(x, 4) for x in self.train_nats],
                "heldout_nats": [round(x, 4) for x in self.heldout_nats]}


@dataclass
class Events:
    """One lower voice's tokens in some songs under teacher forcing: the network's odds over the voice's tokens, each
    token's CALIBRATION features, and the token Bach wrote (its column)."""

    probs: np.ndarray  # (events, the voice's tokens)
    features: np.ndarray  # (events, the voice's tokens, CALIBRATION)
    actual: np.ndarray  # (events,)

    def logits(self, calibration: np.ndarray) -> np.ndarray:
        """Log-probabilities of the voice's tokens under the corrected odds."""
        logits = np.log(np.maximum(self.probs, 1e-30)) + self.features @ calibration
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def nats(self, calibration: np.ndarray) -> float:
        """Total nats of Bach's tokens under the corrected odds."""
        return float(-self.logits(calibration)[np.arange(len(self.actual)), self.actual].sum())


def nats(groups: list[Events], calibration: np.ndarray) -> float:
    """Mean nats per token of Bach's lower voices under the corrected odds."""
    return sum(g.nats(calibration) for g in groups) / sum(len(g.actual) for g in groups)


def fit(groups: list[Events], steps: int = 30) -> np.ndarray:
    """The corrections that minimise the nats (Newton's method; the loss is convex in them)."""
    calibration = np.zeros(len(CALIBRATION))
    for _ in range(steps):
        gradient, hessian = np.zeros(len(CALIBRATION)), np.zeros((len(CALIBRATION),) * 2)
        for g in groups:
            q = np.exp(g.logits(calibration))
            mean = np.einsum("ev,evk->ek", q, g.features)
            gradient += (mean - g.features[np.arange(len(g.actual)), g.actual]).sum(axis=0)
            hessian += np.einsum("ev,evk,evl->kl", q, g.features, g.features) - mean.T @ mean
        step = np.linalg.lstsq(hessian + 1e-6 * np.eye(len(CALIBRATION)), gradient, rcond=None)[0]
        calibration -= step
        if np.abs(step).max() < 1e-6:
            break
    return calibration


def lower_events(net: StepModel, tokens: list[str], index: dict[str, int], songs: list[list[str]],
                 grid: int) -> list[Events]:
    """Run the network over the songs (teacher forcing, all in one batch; `grid`: steps a quarter) and collect, at
    each lower voice's token, its odds over that voice's tokens and their features: one Events per voice."""
    columns = {p: np.array([i for i, t in enumerate(tokens) if t.startswith(p)]) for p in VOICES}
    new = {p: np.array([pitch(tokens[i]) if not tokens[i].endswith(HELD) else -1 for i in c])
           for p, c in columns.items()}
    holds = {p: np.array([tokens[i].endswith(HELD) for i in c]) for p, c in columns.items()}
    ids = [np.array([index[t] for t in song], np.int32) for song in songs]
    # per position, the voice whose token it is with its last pitch, the soprano's step, the key, the other voices'
    # pitches and the frame's pulse (under a dotted melody; on the off-beat eighth)
    where: dict[int, list[tuple[int, str, int, int, int, bool, tuple[int, ...], np.ndarray, int]]] = {}
    for row, song in enumerate(songs):
        tonic, minor = key_tonic(song[1] if len(song) > 1 else None)
        pulses = pulse(VoicesEncoding.split(song)[1], grid)
        soprano = before = frame = -1
        last = dict.fromkeys(VOICES, -1)  # each voice's pitch: in this frame once written, else the last frame's
        for k, token in enumerate(song):
            frame += is_frame(token)
            if token.startswith(SOPRANO):
                before, soprano = soprano, pitch(token)
            elif token[:2] in VOICES:
                step = int(np.sign(soprano - before)) if soprano >= 0 and before >= 0 else 0
                column = int(np.searchsorted(columns[token[:2]], ids[row][k]))
                others = (soprano, *(last[v] for v in VOICES if v != token[:2]))
                where.setdefault(k, []).append((row, token[:2], last[token[:2]], step, tonic, minor, others,
                                                 pulses[frame], column))
                last[token[:2]] = pitch(token)
    taken: dict[str, list] = {p: [] for p in VOICES}
    probs, state = prime(net, [i[:1] for i in ids])
    for k in range(1, max(len(i) for i in ids)):
        for row, voice, *event in where.get(k, []):
            taken[voice].append((probs[row, columns[voice]], *event))
        probs, state = net.step(np.array([i[min(k, len(i) - 1)] for i in ids], np.int32), state)
    groups = []
    for voice, rows in taken.items():
        if rows:
            odds, lasts, steps, tonics, minors, others, beats, actual = zip(*rows, strict=True)
            features = calibration_features(new[voice], voice == BASS, np.array(lasts), np.array(steps),
                                            np.array(tonics), np.array(minors), np.array(others), holds[voice],
                                            np.array(beats)).astype(np.float32)
            groups.append(Events(np.array(odds, np.float64), features, np.array(actual)))
    if not groups:
        raise PianoComposerError("no lower voices to calibrate on")
    return groups


def calibrate(weights: Path, data: Path, songs: int = CALIBRATION_SONGS, seed: int = 0) -> Calibration:
    """Fit a voices bundle's corrections on up to `songs` of its training chorales (in `data`, its extract output),
    report the nats on its held-out ones, and save them in its bundle.json (atomically)."""
    folder = resolve_weights(weights)
    bundle = read_bundle(folder)
    if not bundle.encoding.harmonizes:
        raise PianoComposerError(f"{folder}: calibrate needs a four-voice (voices) bundle; this one is "
                                 f"{bundle.encoding_name}")
    corpus = load_tokens(data)
    if corpus.encoding != bundle.encoding_name:
        raise PianoComposerError(f"{data}: its songs are {corpus.encoding} tokens; {folder} is a "
                                 f"{bundle.encoding_name} bundle")
    train = set(bundle.meta["split"]["train"])
    index = bundle.vocabulary.index
    known = [s for s in corpus.songs if all(t in index for t in s.tokens)]
    training = [s.tokens for s in known if s.source in train]
    heldout = [s.tokens for s in known if s.source not in train]
    if not training or not heldout:
        raise PianoComposerError(f"{data}: none of {folder}'s {'training' if not training else 'held-out'} "
                                 "chorales are here (is it the data the bundle was trained on?)")
    rng = np.random.default_rng(seed)
    picked = [training[i] for i in sorted(rng.choice(len(training), min(songs, len(training)), replace=False))]
    net = bundle.step_model()
    with threadpool_limits(blas_threads(), "blas"):
        fitting = lower_events(net, bundle.vocabulary.tokens, index, picked, bundle.encoding.grid)
        judging = lower_events(net, bundle.vocabulary.tokens, index, heldout, bundle.encoding.grid)
    fitted = fit(fitting)
    none = np.zeros(len(CALIBRATION))
    meta = {**bundle.meta, "calibration": {name: round(float(v), 4)
                                            for name, v in zip(CALIBRATION, fitted, strict=True)}}
    write_json(folder / BUNDLE_FILE, meta)
    return Calibration(folder, meta["calibration"], len(picked), sum(len(g.actual) for g in fitting),
                       (nats(fitting, none), nats(fitting, fitted)), (nats(judging, none), nats(judging, fitted)))
