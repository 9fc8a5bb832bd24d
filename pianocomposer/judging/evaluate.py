"""Stage 4: judge a bundle: likelihood on held-out songs, and music statistics of its pieces next to the corpus's.

Every music statistic is computed on MIDI decoded from tokens with the bundle's encoding, for the generated
pieces and for the corpus songs alike (never on the original MIDI files), so the comparison is like for like.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from pianocomposer.composing.compose import Sampler, blas_threads, compose_tokens
from pianocomposer.composing.four_parts import four_parts, reharmonize
from pianocomposer.config import DEFAULT_DATA_DIR, DEFAULT_OUTPUT_DIR, HARMONY_TEMPERATURE
from pianocomposer.errors import PianoComposerError, Unplayable
from pianocomposer.judging.metrics import (
    HISTOGRAM_LABELS,
    SPAN,
    STATISTICS,
    copied_spans,
    histogram_distance,
    histograms,
    loop_rate,
    music_statistics,
    normalise,
    token_spans,
)
from pianocomposer.judging.realness import FEATURES, FOLDS, Realness, note_array, realness_test
from pianocomposer.learning.bundle import Bundle, read_bundle, resolve_weights
from pianocomposer.learning.dataset import make_windows
from pianocomposer.learning.model import StepModel
from pianocomposer.reading.readers import MIDI_SUFFIXES
from pianocomposer.reading.tokens import load_tokens
from pianocomposer.writing.atomic import atomic_path

SCORE_BATCH = 256  # sequences scored together; bounds memory on large held-out sets
MAX_CORPUS_SONGS = 500  # corpus statistics of a larger corpus come from a fixed sample of this many songs
MAX_CHECKED_SONGS = 100  # corpus songs judged by the encoding's own rules (abc: abc2midi and music21 per tune)
MAX_HARMONISED = 100  # held-out pieces whose melody a harmonising model harmonises
DEFAULT_PIECES = 60  # generated pieces: enough for the real-or-generated classifiers (60 a class, as issue 23)
HARMONY_CANDIDATES = 4  # harmonisations sampled per melody, one kept (as `harmonize --candidates 4`)


@dataclass
class Score:
    """Next-token prediction quality over a set of scored tokens."""

    tokens: int
    cross_entropy: float  # nats per token
    perplexity: float
    accuracy: float
    top5_accuracy: float


@dataclass
class Likelihood:
    """How well the model predicts held-out songs, with full left context and within training's windows."""

    source: str  # "validation split" or "all of DATA"
    songs: int
    tokens: int
    unknown: int  # tokens not in the vocabulary: not scored, and scoring restarts after each
    unknown_examples: list[str]
    full: Score
    window: Score
    window_len: int


