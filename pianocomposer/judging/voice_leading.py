"""Four-part writing judged by the rules a music student learns: parallel fifths and octaves, voice crossings,
chords, ranges and whether every voice sings (for the voices encoding's pieces and harmonisations)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pretty_midi

# Each voice's usual compass (the textbook's SATB ranges): S C4-G5, A G3-D5, T C3-G4, B E2-C4.
SATB_RANGES = ((60, 79), (55, 74), (48, 67), (40, 60))
# judge's figures: name -> (label, what it means)
FIGURES = {
    "parallels_per_100": ("parallel 5ths/8ves per 100", "parallel fifths and octaves per 100 steps where two voices "
                          "move the same way"),
    "crossings_per_100": ("voice crossings per 100", "voice crossings per 100 onsets"),
    "chordal_onsets": ("chordal onsets", "share of onsets whose pitch classes form a triad or seventh chord"),
    "in_range": ("notes in SATB range", "share of notes inside their voice's textbook range"),
    "four_voices_sound": ("four voices sound", "share of onsets where all four voices sound"),
}
TRIADS_AND_SEVENTHS = {frozenset((root + i) % 12 for i in chord) for root in range(12) for chord in (
    (0, 4, 7), (0, 3, 7), (0, 3, 6), (0, 4, 8),  # major, minor, diminished, augmented triads
    (0, 4, 7, 10), (0, 4, 7, 11), (0, 3, 7, 10), (0, 3, 6, 10), (0, 3, 6, 9))}  # 7, maj7, m7, half- and fully dim.
CHORD_BITS = np.array(sorted(sum(1 << pc for pc in chord) for chord in TRIADS_AND_SEVENTHS))  # each as 12 bits


def is_chord(classes: frozenset[int]) -> bool:
    """Whether pitch classes sound a triad or seventh chord: all of one, or three of one, or a third or sixth (a
    triad without its fifth, as four-part writing often leaves it)."""
    if len(classes) == 2:
        low, high = sorted(classes)
        return (high - low) in (3, 4, 8, 9)
    return len(classes) >= 3 and any(classes <= chord for chord in TRIADS_AND_SEVENTHS)


def sounding(tracks: Sequence[pretty_midi.Instrument], steps_per_second: float) -> tuple[list[list[int | None]],
                                                                                        list[bool]]:
    """Each voice's sounding pitch at every grid step (None: silent) and whether a note starts at each step."""
    end = max((n.end for t in tracks for n in t.notes), default=0.0)
    frames = round(end * steps_per_second)
    voices: list[list[int | None]] = [[None] * frames for _ in tracks]
    onset = [False] * frames
    for voice, track in zip(voices, tracks, strict=True):
        for note in track.notes:
            start, stop = round(note.start * steps_per_second), round(note.end * steps_per_second)
            voice[start:max(stop, start + 1)] = [note.pitch] * (max(stop, start + 1) - start)
            if start < frames:
                onset[start] = True
    return voices, onset


def judge(tracks: Sequence[pretty_midi.Instrument], steps_per_second: float) -> dict[str, float]:
    """Parallel fifths and octaves per 100 steps where two voices move the same way, crossings per 100 onsets,
    the share of onsets that sound a triad or seventh chord (`is_chord`), of notes in their voice's range, and of
    onsets where all four voices sound; tracks in the order S, A, T, B."""
    voices, onset = sounding(tracks, steps_per_second)
    onsets = [i for i, is_onset in enumerate(onset) if is_onset]
    parallel = same_way = 0
    for a, b in itertools.pairwise(onsets):
        for upper, lower in itertools.combinations(voices, 2):
            pitches = (upper[a], lower[a], upper[b], lower[b])
            if None in pitches:
                continue
            up_move, low_move = upper[b] - upper[a], lower[b] - lower[a]
            if up_move * low_move <= 0:
                continue  # not both moving, or not the same way
            same_way += 1
            before, after = (upper[a] - lower[a]) % 12, (upper[b] - lower[b]) % 12
            parallel += before == after and before in (0, 7)
    crossings = chordal = full = 0
    for i in onsets:
        now = [v[i] for v in voices]
        crossings += sum(hi is not None and lo is not None and hi < lo for hi, lo in itertools.pairwise(now))
        chordal += is_chord(frozenset(p % 12 for p in now if p is not None))
        full += None not in now
    notes = [(n.pitch, rng) for t, rng in zip(tracks, SATB_RANGES, strict=False) for n in t.notes]
    count = max(len(onsets), 1)
    return {"parallels_per_100": 100 * parallel / max(same_way, 1), "crossings_per_100": 100 * crossings / count,
            "chordal_onsets": chordal / count, "in_range": sum(lo <= p <= hi for p, (lo, hi) in notes) / max(len(
                notes), 1), "four_voices_sound": full / count}


