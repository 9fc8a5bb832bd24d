"""Can a classifier tell generated pieces from real ones? Per-piece features, two cross-validated classifiers, and
the same test on two sets of real pieces as the control.

Every piece becomes a vector of cheap NumPy features (FEATURES: name -> (group, meaning)), computed from its notes
in quarter notes; pitch features are taken relative to the key that the Krumhansl-Kessler profiles hear in the
piece. Real pieces are cut to excerpts as long (in quarters) as the generated pieces, so length tells nothing;
encodings whose pieces end themselves (whole chorales) are compared whole. A logistic regression on standardised
features and a gradient-boosted tree model (scikit-learn) are scored by 5-fold stratified cross-validation: 50 %
is chance, the bar to reach; the control (real against real) shows what chance looks like with these pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pretty_midi
from threadpoolctl import threadpool_limits

from pianocomposer.judging.voice_leading import TRIADS_AND_SEVENTHS
from pianocomposer.writing.score import MAJOR, MINOR

FOLDS = 5
MIN_PER_CLASS = FOLDS  # fewer pieces per class cannot be split into the folds: no test
MEANINGFUL_PER_CLASS = 30  # below this the accuracy's spread is too wide to read (+-9 % at 50 %)
LOGISTIC_C = 0.1  # L2 strength of the logistic regression: ~75 features on ~100 pieces need a firm hand
TOP_FEATURES = 5

DEGREES = ["1", "b2", "2", "b3", "3", "4", "#4", "5", "b6", "6", "b7", "7"]
# Signed melodic intervals (semitones), right edges of the bins: <=-8, -7..-5, -4..-3, -2..-1, 0, 1..2, 3..4, 5..7, >=8
INTERVAL_EDGES = np.array([-7.5, -4.5, -2.5, -0.5, 0.5, 2.5, 4.5, 7.5])
INTERVAL_LABELS = ["down 8+", "down 5-7", "down 3-4", "down 1-2", "repeat", "up 1-2", "up 3-4", "up 5-7", "up 8+"]
NOTE_VALUES = ["1/8", "1/4", "1/2", "3/4", "1", "3/2", "2", "3", "4+"]  # as metrics.DURATION_LABELS
NOTE_VALUE_EDGES = np.array([0.1875, 0.375, 0.625, 0.875, 1.25, 1.75, 2.5, 3.5])
GRID = 12  # onset phases are read on a 1/12-quarter grid (sixteenths and triplets)
LONG = 2.0  # quarters: a top-line note this long ends a phrase (a fermata, a cadence's long note)


def _features() -> dict[str, tuple[str, str]]:
    """Every feature's name -> (group, meaning), in the order of a feature vector."""
    f: dict[str, tuple[str, str]] = {}
    for d in DEGREES:
        f[f"degree {d}"] = ("pitch", f"share of notes on scale degree {d} of the piece's key")
    f["minor key"] = ("pitch", "1 when the key heard is minor")
    f["key clarity"] = ("pitch", "correlation of the pitch classes with the key's profile")
    for label in INTERVAL_LABELS:
        f[f"top line {label}"] = ("melody", f"share of the top line's intervals: {label} semitones")
    f["top line mean leap"] = ("melody", "mean absolute interval of the top line, semitones")
    f["bass steps"] = ("melody", "share of the bass line's intervals of 1-2 semitones")
    f["bass leaps"] = ("melody", "share of the bass line's intervals of 5+ semitones")
    f["bass mean leap"] = ("melody", "mean absolute interval of the bass line, semitones")
    f["top line repetition"] = ("melody", "1 - distinct/all 4-interval figures of the top line (motifs come back)")
    for label in NOTE_VALUES:
        f[f"IOI {label}"] = ("rhythm", f"share of inter-onset intervals of ~{label} quarter")
    for label in NOTE_VALUES:
        f[f"duration {label}"] = ("rhythm", f"share of note durations of ~{label} quarter")
    for label in ("on the beat", "half beat", "quarter beat", "triplet", "other"):
        f[f"onsets {label}"] = ("position", f"share of onsets {label} (beat phase: the piece's commonest)")
    for beat in range(4):
        f[f"bar beat {beat + 1} weight"] = ("position", f"share of note time starting on beat {beat + 1} of a "
                                                        "4-beat cycle (the heaviest first)")
    f["onsets per quarter"] = ("rhythm", "distinct onsets per quarter note")
    f["notes per quarter"] = ("texture", "note density")
    f["polyphony"] = ("texture", "mean pitches sounding at an onset")
    f["polyphony sd"] = ("texture", "spread of the pitches sounding at an onset")
    f["single-note onsets"] = ("texture", "share of onsets where one pitch sounds")
    f["chordal onsets"] = ("texture", "share of onsets of 3+ pitch classes that are a triad or seventh chord")
    f["semitone clashes"] = ("texture", "share of onsets whose sounding pitch classes hold a semitone")
    f["mean pitch"] = ("register", "mean MIDI pitch")
    f["pitch sd"] = ("register", "spread of MIDI pitch")
    f["top line pitch"] = ("register", "mean pitch of the top line")
    f["bass pitch"] = ("register", "mean pitch of the bass line")
    f["pitch span"] = ("register", "5th to 95th percentile of pitch, semitones")
    f["silence"] = ("structure", "share of the piece's time where nothing sounds")
    f["phrase ends"] = ("structure", f"top-line notes of {LONG:g}+ quarters per 16 quarters")
    f["phrase length sd"] = ("structure", "spread / mean of the quarters between phrase ends (0: regular)")
    f["held chords"] = ("structure", f"onsets where every sounding note lasts {LONG:g}+ quarters, per 16 quarters")
    f["contrary motion"] = ("voice motion", "share of top/bass moves in opposite directions")
    f["similar motion"] = ("voice motion", "share of top/bass moves in the same direction")
    f["oblique motion"] = ("voice motion", "share of moves where one of top and bass holds its pitch")
    f["parallel perfects"] = ("voice motion", "share of top/bass moves into the same fifth or octave (parallels)")
    return f