@dataclass
class Summary:
    """Mean and spread of one statistic over songs or pieces (NaN values left out)."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        """Mean and population standard deviation of the finite values."""
        arr = np.array([v for v in values if v is not None and math.isfinite(v)], float)
        if not len(arr):
            return cls(math.nan, math.nan, 0)
        return cls(float(arr.mean()), float(arr.std()), len(arr))


@dataclass
class EvaluationResult:
    """Everything evaluate measured; to_json() for scripts, table() for people."""

    bundle: Path
    data: Path
    likelihood: Likelihood | None
    corpus_source: str
    corpus: dict[str, Summary]
    generated: dict[str, Summary] | None
    histograms: dict[str, dict]
    loop_rate: dict[str, Summary | None]
    copy_rate: dict[str, float | None]
    checks: dict[str, dict] = field(default_factory=dict)  # the encoding's own rules: label, corpus, generated
    harmonization: dict | None = None  # judge_heldout on held-out pieces, for a harmonising model
    realness: Realness | None = None  # can classifiers tell the pieces from real ones (realness.py)
    base: dict | None = None  # a fine-tune's base bundle and its likelihood on the same held-out songs
    pieces: list[dict] = field(default_factory=list)
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def gap(self, name: str) -> float | None:
        """(generated mean - corpus mean) in corpus standard deviations."""
        if not self.generated:
            return None
        c, g = self.corpus[name], self.generated[name]
        if not (math.isfinite(c.mean) and math.isfinite(g.mean)):
            return None
        if c.sd > 0:
            return (g.mean - c.mean) / c.sd
        return 0.0 if math.isclose(g.mean, c.mean, abs_tol=1e-9) else math.copysign(math.inf, g.mean - c.mean)

    def to_json(self) -> dict:
        """A plain dict with every figure, for --json."""

        def clean(value):
            if isinstance(value, float):
                return round(value, 6) if math.isfinite(value) else None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [clean(v) for v in value]
            if isinstance(value, Path):
                return str(value)
            return value

        stats = {name: {"corpus": asdict(self.corpus[name]),
                        "generated": asdict(self.generated[name]) if self.generated else None,
                        "gap_sd": self.gap(name), "meaning": STATISTICS[name][1]} for name in STATISTICS}
        return clean({
            "bundle": self.bundle, "data": self.data,
            "likelihood": asdict(self.likelihood) if self.likelihood else None,
            "base": {**self.base, "likelihood": asdict(self.base["likelihood"])} if self.base else None,
            "corpus_source": self.corpus_source, "statistics": stats, "histograms": self.histograms,
            "loop_rate": {k: asdict(v) if v else None for k, v in self.loop_rate.items()},
            "copy_rate": self.copy_rate,
            "checks": {k: {side: asdict(v) if isinstance(v, Summary) else v for side, v in sides.items()}
                       for k, sides in self.checks.items()},
            "harmonization": self.harmonization,
            "realness": {**asdict(self.realness), "chance": 0.5, "features": len(FEATURES), "folds": FOLDS}
            if self.realness else None,
            "pieces": self.pieces, "plot": self.plot, "notes": self.notes,
            "seconds": self.seconds})

    def checks_labels(self) -> dict[str, tuple[str, str]]:
        """The encoding's checks as (label, meaning) by name."""
        return {name: (sides["label"], sides["meaning"]) for name, sides in self.checks.items()}

    def table(self) -> list[str]:
        """A readable terminal report."""
        lines = [f"bundle {self.bundle}, data {self.data}"]
        lk = self.likelihood
        if lk:
            lines += ["", f"likelihood on held-out songs ({lk.source}: {lk.songs} songs, {lk.tokens:,} tokens, "
                          f"{lk.unknown} unknown{' e.g. ' + ', '.join(lk.unknown_examples) if lk.unknown else ''})",
                      f"  {'':<26}{'full context':>14}{f'{lk.window_len}-token windows':>20}"]
            for key, label, fmt in [("cross_entropy", "cross-entropy (nats/token)", "{:.3f}"),
                                    ("perplexity", "perplexity", "{:.2f}"), ("accuracy", "accuracy", "{:.1%}"),
                                    ("top5_accuracy", "top-5 accuracy", "{:.1%}"), ("tokens", "scored tokens", "{:,}")]:
                lines.append(f"  {label:<26}{fmt.format(getattr(lk.full, key)):>14}"
                             f"{fmt.format(getattr(lk.window, key)):>20}")
            if self.base:
                b = self.base["likelihood"]
                lines.append(f"  {'its base (' + self.base['name'] + '), nats/token':<26}"
                             f"{b.full.cross_entropy:>14.3f}{b.window.cross_entropy:>20.3f}")
        n_gen = self.generated[next(iter(STATISTICS))].n if self.generated else 0
        lines += ["", f"music statistics per song/piece, on decoded tokens (corpus: {self.corpus_source}; "
                      f"generated: {len(self.pieces)} pieces)",
                  f"  {'statistic':<32}{'corpus mean ± sd':>20}{'generated mean ± sd':>22}{'gap (sd)':>10}"]

        def pair(s: Summary | None) -> str:
            return f"{s.mean:.3f} ± {s.sd:.3f}" if s and s.n else "-"

        for name, (label, _meaning) in STATISTICS.items():
            gap = self.gap(name)
            flag = "" if gap is None or abs(gap) <= 1 else " *"
            lines.append(f"  {label:<32}{pair(self.corpus[name]):>20}"
                         f"{pair(self.generated[name] if self.generated else None):>22}"
                         f"{'-' if gap is None else f'{gap:+.2f}':>10}{flag}")
        lines.append(f"  {'loop rate':<32}{pair(self.loop_rate['corpus']):>20}{pair(self.loop_rate['generated']):>22}")

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:.1%}"

        for sides in self.checks.values():
            lines.append(f"  {sides['label']:<32}{pair(sides['corpus']):>20}{pair(sides['generated']):>22}")
        copy_label = f"copy rate ({self.copy_rate['span_tokens']}-token spans)"
        lines.append(f"  {copy_label:<32}{pct(self.copy_rate['heldout']) + ' held-out':>20}"
                     f"{pct(self.copy_rate['generated']):>22}")
        if n_gen:
            pooled = " / ".join(f"{self.histograms[k]['distance']:.3f}" for k in ("pitch_class", "ioi", "duration"))
            lines.append(f"  {'all pieces vs all corpus songs':<32}{'':>20}{pooled:>22}  (pitch class / IOI / "
                         "duration histogram distance)")
        if n_gen and any((g := self.gap(n)) is not None and abs(g) > 1 for n in STATISTICS):
            lines.append("  * more than one corpus standard deviation from the corpus mean")
        if self.harmonization:
            h = self.harmonization
            lines += ["", f"the melodies of {h['pieces']} held-out pieces harmonised (the most likely of "
                          f"{h['candidates']}), judged beside the pieces' own lower voices",
                      f"  {'figure':<32}{'original':>20}{'harmonised':>22}"]
            for name, (label, _meaning) in {**self.checks_labels(), "nats_per_frame": (
                    "lower voices, nats per frame", "")}.items():
                lines.append(f"  {label:<32}{h['original'][name]:>20.3f}{h['model'][name]:>22.3f}")
        if self.realness:
            lines += ["", *realness_lines(self.realness)]
        lines += [f"note: {n}" for n in self.notes]
        if self.plot:
            lines.append(f"histograms: {self.plot}")
        s = self.seconds
        lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items()))
        return lines


