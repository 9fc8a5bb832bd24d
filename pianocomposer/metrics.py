"""Music statistics of one piece of MIDI, and the token-level memorisation measures (copy rate).

The six muspy metrics (pitch-class entropy, scale consistency, groove consistency, empty-beat rate, polyphony,
pitch range) are muspy's own implementations, run on `muspy.from_pretty_midi` at muspy's default resolution of
24 ticks per quarter. Note density, the inter-onset-interval, duration and pitch-class histograms, the
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


def to_muspy(midi: pretty_midi.PrettyMIDI):
    """The PrettyMIDI object as a muspy Music object at RESOLUTION ticks per quarter."""
    import muspy

    return muspy.from_pretty_midi(midi, resolution=RESOLUTION)


def measure_resolution(music) -> int:
    """Ticks per bar from the first time signature; 4/4 when the MIDI has none (decoded cpc tokens have none)."""
    if music.time_signatures:
        ts = music.time_signatures[0]
        return max(1, round(music.resolution * 4 * ts.numerator / ts.denominator))
    return 4 * music.resolution


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


def music_statistics(midi: pretty_midi.PrettyMIDI) -> dict[str, float]:
    """muspy's six metrics and the note density of one piece (NaN where a metric is undefined, e.g. no notes)."""
    import muspy

    notes = _notes(midi)
    if not notes:
        return dict.fromkeys(["pitch_class_entropy", "scale_consistency", "groove_consistency", "empty_beat_rate",
                              "polyphony", "pitch_range", "note_density"], math.nan)
    music = to_muspy(midi)
    length = max(_quarters(midi, n.end) for n in notes)
    return {"pitch_class_entropy": float(muspy.pitch_class_entropy(music)),
            "scale_consistency": float(muspy.scale_consistency(music)),
            "groove_consistency": float(muspy.groove_consistency(music, measure_resolution(music))),
            "empty_beat_rate": float(muspy.empty_beat_rate(music)),
            "polyphony": float(muspy.polyphony(music)),
            "pitch_range": float(muspy.pitch_range(music)),
            "note_density": len(notes) / length if length > 0 else math.nan}


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
