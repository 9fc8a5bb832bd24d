"""Stage 1: folder of MIDI -> tokens.json."""

import base64
import json
import shutil

import numpy as np
import pytest

from pianocomposer.config import TOKENS_FORMAT_VERSION
from pianocomposer.errors import PianoComposerError
from pianocomposer.reading.extract import extract, load_tokens
from tests.conftest import PHRASES, REPO, write_song


def test_extract_a_few_files_of_the_default_corpus(tmp_path):
    songs_in = tmp_path / "in"
    songs_in.mkdir()
    for path in sorted((REPO / "midi_songs").glob("*.mid"))[:4]:
        shutil.copy(path, songs_in / path.name)
    data = extract(songs_in, tmp_path / "data", progress=False)
    assert len(data.songs) == 4 and not data.skipped
    for song in data.songs:
        assert len(song.tokens) > 20
        assert any("." in t for t in song.tokens), "four-part chorales must contain chord tokens"
    saved = json.loads((tmp_path / "data" / "tokens.json").read_text())
    assert saved["version"] == TOKENS_FORMAT_VERSION and saved["encoding"] == "cpc"
    assert saved["encoding_params"] == {}
    assert [s["source"] for s in saved["songs"]] == sorted(p.name for p in songs_in.iterdir())


def test_songs_stay_separate_recursive_and_cached(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    write_song(tmp_path / "in" / "a.mid", PHRASES[0])
    write_song(tmp_path / "in" / "sub" / "b.MIDI", PHRASES[1])
    (tmp_path / "in" / "notes.txt").write_text("not midi")
    first = extract(tmp_path / "in", tmp_path / "data", progress=False)
    assert [(s.source, s.tokens) for s in first.songs] == [("a.mid", PHRASES[0]), ("sub/b.MIDI", PHRASES[1])]
    assert first.reused == 0
    write_song(tmp_path / "in" / "c.mid", PHRASES[2])
    second = extract(tmp_path / "in", tmp_path / "data", progress=False)
    assert second.reused == 2 and len(second.songs) == 3
    assert {s.source: s.tokens for s in load_tokens(tmp_path / "data").songs}["c.mid"] == PHRASES[2]


def test_missing_or_empty_input_is_a_clear_error(tmp_path):
    with pytest.raises(PianoComposerError, match="no such folder"):
        extract(tmp_path / "nope", tmp_path / "data", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PianoComposerError, match=r"no \.mid or \.midi or \.abc files"):
        extract(tmp_path / "empty", tmp_path / "data", progress=False)
    with pytest.raises(PianoComposerError, match="encoding 'cpc': bad parameters"):
        extract(tmp_path / "empty", tmp_path / "data", encoding_params={"grid": 4}, progress=False)
    assert not (tmp_path / "data" / "tokens.json").exists()


def test_tokens_file_from_a_newer_version_is_refused(tmp_path):
    (tmp_path / "tokens.json").write_text(json.dumps({"format": "pianocomposer-tokens", "version": 99}))
    with pytest.raises(PianoComposerError, match="newer than this pianocomposer reads"):
        load_tokens(tmp_path)


def test_the_store_keeps_ids_into_one_vocabulary_and_still_reads_older_files(tmp_path):
    (tmp_path / "in").mkdir()
    write_song(tmp_path / "in" / "a.mid", PHRASES[0])
    write_song(tmp_path / "in" / "b.mid", PHRASES[1] + PHRASES[0])
    data = extract(tmp_path / "in", tmp_path / "data", progress=False)
    saved = json.loads((tmp_path / "data" / "tokens.json").read_text())
    assert saved["vocabulary"] == sorted(set(PHRASES[0] + PHRASES[1])) and saved["id_bytes"] == 2
    assert len(base64.b64decode(saved["songs"][1]["ids"])) == 2 * 16 and "tokens" not in saved["songs"][0]
    again = load_tokens(tmp_path / "data")
    assert [s.tokens for s in again.songs] == [s.tokens for s in data.songs] == [PHRASES[0], PHRASES[1] + PHRASES[0]]
    assert again.songs[0].tokens[0] is again.songs[1].tokens[8]  # one string per distinct token, shared
    # a version-3 file (token lists) still reads, and its songs are reused as the cache
    old = {**saved, "version": 3, "songs": [{k: v for k, v in s.items() if k != "ids"} | {"tokens": t.tokens}
                                            for s, t in zip(saved["songs"], data.songs, strict=True)]}
    del old["vocabulary"], old["id_bytes"]
    (tmp_path / "data" / "tokens.json").write_text(json.dumps(old))
    assert extract(tmp_path / "in", tmp_path / "data", progress=False).reused == 2
    # an id past the vocabulary is a one-line error naming the song
    saved["songs"][0]["ids"] = base64.b64encode(np.array([len(saved["vocabulary"])], "<u2").tobytes()).decode()
    (tmp_path / "data" / "tokens.json").write_text(json.dumps(saved))
    with pytest.raises(PianoComposerError, match=r"unreadable tokens file \(a.mid: a token id past the vocabulary\)"):
        load_tokens(tmp_path / "data")


def test_identical_files_stay_one_song_each_on_a_warm_run(tmp_path):
    (tmp_path / "in").mkdir()
    write_song(tmp_path / "in" / "a.mid", PHRASES[0])
    (tmp_path / "in" / "copy.mid").write_bytes((tmp_path / "in" / "a.mid").read_bytes())
    cold = extract(tmp_path / "in", tmp_path / "data", progress=False)
    warm = extract(tmp_path / "in", tmp_path / "data", progress=False)
    assert [s.source for s in warm.songs] == [s.source for s in cold.songs] == ["a.mid", "copy.mid"]
    assert warm.reused == 2