def realness_lines(r: Realness) -> list[str]:
    """The real-or-generated test as table lines."""
    def acc(a) -> str:
        return f"{a.mean:.1%} ± {a.sd:.1%}" if a else "-"

    compared = ("whole generated pieces vs whole real pieces" if r.whole else
                f"generated pieces vs real excerpts of the same lengths (mean {r.quarters:.0f} quarters)")
    lines = [f"real or generated? classifiers on {len(FEATURES)} features per piece, {FOLDS}-fold cross-validated "
             "accuracy ± sd over folds (50 % = chance, lower is better)",
             f"  {r.pieces} {compared}; control: {r.control_pieces} real vs {r.control_pieces} other real "
             f"(real: {r.real_source})",
             f"  {'classifier':<32}{'generated vs real':>20}{'control (real vs real)':>26}"]
    for label, a, c in (("logistic regression", r.logistic, r.control_logistic),
                        ("gradient-boosted trees", r.boosted, r.control_boosted)):
        lines.append(f"  {label:<32}{acc(a):>20}{acc(c):>26}")
    lines.append("  one feature group alone (logistic): " + ", ".join(
        f"{g} {v:.0%}" for g, v in sorted(r.groups.items(), key=lambda kv: -kv[1])))
    lines.append("  what gives the pieces away (standardised logistic coefficient, + = more in generated; "
                 "mean real -> generated):")
    lines += [f"    {g.name + ' (' + g.group + ')':<40}{g.coefficient:+.2f}   {g.real:.3f} -> {g.generated:.3f}"
              for g in r.giveaways]
    lines += [f"  note: {n}" for n in r.notes]
    return lines


