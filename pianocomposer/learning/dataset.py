"""Songs to training arrays: split by song, transpose, and cut into windows that never cross songs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pianocomposer.encodings import Encoding


def split_songs(n_songs: int, val_split: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of training and validation songs: whole songs held out, at least one each when possible."""
    order = np.random.default_rng(seed).permutation(n_songs)
    n_val = round(n_songs * val_split)
    if val_split > 0 and n_songs >= 2:
        n_val = min(max(n_val, 1), n_songs - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def transpose_songs(songs: Sequence[Sequence[str]], encoding: Encoding, semitones: range) -> list[list[str]]:
    """Each song once per transposition; a transposed copy with any note out of range is dropped."""
    out = []
    for song in songs:
        for k in semitones:
            moved = [encoding.transpose(t, k) for t in song] if k else list(song)
            if None not in moved:
                out.append(moved)
    return out


def make_windows(songs: Sequence[np.ndarray], seq_len: int, shift: int = 0, objective: str = "all",
                 multiple_of: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, targets (inputs shifted by one) and 0/1 weights, shape (windows, seq_len), right-padded.

    objective "all" supervises every position of non-overlapping windows (the first window of each song is
    `shift` shorter, so boundaries move between epochs); "last" is the original's scheme: a window at every
    position and only its last token supervised. Zero-weight rows pad the count to a multiple of `multiple_of`
    so every batch has the same shape (no recompilation for a short last batch).
    """
    starts, ends, bases, offset = [], [], [], 0
    for ids in songs:
        n = len(ids) - 1  # (input, target) pairs in this song
        if n >= 1:
            if objective == "last":
                s = np.arange(max(1, n - seq_len + 1))
                e = np.minimum(s + seq_len, n)
            else:
                first = seq_len - shift % seq_len
                s = np.concatenate([[0], np.arange(first, n, seq_len)]) if first < seq_len else np.arange(0, n, seq_len)
                e = np.minimum(np.append(s[1:], n), s + seq_len)
            starts.append(s)
            ends.append(e)
            bases.append(np.full(len(s), offset))
        offset += len(ids)
    if not starts:
        empty = np.zeros((0, seq_len), np.int32)
        return empty, empty, empty.astype(np.float32)
    padding = -sum(len(s) for s in starts) % multiple_of
    starts.append(np.zeros(padding, np.int64))
    ends.append(np.zeros(padding, np.int64))
    bases.append(np.zeros(padding, np.int64))
    flat = np.concatenate([np.asarray(s, np.int32) for s in songs])
    start, end, base = np.concatenate(starts), np.concatenate(ends), np.concatenate(bases)
    pos = np.arange(seq_len)
    real = pos[None, :] < (end - start)[:, None]
    idx = base[:, None] + np.where(real, start[:, None] + pos[None, :], 0)
    x, y = flat[idx], flat[idx + real]
    if objective == "last":
        weights = (pos[None, :] == (end - start - 1)[:, None]).astype(np.float32)
    else:
        weights = real.astype(np.float32)
    return np.where(real, x, 0).astype(np.int32), np.where(real, y, 0).astype(np.int32), weights
