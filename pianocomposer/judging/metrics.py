"""Music statistics of one piece of MIDI, and the token-level memorisation measures (copy rate).

The six muspy metrics (pitch-class entropy, scale consistency, groove consistency, empty-beat rate, polyphony,
pitch range) are muspy's definitions at muspy's default resolution of 24 ticks per quarter, computed here in numpy
(see music_statistics). Note density, the inter-onset-interval, duration and pitch-class histograms, the
histogram distance and the copy rate are written here: no kept library has them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pretty_midi

RESOLUTION = 24  # muspy ticks per quarter note; every cpc onset (a half quarter) falls on a tick
SPAN = 8  # tokens in a span for the copy rate
PITCH_CLASS_LABELS = ["C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B"]
# Note values in quarter notes: each histogram bin is one value, its edges halfway (roughly) to the next.
DURATION_VALUES = [0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
DURATION_LABELS = ["1/8", "1/4", "1/2", "3/4", "1", "3/2", "2", "3", "4+"]
DURATION_EDGES = np.array([0.1875, 0.375, 0.625, 0.875, 1.25, 1.75, 2.5, 3.5])
HISTOGRAM_LABELS = {"pitch_class": PITCH_CLASS_LABELS, "ioi": DURATION_LABELS, "duration": DURATION_LABELS}
# name -> (label, what it means); the order is the report's order.
STATISTICS = {
    "pitch_class_entropy": ("pitch-class entropy (bits)", "spread of notes over the 12 pitch classes"),
    "scale_consistency": ("scale consistency", "largest share of notes in one major/minor scale"),
    "groove_consistency": ("groove consistency", "1 - onset-pattern change between neighbouring bars"),
    "empty_beat_rate": ("empty-beat rate", "share of beats with no sounding note"),
    "polyphony": ("polyphony", "pitches sounding together, where any sounds"),
    "pitch_range": ("pitch range (semitones)", "highest minus lowest pitch"),
    "note_density": ("note density (notes/beat)", "notes per quarter note"),
    "pitch_class_distance": ("pitch-class histogram distance", "total variation distance to the corpus's"),
    "ioi_distance": ("IOI histogram distance", "same, for inter-onset intervals"),
    "duration_distance": ("duration histogram distance", "same, for note durations"),
}


def _ticks(midi: pretty_midi.PrettyMIDI, seconds: np.ndarray) -> np.ndarray:
    """Times in seconds as ticks of RESOLUTION per quarter, as muspy.from_pretty_midi maps them (its tempo map,
    Python's round-half-even)."""
    realtimes, tempi = midi.get_tempo_changes()
    realtimes, tempi = list(realtimes), list(tempi)
    if len(tempi) > 1:  # muspy's pruning of tempo changes, as it is written (last_time is never moved on)
        last_tempo, last_time, i = tempi[0], realtimes[0], 1
        while i < len(realtimes):
            if tempi[i] == last_tempo:
                del realtimes[i], tempi[i]
            elif realtimes[i] == last_time:
                del realtimes[i - 1], tempi[i - 1]
            else:
                last_tempo, i = tempi[i], i + 1
    realtimes, tempi = np.array(realtimes, float), np.array(tempi, float)
    if len(tempi) == 1:
        return np.round(seconds * (RESOLUTION * tempi[0] / 60.0)).astype(np.int64)
    starts = np.insert(np.round(np.cumsum(np.diff(realtimes) * RESOLUTION * tempi[:-1] / 60.0)).astype(np.int64), 0, 0)
    idx = np.searchsorted(realtimes, seconds, side="right") - 1
    return np.round(starts[idx] + (seconds - realtimes[idx]) * (RESOLUTION * tempi[idx] / 60.0)).astype(np.int64)


def measure_resolution(midi: pretty_midi.PrettyMIDI) -> int:
    """Ticks per bar from the first time signature; 4/4 when the MIDI has none (decoded cpc tokens have none)."""
    if midi.time_signature_changes:
        ts = midi.time_signature_changes[0]
        return max(1, round(RESOLUTION * 4 * ts.numerator / ts.denominator))
    return 4 * RESOLUTION


def _quarters(midi: pretty_midi.PrettyMIDI, seconds: float) -> float:
    """A time in seconds as quarter notes from the start, following the file's tempo map."""
    return midi.time_to_tick(seconds) / midi.resolution


def _notes(midi: pretty_midi.PrettyMIDI) -> list[pretty_midi.Note]:
    """Every pitched note."""
    return [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]


def _duration_bins(values: Iterable[float]) -> np.ndarray:
    """Counts of note values (quarters) per DURATION_LABELS bin."""
    return np.bincount(np.searchsorted(DURATION_EDGES, np.asarray(list(values), float), side="right"),
                       minlength=len(DURATION_VALUES)).astype(float)


def histograms(midi: pretty_midi.PrettyMIDI) -> dict[str, np.ndarray]:
    """Counts: notes per pitch class, inter-onset intervals and note durations per note-value bin."""
    notes = _notes(midi)
    onsets = sorted({round(_quarters(midi, n.start), 6) for n in notes})
    return {"pitch_class": np.bincount([n.pitch % 12 for n in notes], minlength=12).astype(float),
            "ioi": _duration_bins(np.diff(onsets)),
            "duration": _duration_bins(_quarters(midi, n.end) - _quarters(midi, n.start) for n in notes)}


def normalise(counts: np.ndarray) -> np.ndarray:
    """Counts as shares summing to 1 (all NaN when there is nothing to count)."""
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), math.nan)