def _accumulate(net, inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray, bar: tqdm | None) -> np.ndarray:
    """Sums of (tokens, -log p, top-1 hits, top-5 hits) over weighted positions; every row starts from zero state.

    Each row's weighted positions must be a prefix of the row (as padding leaves them): rows are sorted by
    length and the batch shrinks as rows finish, so a few long songs do not make every step pay for all rows.
    """
    totals = np.zeros(4)
    lengths = (weights > 0).sum(axis=1)
    order = np.argsort(-lengths, kind="stable")
    inputs, targets, weights, lengths = inputs[order], targets[order], weights[order], lengths[order]
    for lo in range(0, len(inputs), SCORE_BATCH):
        rows = slice(lo, lo + SCORE_BATCH)
        x, y, w, n = inputs[rows], targets[rows], weights[rows], lengths[rows]
        state = net.initial_state(len(x))
        for t in range(int(n.max(initial=0))):
            k = int((n > t).sum())  # rows still running: a prefix, as rows are sorted by length
            state = [s[:k] for s in state]
            probs, state = net.step(x[:k, t], state)
            target_p = probs[np.arange(k), y[:k, t]]
            rank = (probs > target_p[:, None]).sum(axis=1)
            wt = w[:k, t]
            totals += [wt.sum(), -(wt * np.log(np.maximum(target_p, 1e-30))).sum(), (wt * (rank == 0)).sum(),
                       (wt * (rank < 5)).sum()]
            if bar is not None:
                bar.update(k)
    return totals


def _score(totals: np.ndarray) -> Score:
    """A Score from _accumulate's sums."""
    n = round(float(totals[0]))
    if not n:
        return Score(0, math.nan, math.nan, math.nan, math.nan)
    ce = totals[1] / n
    return Score(n, float(ce), float(math.exp(ce)), float(totals[2] / n), float(totals[3] / n))


def known_segments(bundle: Bundle, songs: list[list[str]]) -> tuple[list[np.ndarray], int, list[str]]:
    """Each song cut at tokens unknown to the vocabulary into runs of ids; the count and a few unknown tokens."""
    segments, unknown, examples = [], 0, []
    for song in songs:
        run: list[str] = []
        for token in [*song, None]:
            if token is not None and token in bundle.vocabulary:
                run.append(token)
                continue
            if len(run) >= 2:
                segments.append(bundle.vocabulary.encode(run))
            run = []
            if token is not None:
                unknown += 1
                if token not in examples and len(examples) < 3:
                    examples.append(token)
    return segments, unknown, examples


def score_likelihood(net, bundle: Bundle, songs: list[list[str]], source: str, progress: bool = False) -> Likelihood:
    """Cross-entropy, perplexity, accuracy and top-5 accuracy of held-out songs, full context and windowed.

    Both scores count the same targets: every known token that follows a known token in its song. The full
    score carries the LSTM state from the song's (or the unknown token's) start; the window score uses
    training's validation windows (make_windows, the bundle's seq_len), each run from a zero state.
    """
    segments, unknown, examples = known_segments(bundle, songs)
    width = max((len(s) for s in segments), default=1)
    padded = np.zeros((len(segments), width), np.int32)
    mask = np.zeros((len(segments), width - 1), np.float32)
    for row, seg in enumerate(segments):
        padded[row, :len(seg)] = seg
        mask[row, :len(seg) - 1] = 1.0
    seq_len = bundle.config.seq_len
    x_win, y_win, w_win = make_windows(segments, seq_len)
    total = int(mask.sum() + w_win.sum())
    with tqdm(total=total, desc="score", unit="token", disable=not progress or None) as bar:
        full = _score(_accumulate(net, padded[:, :-1], padded[:, 1:], mask, bar))
        window = _score(_accumulate(net, x_win, y_win, w_win, bar))
    if full.tokens != window.tokens:  # both must count the same targets, or the comparison is meaningless
        raise AssertionError(f"full-context scored {full.tokens} tokens, windows {window.tokens}")
    return Likelihood(source, len(songs), sum(len(s) for s in songs), unknown, examples, full, window, seq_len)


def plays(encoding, tokens: list[str]) -> bool:
    """Whether a piece decodes to MIDI (an abc tune can be text that music21 cannot play)."""
    try:
        encoding.decode(tokens)
        return True
    except Unplayable:
        return False


