"""Windows, song split and transposition."""

import numpy as np

from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.cpc import chord_token, is_chord, note_number
from pianocomposer.learning.dataset import make_windows, split_songs, transpose_songs
from tests.conftest import PHRASES


def test_windows_never_cross_songs_and_targets_are_shifted_inputs():
    songs = [np.arange(0, 250), np.arange(1000, 1030), np.arange(5000, 5001)]
    for shift in (0, 37):
        x, y, w = make_windows(songs, 100, shift)
        real = w > 0
        assert real.sum() == 249 + 29  # every (input, target) pair once; a 1-token song has none
        assert np.all(y[real] == x[real] + 1)  # next token, never from another song
        assert np.all(x[real] // 1000 == y[real] // 1000)


def test_last_objective_supervises_one_token_per_window():
    x, y, w = make_windows([np.arange(0, 250)], 100, objective="last")
    assert len(x) == 150 and np.all(w.sum(axis=1) == 1)
    assert np.all(y[:, -1] == x[:, -1] + 1) and np.all(w[:, -1] == 1)


def test_split_is_by_whole_song_and_disjoint():
    train, val = split_songs(50, 0.1, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == list(range(50))
    assert split_songs(2, 0.1)[1] and split_songs(2, 0.1)[0]  # at least one song on each side


def test_transposition_keeps_tokens_valid():
    cpc = get_encoding("cpc")
    songs = transpose_songs(PHRASES, cpc, range(-3, 4))
    assert len(songs) == 7 * len(PHRASES)
    assert songs[3] == PHRASES[0]  # -3, -2, -1, then 0
    assert songs[0][:3] == ["A3", "C#4", "E4"] and songs[6][:3] == ["E-4", "G4", "B-4"]  # C E G moved -3, +3
    for song in songs:
        for token in song:
            if is_chord(token):
                assert chord_token(frozenset(int(pc) for pc in token.split("."))) == token  # canonical normal order
            else:
                assert 0 <= note_number(token) <= 127 and cpc.transpose(token, 0) == token  # canonical spelling
    assert transpose_songs([["G9"]], cpc, range(0, 3)) == [["G9"]]  # out-of-range copies dropped