def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance between two histograms (0 = same shape, 1 = disjoint)."""
    return float(0.5 * np.abs(normalise(np.asarray(p, float)) - normalise(np.asarray(q, float))).sum())


MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
MINOR = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)
SCALES = np.array([np.roll(scale, root) for scale in (MAJOR, MINOR) for root in range(12)])  # (24, 12)


def music_statistics(midi: pretty_midi.PrettyMIDI) -> dict[str, float]:
    """muspy's six metrics, computed as muspy computes them, and the note density of one piece (NaN where a metric
    is undefined, e.g. no notes).

    muspy's definitions (metrics.py, 0.5) on its ticks (from_pretty_midi at 24 per quarter), in numpy: the same
    figures to the last bit (tests/test_metrics.py checks them against muspy), without muspy's dependencies
    (pypianoroll and SciPy, 150 MB of the core install). As muspy does, the empty-beat rate and groove consistency
    count drum notes too; the others leave them out.
    """
    notes = _notes(midi)
    if not notes:
        return dict.fromkeys(["pitch_class_entropy", "scale_consistency", "groove_consistency", "empty_beat_rate",
                              "polyphony", "pitch_range", "note_density"], math.nan)
    everything = [n for inst in midi.instruments for n in inst.notes]
    seconds = np.array([n.start for n in everything])
    start = _ticks(midi, seconds)
    end = _ticks(midi, seconds + (np.array([n.end for n in everything]) - seconds))  # muspy: time + duration
    pitched = np.array([not inst.is_drum for inst in midi.instruments for _ in inst.notes])
    pitch = np.array([n.pitch for n in everything])
    length = int(end.max())

    counts = np.bincount(pitch[pitched] % 12, minlength=12).astype(float)
    share = counts / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = float(-np.nansum(share * np.log2(share)))
    scale = float((SCALES @ counts).max() / counts.sum())

    if length < 1:
        empty = math.nan
    else:
        beats = np.zeros(length // RESOLUTION + 2, int)
        np.add.at(beats, start // RESOLUTION, 1)
        np.add.at(beats, end // RESOLUTION + 1, -1)
        empty = 1 - np.count_nonzero(np.cumsum(beats)[:-1] > 0) / (length // RESOLUTION + 1)

    roll = np.zeros((length + 1, 128), int)
    np.add.at(roll, (start[pitched], pitch[pitched]), 1)
    np.add.at(roll, (end[pitched], pitch[pitched]), -1)
    sounding = np.cumsum(roll, axis=0)[:-1] > 0
    played = np.count_nonzero(sounding.any(axis=1))
    polyphony = sounding.sum() / played if played else math.nan

    bar = measure_resolution(midi)
    n_bars = length // bar + 1
    if n_bars < 2:
        groove = math.nan
    else:
        patterns = np.zeros((n_bars, bar), bool)
        patterns[start // bar, start % bar] = True
        groove = 1 - np.count_nonzero(patterns[:-1] != patterns[1:]) / (bar * (n_bars - 1))

    quarters = max(_quarters(midi, n.end) for n in notes)
    return {"pitch_class_entropy": entropy, "scale_consistency": scale, "groove_consistency": float(groove),
            "empty_beat_rate": float(empty), "polyphony": float(polyphony),
            "pitch_range": float(pitch[pitched].max() - pitch[pitched].min()),
            "note_density": len(notes) / quarters if quarters > 0 else math.nan}


def token_spans(songs: Iterable[Sequence[str]], n: int = SPAN) -> set[tuple[str, ...]]:
    """Every n-token span inside each song (spans never cross from one song into the next)."""
    return {tuple(song[i:i + n]) for song in songs for i in range(len(song) - n + 1)}


def copied_spans(tokens: Sequence[str], known: set[tuple[str, ...]], n: int = SPAN) -> tuple[int, int]:
    """(spans of tokens found verbatim in known, all n-token spans of tokens)."""
    spans = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return sum(s in known for s in spans), len(spans)


def copy_rate(tokens: Sequence[str], known: set[tuple[str, ...]], n: int = SPAN) -> float:
    """Share of the n-token spans of tokens found verbatim in known (NaN if tokens is shorter than n)."""
    found, total = copied_spans(tokens, known, n)
    return found / total if total else math.nan


def loop_rate(tokens: list[str], min_repeats: int = 8, max_period: int = 4) -> float:
    """Share of tokens inside a stretch where one token, or a cycle of up to max_period, repeats min_repeats+ times."""
    n = len(tokens)
    looped = np.zeros(n, dtype=bool)
    for period in range(1, max_period + 1):
        i = period
        while i < n:
            if tokens[i] != tokens[i - period]:
                i += 1
                continue
            j = i
            while j < n and tokens[j] == tokens[j - period]:
                j += 1
            start = i - period  # tokens[start:j] is the cycle tokens[start:i] repeated
            if (j - start) >= min_repeats * period:
                looped[start:j] = True
            i = j
    return float(looped.mean()) if n else 0.0