def _statistics(token_lists: list[list[str]], encoding, reference: dict[str, np.ndarray] | None,
                desc: str, progress: bool) -> tuple[list[dict[str, float]], dict[str, np.ndarray], list[np.ndarray]]:
    """Per-song statistics of songs decoded to MIDI, their pooled histogram counts and their notes (note_array).

    The histogram distances are taken to `reference` (pooled counts), or to the songs' own pooled counts.
    """
    rows, hists, notes = [], [], []
    for tokens in tqdm(token_lists, desc=desc, unit="song", disable=not progress or None):
        midi = encoding.decode(tokens)
        rows.append(music_statistics(midi))
        hists.append(histograms(midi))
        notes.append(note_array(midi))
    pooled = {k: np.sum([h[k] for h in hists], axis=0) if hists else np.zeros(len(HISTOGRAM_LABELS[k]))
              for k in HISTOGRAM_LABELS}
    ref = reference if reference is not None else pooled
    for row, h in zip(rows, hists, strict=True):
        for k in HISTOGRAM_LABELS:
            row[f"{k}_distance"] = (
                histogram_distance(h[k], ref[k]) if h[k].sum() else math.nan)
    return rows, pooled, notes


def _plot(target: Path, corpus: dict[str, np.ndarray], generated: dict[str, np.ndarray] | None,
          title: str, realness: Realness | None = None) -> None:
    """One PNG: the corpus's and the generated pieces' pitch-class, IOI and duration histograms side by side, and
    the real-or-generated classifiers' accuracy when measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"pitch_class": "pitch class", "ioi": "inter-onset interval (quarters)", "duration": "duration (quarters)"}
    fig, axes = plt.subplots(1, 3 + (realness is not None), figsize=(15 + 5 * (realness is not None), 4), dpi=100)
    for ax, (key, label) in zip(axes, names.items(), strict=False):
        x = np.arange(len(HISTOGRAM_LABELS[key]))
        width = 0.4 if generated is not None else 0.8
        ax.bar(x - (width / 2 if generated is not None else 0), normalise(corpus[key]), width, label="corpus")
        if generated is not None:
            ax.bar(x + width / 2, normalise(generated[key]), width, label="generated")
        ax.set_xticks(x, HISTOGRAM_LABELS[key])
        ax.set_xlabel(label)
        ax.set_ylabel("share of notes" if key != "ioi" else "share of intervals")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
    if realness is not None:
        _plot_realness(axes[3], realness)
    fig.suptitle(title)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def _plot_realness(ax, r: Realness) -> None:
    """Bars of the classifiers' accuracy (generated vs real, and the control), chance marked, the top giveaways."""
    pairs = [("logistic", r.logistic, r.control_logistic), ("boosted", r.boosted, r.control_boosted)]
    x = np.arange(len(pairs))
    for offset, side, label in ((-0.2, 1, "generated vs real"), (0.2, 2, "real vs real (control)")):
        accs = [p[side] for p in pairs]
        ax.bar(x + offset, [a.mean if a else 0 for a in accs], 0.4, yerr=[a.sd if a else 0 for a in accs],
               capsize=4, label=label)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, [p[0] for p in pairs])
    ax.set_ylim(0, 1.45)
    ax.set_ylabel(f"{FOLDS}-fold accuracy ({r.pieces} pieces each)")
    ax.set_title("gives away: " + ", ".join(g.name for g in r.giveaways[:3]), fontsize=8)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    ax.grid(alpha=0.3, axis="y")


