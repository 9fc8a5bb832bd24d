"""Hostile input and faults: broken, odd and trap files mixed with good ones; unreadable input; unwritable output."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from pianocomposer.errors import PianoComposerError
from pianocomposer.reading.extract import extract, load_tokens
from pianocomposer.writing.atomic import atomic_path
from tests.hostile_midi import (
    GOOD_TOKENS,
    NON_UTF8_GOOD,
    many_notes_bytes,
    write_bad_files,
    write_corpus,
    write_good,
)

PIANOCOMPOSER = Path(sys.executable).with_name("pianocomposer")
# Without these two capabilities root obeys file permissions like anyone else (the kernel checks the mode bits).
DROP_ROOT_POWERS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]


def cli(*args: object, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed `pianocomposer` command (or `python -m pianocomposer`) in a subprocess."""
    command = [str(PIANOCOMPOSER)] if PIANOCOMPOSER.exists() else [sys.executable, "-m", "pianocomposer"]
    return subprocess.run([*(prefix or []), *command, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def without_root_powers(tmp_path: Path) -> list[str]:
    """A command prefix under which file permissions apply: none for a normal user, setpriv for root."""
    if os.geteuid() != 0:
        return []
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        denied = shutil.which("setpriv") and subprocess.run([*DROP_ROOT_POWERS, "cat", str(probe)],
                                                            capture_output=True).returncode != 0
    finally:
        probe.unlink()
    if not denied:
        pytest.skip("running as root, where chmod 000 files stay readable, and setpriv cannot drop that power")
    return DROP_ROOT_POWERS


def with_file_size_limit(size: int) -> list[str]:
    """A command prefix under which writing past `size` bytes fails with EFBIG, as a full disk fails with ENOSPC."""
    limit = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
             "os.execvp(sys.argv[2], sys.argv[2:])")
    return [sys.executable, "-c", limit, str(size)]


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Good songs mixed with every kind of bad input (see tests/hostile_midi.py)."""
    return write_corpus(tmp_path_factory.mktemp("hostile") / "in")


@pytest.fixture(scope="module")
def extracted(corpus, tmp_path_factory):
    """extract() on the corpus: (TokenData, the output folder)."""
    out = tmp_path_factory.mktemp("hostile-data")
    return extract(corpus.folder, out, progress=False), out


def test_every_good_file_is_extracted_and_every_bad_one_named_once(corpus, extracted):
    data, out = extracted
    assert {s.source: s.tokens for s in data.songs} == corpus.good
    names = [s.source for s in data.skipped]
    assert sorted(names) == sorted(corpus.bad), "each bad file exactly once, by its printable name"
    reasons = {s.source: s.reason for s in data.skipped}
    for name, reason in reasons.items():
        assert reason and "\n" not in reason, name
    assert reasons["drums_only.mid"] == "no pitched notes"
    assert reasons["no_notes.mid"] == "no pitched notes"
    assert reasons["empty.mid"] == "empty file"
    assert reasons["huge.mid"] == "larger than 64 MB"
    for name in ("loop_a.mid", "loop_b.mid", "dangling.mid", "pipe.mid", "zero.mid"):
        assert reasons[name] == "not a regular file"
    for name in ("truncated.mid", "track_length_too_long.mid", "header_then_noise.mid", "bad\\xfe.mid"):
        assert reasons[name].startswith("truncated"), (name, reasons[name])
    for name in ("format2.mid", "zero_tempo.mid", "zero_ticks_per_quarter.mid", "smpte_time_division.mid"):
        assert reasons[name].startswith("not a readable MIDI file ("), (name, reasons[name])
    saved = load_tokens(out)
    assert [s.source for s in saved.skipped] == names and len(saved.songs) == len(corpus.good)


def test_drum_notes_never_become_tokens(extracted):
    tokens = {s.source: s.tokens for s in extracted[0].songs}["piano_and_drums.mid"]
    # The kit plays between and on the piano's onsets: any leak would add notes or turn notes into chords.
    assert tokens == GOOD_TOKENS


def test_cli_prints_a_summary_and_one_line_per_skipped_file(corpus, tmp_path):
    proc = cli("extract", "--input", corpus.folder, "--out", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert proc.stdout.startswith(f"{len(corpus.good)} ok, {len(corpus.bad)} skipped ")
    lines = proc.stderr.splitlines()
    assert len(lines) == len(corpus.bad) and all(line.startswith("skipped ") for line in lines), proc.stderr
    assert sorted(line.split(": ", 1)[0].removeprefix("skipped ") for line in lines) == sorted(corpus.bad)
    assert "skipped drums_only.mid: no pitched notes" in lines
    assert "skipped two\\nlines.mid: truncated (the MIDI header is cut short)" in lines


def test_all_bad_folder_is_one_error_line(tmp_path):
    (tmp_path / "in").mkdir()
    bad = write_bad_files(tmp_path / "in")
    with pytest.raises(PianoComposerError, match=rf"no usable music file \({len(bad)} skipped: "):
        extract(tmp_path / "in", tmp_path / "data", progress=False)
    proc = cli("extract", "--input", tmp_path / "in", "--out", tmp_path / "data")
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "data" / "tokens.json").exists()


def test_time_out_kills_a_slow_parse(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "small").mkdir()
    (tmp_path / "in" / "long.mid").write_bytes(many_notes_bytes(12_000))  # valid; parsing it takes ~15 s here
    (tmp_path / "small" / "short.mid").write_bytes(many_notes_bytes(20))
    started = time.monotonic()
    extract(tmp_path / "small", tmp_path / "small-data", progress=False)  # what a run costs on this machine now
    baseline = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(PianoComposerError, match=r"long\.mid: parsing took longer than 0\.5 s"):
        extract(tmp_path / "in", tmp_path / "data", timeout_s=0.5, progress=False)
    # killed at the time-out: a run's own cost plus the half second, never the whole parse
    assert time.monotonic() - started < 2 * baseline + 0.5 + 1.0, "the parser must be killed, not waited for"
    assert not multiprocessing.active_children()


def test_a_parsing_process_says_it_is_ready_before_a_files_time_starts():
    from pianocomposer.pool import READY, _Worker, forkserver

    # its start-up (importing music21 in a fresh forkserver, on a busy machine) is not counted against its first file
    worker = _Worker(forkserver(), "cpc", {})
    try:
        assert worker.conn.poll(60) and worker.conn.recv_bytes() == READY
    finally:
        worker.stop()


def test_a_timed_out_file_is_parsed_again_with_a_longer_time_out(tmp_path):
    (tmp_path / "in").mkdir()
    write_good(tmp_path / "in" / "short.mid")
    extract(tmp_path / "in", tmp_path / "data", progress=False)
    (tmp_path / "in" / "long.mid").write_bytes(many_notes_bytes(4_000))  # parsing takes ~3 s here
    first = extract(tmp_path / "in", tmp_path / "data", timeout_s=0.5, progress=False)  # short.mid is cached
    assert [s.source for s in first.songs] == ["short.mid"] and first.reused == 1
    assert [(s.source, s.reason) for s in first.skipped] == [("long.mid", "parsing took longer than 0.5 s")]
    second = extract(tmp_path / "in", tmp_path / "data", progress=False)
    assert [s.source for s in second.songs] == ["long.mid", "short.mid"] and not second.skipped
    assert len(second.songs[0].tokens) == 4_000


def test_summary_counts_only_real_cache_hits(tmp_path):
    (tmp_path / "in").mkdir()
    write_good(tmp_path / "in" / "good.mid")
    (tmp_path / "in" / "empty.mid").write_bytes(b"")
    assert extract(tmp_path / "in", tmp_path / "data", progress=False).reused == 0
    assert extract(tmp_path / "in", tmp_path / "data", progress=False).reused == 1


def test_unreadable_file_is_skipped_with_the_reason(tmp_path):
    prefix = without_root_powers(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    write_good(folder / "good.mid")
    write_good(folder / "locked.mid").chmod(0)
    proc = cli("extract", "--input", folder, "--out", tmp_path / "data", prefix=prefix)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert proc.stdout.startswith("1 ok, 1 skipped")
    assert proc.stderr.splitlines() == ["skipped locked.mid: cannot read (Permission denied)"]


def test_a_good_song_with_a_non_utf8_name_is_extracted(tmp_path):
    (tmp_path / "in").mkdir()
    write_good(tmp_path / "in" / NON_UTF8_GOOD)
    data = extract(tmp_path / "in", tmp_path / "data", progress=False)
    assert [(s.source, s.tokens) for s in data.songs] == [("good\\xff.mid", GOOD_TOKENS)]


def test_a_changed_file_is_parsed_anew_whatever_its_mtime(tmp_path):
    (tmp_path / "in").mkdir()
    song = write_good(tmp_path / "in" / "song.mid")
    extract(tmp_path / "in", tmp_path / "a", progress=False)
    write_good(song, [[70], [72]])
    os.utime(song, (946_684_800, 946_684_800))  # an old mtime, as `cp -p`, rsync -t or tar give
    assert extract(tmp_path / "in", tmp_path / "b", progress=False).songs[0].tokens == ["B-4", "C5"]


def test_extract_never_unpickles_a_file_planted_in_the_music21_scratch_folder(tmp_path):
    from music21 import converter

    (tmp_path / "in").mkdir()
    song = write_good(tmp_path / "in" / "song.mid")
    os.utime(song, (946_684_800, 946_684_800))
    write_good(tmp_path / "in" / "other.mid")  # so that extract succeeds whatever happens to song.mid
    planted = converter.PickleFilter(song).getPickleFp(zipType="gz")  # where any local user could write first
    marker = tmp_path / "code-ran"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(zlib.compress(pickle.dumps(_Touch(marker))))
    try:
        extract(tmp_path / "in", tmp_path / "data", progress=False)
    finally:
        planted.unlink(missing_ok=True)
    assert not marker.exists(), "unpickling the planted file ran its code"


class _Touch:
    """Pickles to a call of Path.touch: harmless proof that unpickling ran code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_output_folder_under_a_file_is_a_clear_error(tmp_path):
    write_good(tmp_path / "good.mid")
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "sub"
    with pytest.raises(PianoComposerError, match=rf"{out}: cannot create the output folder \(Not a directory\)"):
        extract(tmp_path, out, progress=False)


def test_read_only_output_folder_is_one_error_line(tmp_path):
    prefix = without_root_powers(tmp_path)
    (tmp_path / "in").mkdir()
    write_good(tmp_path / "in" / "good.mid")
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o555)
    proc = cli("extract", "--input", tmp_path / "in", "--out", tmp_path / "data", prefix=prefix)
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert proc.stderr == f"error: {tmp_path / 'data'}: the output folder is not writable\n"