FEATURES = _features()
FEATURE_NAMES = list(FEATURES)
GROUPS = sorted({group for group, _ in FEATURES.values()})


def note_array(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    """Every pitched note as a row (onset, end, pitch), times in quarter notes from the start, sorted by onset."""
    notes = [(n.start, n.end, n.pitch) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    if not notes:
        return np.zeros((0, 3))
    arr = np.array(notes, float)
    times, tempi = midi.get_tempo_changes()
    if not len(times):
        times, tempi = np.array([0.0]), np.array([120.0])
    starts_q = np.concatenate([[0.0], np.cumsum(np.diff(times) * tempi[:-1] / 60.0)])

    def quarters(t: np.ndarray) -> np.ndarray:
        i = np.maximum(np.searchsorted(times, t, side="right") - 1, 0)
        return starts_q[i] + (t - times[i]) * tempi[i] / 60.0

    arr[:, 0], arr[:, 1] = quarters(arr[:, 0]), quarters(arr[:, 1])
    arr = arr[np.lexsort((arr[:, 2], arr[:, 0]))]
    arr[:, :2] -= arr[0, 0]
    return arr


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of values per bin (bins' right edges, the last open); zeros when there are none."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _key(notes: np.ndarray) -> tuple[int, bool, float]:
    """(tonic pitch class, minor, correlation) of the best Krumhansl-Kessler key, duration-weighted."""
    weights = np.bincount(notes[:, 2].astype(int) % 12, weights=notes[:, 1] - notes[:, 0], minlength=12)
    if weights.std() == 0:
        return 0, False, 0.0
    best = (0, False, -2.0)
    for minor, profile in ((False, MAJOR), (True, MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(weights, np.roll(profile, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, minor, r)
    return best


def _motion(top: np.ndarray, bass: np.ndarray) -> list[float]:
    """Shares of contrary, similar and oblique motion and of parallel fifths/octaves between two lines."""
    dt, db = np.diff(top), np.diff(bass)
    moving = (dt != 0) | (db != 0)
    if not moving.any():
        return [0.0, 0.0, 0.0, 0.0]
    dt, db = dt[moving], db[moving]
    interval = (top - bass) % 12
    before, after = interval[:-1][moving], interval[1:][moving]
    both = (dt != 0) & (db != 0)
    parallel = both & (np.sign(dt) == np.sign(db)) & (before == after) & np.isin(after, (0, 7))
    n = len(dt)
    return [float((both & (np.sign(dt) != np.sign(db))).sum() / n), float((both & (np.sign(dt) == np.sign(db))).sum()
                                                                           / n),
            float((~both).sum() / n), float(parallel.sum() / n)]


def piece_features(notes: np.ndarray) -> np.ndarray:
    """The FEATURES vector of one piece given as note_array rows (NaN where a feature is undefined)."""
    out = np.full(len(FEATURES), math.nan)
    if len(notes) < 2:
        return out
    start, end, pitch = notes[:, 0], notes[:, 1], notes[:, 2].astype(int)
    length = max(float(end.max()), 1e-9)
    values: list[float] = []
    tonic, minor, clarity = _key(notes)
    degrees = np.bincount((pitch - tonic) % 12, minlength=12) / len(pitch)
    values += [*degrees, float(minor), clarity]

    onsets = np.unique(np.round(start * GRID) / GRID)
    sounding = (start[None, :] <= onsets[:, None] + 1e-9) & (end[None, :] > onsets[:, None] + 1e-9)
    high = np.where(sounding, pitch[None, :], -1).max(axis=1)
    low = np.where(sounding, pitch[None, :], 999).min(axis=1)
    starting = np.abs(start[None, :] - onsets[:, None]) < 0.5 / GRID
    new_high = np.where(starting, pitch[None, :], -1).max(axis=1)
    new_low = np.where(starting, pitch[None, :], 999).min(axis=1)
    top = high[(new_high == high) & (high >= 0)]  # the top line: onsets where the highest sounding note is new
    bass = low[(new_low == low) & (low < 999)]
    top_steps, bass_steps = np.diff(top), np.diff(bass)
    values += [*_shares(top_steps, INTERVAL_EDGES), float(np.abs(top_steps).mean()) if len(top_steps) else math.nan]
    values += [float(np.isin(np.abs(bass_steps), (1, 2)).mean()) if len(bass_steps) else math.nan,
               float((np.abs(bass_steps) >= 5).mean()) if len(bass_steps) else math.nan,
               float(np.abs(bass_steps).mean()) if len(bass_steps) else math.nan]
    figures = [tuple(top_steps[i:i + 4]) for i in range(len(top_steps) - 3)]
    values.append(1 - len(set(figures)) / len(figures) if figures else math.nan)

    values += [*_shares(np.diff(onsets), NOTE_VALUE_EDGES), *_shares(end - start, NOTE_VALUE_EDGES)]
    phase = np.round(onsets * GRID).astype(int) % GRID
    phase = (phase - np.bincount(phase, minlength=GRID).argmax()) % GRID
    values += [float(np.isin(phase, s).mean()) for s in ((0,), (6,), (3, 9), (4, 8))]
    values.append(float((~np.isin(phase, (0, 6, 3, 9, 4, 8))).mean()))
    beat = np.floor(start + 1e-9).astype(int) % 4
    weight = np.bincount(beat, weights=end - start, minlength=4)
    weight = np.roll(weight, -int(weight.argmax())) / weight.sum()
    values += [*weight, len(onsets) / length]

    counts = sounding.sum(axis=1)
    classes = [frozenset(pitch[row] % 12) for row in sounding]
    full = [c for c in classes if len(c) >= 3]
    clash = [any((p + 1) % 12 in c for p in c) for c in classes]
    chordal = float(np.mean([any(c <= t for t in TRIADS_AND_SEVENTHS) for c in full])) if full else 0.0
    values += [len(notes) / length, float(counts.mean()), float(counts.std()), float((counts == 1).mean()),
               chordal, float(np.mean(clash))]
    values += [float(pitch.mean()), float(pitch.std()), float(top.mean()) if len(top) else math.nan,
               float(bass.mean()) if len(bass) else math.nan, float(np.subtract(*np.percentile(pitch, [95, 5])))]

    covered, reach = 0.0, 0.0  # time covered by sounding notes, walking the notes in onset order
    for s, e in zip(start, end, strict=True):
        if e > reach:
            covered += e - max(s, reach)
            reach = e
    values.append(max(0.0, 1 - covered / length))
    top_mask = (new_high == high) & (high >= 0)
    top_onsets = onsets[top_mask]
    top_len = np.array([end[(np.abs(start - o) < 0.5 / GRID) & (pitch == p)].max()
                        for o, p in zip(top_onsets, top, strict=True)]) - top_onsets if len(top) else np.zeros(0)
    ends = top_onsets[top_len >= LONG]
    gaps = np.diff(ends)
    values += [len(ends) * 16 / length, float(gaps.std() / gaps.mean()) if len(gaps) >= 2 and gaps.mean() else 0.0]
    shortest = np.where(sounding, (end - start)[None, :], np.inf).min(axis=1)
    values.append(float((shortest >= LONG).sum()) * 16 / length)
    both = (new_high == high) & (new_low == low) & (high >= 0) & (low < 999)
    values += _motion(high[both], low[both]) if both.sum() >= 2 else [math.nan] * 4
    out[:] = values
    return out


def excerpt(notes: np.ndarray, quarters: float, rng: np.random.Generator) -> np.ndarray:
    """The notes starting within `quarters` of a random onset (the whole piece when it is no longer), from 0."""
    if not len(notes) or notes[-1, 0] - notes[0, 0] < quarters:
        return notes
    onsets = np.unique(notes[:, 0])
    fits = onsets[onsets + quarters <= notes[-1, 0] + 1e-9]
    begin = float(rng.choice(fits)) if len(fits) else float(onsets[0])
    cut = notes[(notes[:, 0] >= begin - 1e-9) & (notes[:, 0] < begin + quarters - 1e-9)].copy()
    cut[:, :2] -= begin
    return cut


@dataclass
class Accuracy:
    """Cross-validated accuracy of one classifier: mean and standard deviation over the folds."""

    mean: float
    sd: float
    folds: list[float]


@dataclass
class Giveaway:
    """A feature that tells the pieces apart: its standardised logistic coefficient (+: more generated-like)."""

    name: str
    group: str
    coefficient: float
    real: float  # the feature's mean over the real pieces
    generated: float


@dataclass
class Realness:
    """How well classifiers tell generated from real pieces, and real from real (the control)."""

    pieces: int  # per class
    control_pieces: int  # per half of the control
    whole: bool  # whole pieces compared (else real excerpts cut to the generated pieces' lengths)
    quarters: float  # mean length of a generated piece, quarter notes
    logistic: Accuracy
    boosted: Accuracy
    control_logistic: Accuracy | None
    control_boosted: Accuracy | None
    groups: dict[str, float]  # logistic accuracy on each feature group alone
    giveaways: list[Giveaway]
    meaningful: bool  # enough pieces per class for the figure to mean something
    notes: list[str] = field(default_factory=list)
    real_source: str = ""  # where the real pieces came from, in words


def _models(seed: int):
    """The two classifiers, freshly made: scaled logistic regression and gradient-boosted trees."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                             LogisticRegression(C=LOGISTIC_C, max_iter=5000))
    boosted = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, min_samples_leaf=5,
                                             random_state=seed)
    return logistic, boosted


def _cross_validate(model, x: np.ndarray, y: np.ndarray, seed: int) -> Accuracy:
    """Stratified FOLDS-fold accuracy of model on (x, y)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    # One thread: the data are tiny, and OpenMP's threads wait on each other on a busy machine (48 s against 1 s)
    with threadpool_limits(1):
        scores = cross_val_score(model, x, y, cv=StratifiedKFold(FOLDS, shuffle=True, random_state=seed),
                                 scoring="accuracy")
    return Accuracy(float(scores.mean()), float(scores.std()), [float(s) for s in scores])


def classify(a: list[np.ndarray], b: list[np.ndarray], seed: int = 0) -> tuple[Accuracy, Accuracy, np.ndarray]:
    """Logistic and boosted cross-validated accuracy telling feature vectors a (label 0) from b (1), and the
    feature matrix."""
    x = np.array([*a, *b], float)
    y = np.array([0] * len(a) + [1] * len(b))
    logistic, boosted = _models(seed)
    return _cross_validate(logistic, x, y, seed), _cross_validate(boosted, x, y, seed), x


def realness_test(real: list[np.ndarray], generated: list[np.ndarray], *, whole: bool = False,
                  seed: int = 0) -> Realness | None:
    """Tell generated pieces from real ones (note_array rows each), with real-vs-real as the control; None when
    either side has fewer than MIN_PER_CLASS pieces."""
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    n = min(len(generated), len(real))
    if n < MIN_PER_CLASS:
        return None
    generated = [generated[i] for i in sorted(rng.permutation(len(generated))[:n])]
    lengths = [float(g[:, 1].max()) if len(g) else 0.0 for g in generated]
    order = rng.permutation(len(real))
    chosen, rest = [real[i] for i in order[:n]], [real[i] for i in order[n:]]

    def cut(songs: list[np.ndarray], count: int) -> list[np.ndarray]:
        if whole:
            return songs[:count]
        return [excerpt(s, q, rng) for s, q in zip(songs, lengths[:count], strict=False)]

    real_f = [piece_features(p) for p in cut(chosen, n)]
    gen_f = [piece_features(p) for p in generated]
    logistic, boosted, x = classify(real_f, gen_f, seed)

    m = min(n, len(rest) // 2)
    if m < MIN_PER_CLASS:  # too few songs besides the test's: the control splits all real songs in two
        m, rest = min(n, len(real) // 2), [real[i] for i in rng.permutation(len(real))]
        notes.append("the control's real pieces overlap the test's (too few real songs for both)")
    control_logistic = control_boosted = None
    if m >= MIN_PER_CLASS:
        half_a = [piece_features(p) for p in cut(rest[:m], m)]
        half_b = [piece_features(p) for p in cut(rest[m:2 * m], m)]
        control_logistic, control_boosted, _ = classify(half_a, half_b, seed)

    y = np.array([0] * n + [1] * n)
    groups = {}
    for group in GROUPS:
        columns = [i for i, name in enumerate(FEATURE_NAMES) if FEATURES[name][0] == group]
        groups[group] = _cross_validate(_models(seed)[0], x[:, columns], y, seed).mean
    model = _models(seed)[0].fit(x, y)
    coefficients = model[-1].coef_[0]
    giveaways = [Giveaway(FEATURE_NAMES[i], FEATURES[FEATURE_NAMES[i]][0], float(coefficients[i]),
                          float(np.nanmean(x[:n, i])), float(np.nanmean(x[n:, i])))
                 for i in np.argsort(-np.abs(coefficients))[:TOP_FEATURES]]
    meaningful = n >= MEANINGFUL_PER_CLASS
    if not meaningful:
        notes.append(f"only {n} pieces per class: too few for a meaningful figure "
                     f"(at least {MEANINGFUL_PER_CLASS}; evaluate --generate 60)")
    return Realness(pieces=n, control_pieces=m if control_logistic else 0, whole=whole,
                    quarters=float(np.mean(lengths)), logistic=logistic, boosted=boosted,
                    control_logistic=control_logistic, control_boosted=control_boosted, groups=groups,
                    giveaways=giveaways, meaningful=meaningful, notes=notes)