def plot_path(out: Path) -> Path:
    """out itself when it names a .png file, else a new evaluate-<date>-<time>[-n].png in the folder out."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        return out
    stem = f"evaluate-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, n = out / f"{stem}.png", 1
    while path.exists():
        n += 1
        path = out / f"{stem}-{n}.png"
    return path


def real_midi_files(folder: Path) -> list[Path]:
    """The MIDI files in folder (searched recursively) to set generated pieces beside; one-line error if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PianoComposerError(f"--real {folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    if not files:
        raise PianoComposerError(f"--real {folder}: no .mid or .midi files in it")
    return files


def read_real(files: list[Path], notes: list[str]) -> list[np.ndarray]:
    """The notes (note_array) of each readable file; the unreadable are counted in notes."""
    import pretty_midi

    pieces, failed = [], 0
    for path in files:
        try:
            pieces.append(note_array(pretty_midi.PrettyMIDI(str(path))))
        except Exception:  # a broken file: counted and named in the report, never fatal
            failed += 1
    if failed:
        notes.append(f"real or generated: {failed} of {len(files)} MIDI files could not be read and were left out")
    return [p for p in pieces if len(p)]


def _blas_limited(fn):
    """fn run with BLAS at one thread when the cores are busy (compose.blas_threads): on a shared 2-core machine
    scoring and generating for evaluate took 56 s with the default threads, 5 s with one."""

    @functools.wraps(fn)
    def limited(*args, **kwargs):
        with threadpool_limits(blas_threads(), "blas"):
            return fn(*args, **kwargs)

    return limited


@_blas_limited
def evaluate(weights: Path, data: Path | None = None, *, generate: int = DEFAULT_PIECES, length: int = 0,
             seed: int = 0, out: Path | None = DEFAULT_OUTPUT_DIR, progress: bool = True,
             constrained: bool = True, realness: bool = True, sampler: Sampler | None = None,
             real: Path | None = None) -> EvaluationResult:
    """Score held-out songs, compare the statistics of `generate` new pieces (drawn by `sampler`, within the
    encoding's constraint unless `constrained` is False) with the training corpus's, and (`realness`) let
    classifiers try to tell them from corpus songs (decoded from tokens, or the MIDI files in the folder `real`)."""
    if generate < 0:
        raise PianoComposerError(f"--generate must be >= 0 (got {generate})")
    if length < 0:
        raise PianoComposerError(f"--length must be >= 0, 0 = the lengths of corpus songs (got {length})")
    if sampler is not None:
        sampler.check()
    real_files = real_midi_files(real) if real is not None and realness else None
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    data = Path(data) if data is not None else DEFAULT_DATA_DIR
    tokens = load_tokens(data)
    bundle = read_bundle(weights)
    encoding = bundle.encoding
    if (tokens.encoding, tokens.encoding_params) != (bundle.encoding_name, encoding.params):
        raise PianoComposerError(f"{data}: the tokens use encoding {tokens.encoding!r} {tokens.encoding_params}, "
                                 f"the bundle {weights} {bundle.encoding_name!r} {encoding.params}")
    net = bundle.step_model()
    seconds["load"] = time.perf_counter() - t0
    notes: list[str] = []

    split = bundle.meta.get("split") or {"train": [], "val": []}
    train_names = set(split.get("train", []))
    training = [s.tokens for s in tokens.songs if s.source in train_names]
    heldout = [s.tokens for s in tokens.songs if s.source not in train_names]
    if training:
        source = "validation split" if {s.source for s in tokens.songs} - train_names <= set(split.get("val", [])) \
            else "songs not trained on"
        if len(training) < len(train_names):
            notes.append(f"{data} holds {len(training)} of the bundle's {len(train_names)} training songs")
    else:
        source = "all of DATA"
    if not tokens.songs:
        raise PianoComposerError(f"{data}: the tokens file holds no songs")

    t0 = time.perf_counter()
    likelihood = None
    if heldout:
        likelihood = score_likelihood(net, bundle, heldout, source, progress)
        if not likelihood.full.tokens:
            notes.append("no held-out song has two known tokens in a row: nothing to score")
    else:
        notes.append(f"{data} holds only songs the bundle trained on: no held-out likelihood")
    base = None
    if heldout and bundle.meta.get("base"):
        origin = bundle.meta["base"]
        try:
            base_bundle = read_bundle(resolve_weights(origin["bundle"]))
        except PianoComposerError as exc:
            notes.append(f"the base bundle is not at hand, so its likelihood is not beside this one ({exc})")
        else:
            base = {"name": origin["name"], "bundle": str(base_bundle.path),
                    "likelihood": score_likelihood(base_bundle.step_model(), base_bundle, heldout, source, progress)}
    seconds["score"] = time.perf_counter() - t0
    harmonization = None
    if encoding.harmonizes and heldout:
        t0 = time.perf_counter()
        harmonization = judge_heldout(bundle, net, heldout[:MAX_HARMONISED], np.random.default_rng(seed),
                                      HARMONY_CANDIDATES, rules=constrained)
        seconds["harmonize"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if training:
        corpus_songs, corpus_source = training, f"{len(training)} training songs"
    else:
        corpus_songs, corpus_source = heldout, f"{len(heldout)} songs of DATA (the training songs are not in it)"
        notes.append("the training songs are not in DATA: the corpus statistics are DATA's and the copy rate "
                     "cannot be measured")
    if len(corpus_songs) > MAX_CORPUS_SONGS:  # a big corpus: its statistics from a fixed sample
        picks = np.random.default_rng(0).choice(len(corpus_songs), MAX_CORPUS_SONGS, replace=False)
        corpus_songs = [corpus_songs[i] for i in sorted(picks)]
        corpus_source += f" (statistics of a sample of {MAX_CORPUS_SONGS})"
    corpus_rows, corpus_hist, corpus_notes = _statistics(corpus_songs, encoding, None, "corpus statistics", progress)
    # Copy-rate spans cover SPAN note onsets whatever the encoding: SPAN tokens for cpc (a token per onset),
    # more for encodings that spend several tokens on an onset (pitch, duration, time shift).
    onsets = corpus_hist["ioi"].sum() + len(corpus_songs)
    span = max(SPAN, round(SPAN * sum(len(s) for s in corpus_songs) / onsets)) if onsets else SPAN
    known = token_spans(training, span) if training else None
    seconds["corpus"] = time.perf_counter() - t0

    def summarise(rows: list[dict[str, float]]) -> dict[str, Summary]:
        return {name: Summary.of([r[name] for r in rows]) for name in STATISTICS}

    def pooled_copy(songs: list[list[str]]) -> float | None:
        if known is None:
            return None
        found, total = np.sum([copied_spans(s, known, span) for s in songs], axis=0) if songs else (0, 0)
        return float(found / total) if total else None

    generated = gen_hist = None
    pieces: list[dict] = []
    gen_loop = None
    if generate:
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        primers, labels = encoding.start(bundle.seeds, generate, rng)
        lengths = [length] * generate if length else encoding.piece_lengths([len(s) for s in corpus_songs],
                                                                            generate, rng)
        pieces_made = compose_tokens(bundle, net, primers, max(lengths), sampler or Sampler(), rng,
                                     progress, constrained)
        excerpts = [(label, encoding.excerpt(p, n)) for label, p, n in zip(labels, pieces_made, lengths, strict=True)]
        kept = [(label, p) for label, p in excerpts if encoding.incomplete(p, len(p)) is None and plays(encoding, p)]
        labels, generated_tokens = [k[0] for k in kept], [k[1] for k in kept]
        if len(kept) < generate:
            notes.append(f"{len(kept)} of {generate} generated pieces are whole and play; statistics are theirs")
        seconds["generate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        gen_rows, gen_hist, gen_notes = _statistics(generated_tokens, encoding, corpus_hist, "piece statistics",
                                                    progress)
        generated = summarise(gen_rows)
        for i, (toks, row) in enumerate(zip(generated_tokens, gen_rows, strict=True)):
            found, total = copied_spans(toks, known, span) if known is not None else (0, 0)
            pieces.append({"primer": labels[i], "tokens": len(toks),
                           "loop_rate": loop_rate(toks), "copy_rate": found / total if total else None, **row})
        gen_loop = Summary.of([p["loop_rate"] for p in pieces])
        seconds["pieces"] = time.perf_counter() - t0
        gen_copy = pooled_copy(generated_tokens)
    else:
        gen_copy = None

    real_or_not = None
    if realness and generate and importlib.util.find_spec("sklearn") is None:
        notes.append("real or generated: skipped, its classifiers need scikit-learn: pip install "
                     "'pianocomposer[eval]'")
    elif realness and generate:
        t0 = time.perf_counter()
        pool = corpus_notes if real_files is None else read_real(real_files, notes)
        if real_files is None and training and len(pool) < 3 * len(gen_notes):  # held-out songs join a small corpus
            pool = pool + [note_array(encoding.decode(s)) for s in heldout[:MAX_CORPUS_SONGS]]
        # pieces that end themselves (whole chorales) are set beside whole songs, unless --length cut them
        whole = encoding.ends_itself and not length
        real_or_not = realness_test(pool, gen_notes, whole=whole, seed=seed)
        if real_or_not is not None:
            real_or_not.real_source = (f"{len(pool)} MIDI files of {real}" if real_files is not None else
                                       f"{len(pool)} corpus songs decoded from tokens")
        if real_or_not is None:
            notes.append(f"real or generated: {len(gen_notes)} pieces are too few for the classifiers "
                         f"(at least 5; --generate {DEFAULT_PIECES})")
        seconds["realness"] = time.perf_counter() - t0

    plot = None
    if out is not None:
        plot = plot_path(out)
        _plot(plot, corpus_hist, gen_hist, f"{Path(weights).name}: corpus ({corpus_source}) vs "
                                           f"{len(pieces)} generated pieces", real_or_not)
    labels = HISTOGRAM_LABELS
    hist_json = {k: {"bins": labels[k], "corpus": normalise(corpus_hist[k]).tolist(),
                     "generated": normalise(gen_hist[k]).tolist() if gen_hist else None,
                     # all pieces pooled against all corpus songs pooled
                     "distance": histogram_distance(gen_hist[k], corpus_hist[k]) if gen_hist else None}
                 for k in labels}
    corpus_checks = [encoding.check(song) for song in corpus_songs[:MAX_CHECKED_SONGS]]
    piece_checks = [encoding.check(p) for _, p in excerpts] if generate else []  # every piece, whole or not
    checks = {name: {"label": label, "meaning": meaning, "corpus": Summary.of([c[name] for c in corpus_checks]),
                     "generated": Summary.of([c[name] for c in piece_checks]) if piece_checks else None}
              for name, (label, meaning) in encoding.checks.items()}
    return EvaluationResult(
        bundle=Path(weights), data=data, likelihood=likelihood, corpus_source=corpus_source,
        corpus=summarise(corpus_rows), generated=generated, histograms=hist_json,
        loop_rate={"corpus": Summary.of([loop_rate(s) for s in corpus_songs]), "generated": gen_loop},
        copy_rate={"generated": gen_copy, "heldout": pooled_copy(heldout) if training else None, "span_tokens": span},
        pieces=pieces, plot=plot, notes=notes, checks=checks, harmonization=harmonization, realness=real_or_not,
        base=base, seconds={k: round(v, 3) for k, v in seconds.items()})


def judge_heldout(bundle: Bundle, net: StepModel, songs: list[list[str]], rng: np.random.Generator,
                  candidates: int = 4, rules: bool = True) -> dict:
    """Four-voice pieces' sopranos harmonised (the most likely of `candidates`) and judged beside the pieces' own
    lower voices: the mean voice-leading figures of both and each one's nats per frame under the model."""
    encoding = bundle.encoding
    written = reharmonize(bundle, net, songs, rng, candidates, Sampler(temperature=HARMONY_TEMPERATURE), rules)
    own = four_parts(bundle, net, [encoding.split(song) for song in songs], rng, figuration=(0.0, 0.0))

    def mean(rows: list[dict]) -> dict:
        return {name: float(np.nanmean([r[name] for r in rows])) for name in rows[0]}

    model = [{**encoding.check(piece), "nats_per_frame": nats} for piece, nats in written]
    original = [{**encoding.check(song), "nats_per_frame": nats} for song, (_, nats) in zip(songs, own, strict=True)]
    return {"pieces": len(songs), "candidates": candidates, "temperature": HARMONY_TEMPERATURE, "rules": rules,
            "model": mean(model), "original": mean(original)}