def rule_breaks(notes: np.ndarray, before: np.ndarray, now: np.ndarray, voice: int,
                chord: np.ndarray | None = None, written: Sequence[int] | None = None) -> np.ndarray:
    """(rows, vocabulary) True where a voice's new note (`notes`: each token's pitch, -1 if not one of the voice's
    new notes) would cross the nearest sounding voice written over or under it, or make parallel fifths or octaves
    with a written voice that moves the same way, or (in the rows where `chord` is True: frames on a beat) leave the
    pitch classes sounding in the written voices and this one outside every triad and seventh chord; `before` and
    `now` are the (rows, 4) pitches (S A T B) sounding in the last frame and this one (-1: silent), `written` the
    voices this frame has written already (default: those above `voice`)."""
    written = list(range(voice)) if written is None else list(written)
    above, below = [w for w in written if w < voice], [w for w in written if w > voice]
    candidate = notes[None, :] >= 0
    lowest_above = np.where(now[:, above] >= 0, now[:, above], 1000).min(axis=1, initial=1000)
    highest_below = now[:, below].max(axis=1, initial=-1)
    breaks = candidate & ((notes[None, :] > lowest_above[:, None]) | (notes[None, :] < highest_below[:, None]))
    mine = before[:, voice][:, None]
    for other in written:
        was, is_ = before[:, other][:, None], now[:, other][:, None]
        sign = 1 if other < voice else -1  # intervals from the lower voice up
        interval = sign * (was - mine) % 12
        moving = (was >= 0) & (is_ >= 0) & (mine >= 0) & (is_ != was)
        same_way = (notes[None, :] - mine) * (is_ - was) > 0
        parallel = ((interval == 0) | (interval == 7)) & (sign * (is_ - notes[None, :]) % 12 == interval)
        breaks |= candidate & moving & same_way & parallel
    if chord is not None and chord.any() and written:
        classes = np.bitwise_or.reduce(np.where(now[:, written] >= 0, 1 << (now[:, written] % 12), 0), axis=1)
        classes = classes[:, None] | np.where(candidate, 1 << (notes % 12), 0)  # (rows, vocabulary) as 12 bits
        fits = ((classes[..., None] & ~CHORD_BITS) == 0).any(axis=-1)
        breaks |= candidate & chord[:, None] & ~fits
    return breaks


class Memory(NamedTuple):
    """What the rules remember of each row's four voices (S A T B; -1: silent, or never)."""

    before: np.ndarray  # (rows, 4): the pitches sounding in the last frame
    heard: np.ndarray  # (rows, 4): each voice's last pitch, through rests
    met: np.ndarray  # (rows, 4, 4): [v, w] v's pitch where v and w last began notes together

    @classmethod
    def empty(cls, rows: int) -> Memory:
        """Rows that remember nothing yet."""
        silent = np.full((rows, 4), -1)
        return cls(silent, silent.copy(), np.full((rows, 4, 4), -1))

    def take(self, rows: np.ndarray) -> Memory:
        """These rows' memory."""
        return Memory(*(m[rows] for m in self))

    def after(self, now: np.ndarray, began: np.ndarray) -> Memory:
        """The memory after a frame sounding `now` (rows, 4) in which the voices `began` (rows, 4) notes."""
        return Memory(now, np.where(now >= 0, now, self.heard),
                      np.where(began[:, :, None] & began[:, None, :], now[:, :, None], self.met))


def voice_breaks(memory: Memory, now: np.ndarray, began: np.ndarray, voice: int, new: np.ndarray, held: np.ndarray,
                 chord: np.ndarray | None, written: Sequence[int]) -> np.ndarray:
    """(rows, vocabulary) True where a voice's token breaks `rule_breaks`' rules given what the rows remember: a new
    note (`new`: each token's pitch, -1 if not a new note of the voice) against the voices' last pitches through
    rests, and against the notes it and each written voice now beginning one last began together (a passing note in
    between hides no parallels); a held note (`held`) crossing a written voice; `now` and `began` (rows, 4) are the
    frame's pitches and onsets so far."""
    breaks = rule_breaks(new, memory.heard, now, voice, chord, written)
    breaks |= rule_breaks(held, memory.before, now, voice, None, written)
    for other in written:
        met = np.full(now.shape, -1)
        met[:, voice] = memory.met[:, voice, other]
        met[:, other] = np.where(began[:, other], memory.met[:, other, voice], -1)
        breaks |= rule_breaks(new, met, now, voice, None, [other])
    return breaks