def test_a_failed_write_leaves_the_old_tokens_file_byte_identical(tmp_path):
    (tmp_path / "in").mkdir()
    write_good(tmp_path / "in" / "good.mid")
    extract(tmp_path / "in", tmp_path / "data", progress=False)
    old = (tmp_path / "data" / "tokens.json").read_bytes()
    (tmp_path / "in" / "empty.mid").write_bytes(b"")  # one more skipped entry: the new file is longer
    # A real fault from the kernel: the new, longer tokens.json cannot be written in full.
    proc = cli("extract", "--input", tmp_path / "in", "--out", tmp_path / "data", prefix=with_file_size_limit(len(old)))
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert proc.stderr == (f"error: {tmp_path / 'data' / 'tokens.json'}: write failed (File too large); "
                           "the old file is intact\n")
    assert (tmp_path / "data" / "tokens.json").read_bytes() == old
    assert os.listdir(tmp_path / "data") == ["tokens.json"], "no temp file left behind"


def test_atomic_path_keeps_the_old_file_when_the_body_fails(tmp_path):
    target = tmp_path / "tokens.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted mid-write")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["tokens.json"]


def test_a_reader_that_crashes_is_named_in_one_line_and_prints_nothing_in_the_terminal(capfd, tmp_path):
    from pianocomposer.pool import call_sandboxed
    from tests.hostile_midi import crash_loudly

    with pytest.raises(PianoComposerError) as raised:
        call_sandboxed(crash_loudly, (tmp_path / "tune.abc",), 60)
    assert str(raised.value) == ("the reader crashed on it (exit code -6: Fatal Python error: Cannot recover from "
                                 "stack overflow.)")
    out, err = capfd.readouterr()
    assert "Fatal" not in out + err and "Current thread" not in out + err
