"""Extraction on Ray's local runner: the same songs, skips and cache as the local processes."""

import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.reading.extract import extract
from tests.hostile_midi import many_notes_bytes, write_corpus

pytest.importorskip("ray")  # the test extra installs it; a user without it gets a one-line error (below)


@pytest.mark.integration
def test_ray_reads_a_messy_folder_as_the_local_path_does_and_shares_its_cache(tmp_path):
    corpus = write_corpus(tmp_path / "in")
    (corpus.folder / "slow.mid").write_bytes(many_notes_bytes(30_000))  # 80 s here beside the suite (12 000: 11 s)
    # 10 s: well past a normal file on a loaded machine, well short of the slow one. A good file was lost now and
    # then with the suite running beside it while a parsing process's start-up (a forkserver importing music21 in a
    # new Ray worker) counted against its first file; a file's time now starts when its process is ready
    local = extract(corpus.folder, tmp_path / "local", timeout_s=10, progress=False)
    on_ray = extract(corpus.folder, tmp_path / "ray", timeout_s=10, engine="ray", workers=2, progress=False)
    assert [(s.source, s.tokens) for s in on_ray.songs] == [(s.source, s.tokens) for s in local.songs]
    assert [(s.source, s.reason) for s in on_ray.skipped] == [(s.source, s.reason) for s in local.skipped]
    assert dict((s.source, s.reason) for s in on_ray.skipped)["slow.mid"] == "parsing took longer than 10 s"
    assert {s.source: s.tokens for s in on_ray.songs}.keys() >= corpus.good.keys()
    # a warm re-run on Ray reuses what the local path reuses: every parsed file but the timed-out one (retried: it
    # may pass with more time); files refused before parsing (empty, truncated, ...) are checked again, not reused
    again = extract(corpus.folder, tmp_path / "ray", timeout_s=10, engine="ray", workers=2, progress=False)
    local_again = extract(corpus.folder, tmp_path / "local", timeout_s=10, progress=False)
    assert again.reused == local_again.reused >= len(on_ray.songs)
    assert [(s.source, s.tokens) for s in again.songs] == [(s.source, s.tokens) for s in on_ray.songs]


def test_an_unknown_engine_is_one_line(tmp_path):
    with pytest.raises(PianoComposerError, match="--engine: 'spark' is not one of local, ray"):
        extract(tmp_path, tmp_path / "data", engine="spark", progress=False)
