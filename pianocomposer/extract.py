"""Stage 1: parse a folder of MIDI files into token lists, one per song, saved as JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import resource
import time
import warnings
from multiprocessing.connection import wait
from pathlib import Path

from tqdm import tqdm

from pianocomposer.atomic import write_json
from pianocomposer.config import TOKENS_FILE
from pianocomposer.encodings import get_encoding
from pianocomposer.encodings.abc import read_book
from pianocomposer.errors import PianoComposerError, first_line
from pianocomposer.tokens import Skipped, Song, TokenData, load_tokens

MAX_FILE_BYTES = 64 * 2**20  # larger files are not songs a user wants to learn from; they are refused unread
DEFAULT_TIMEOUT_S = 60.0  # per file: one hostile file must not hang the run
MEMORY_LIMIT_BYTES = 2 * 2**30  # per parsing process; real songs need a few hundred MB
# Skips that depend on the run (its time-out, a killed parser), not on the file: a later run tries them again.
RETRY_REASONS = ("parsing took longer than", "parser crashed")
ENGINES = ("local", "ray")  # where files are parsed: local processes, or tasks on Ray (engines.py)
WORKER_FILES = 100  # files one parsing process handles before a fresh one takes over
ABC_BYTES_PER_TIMEOUT = 50_000  # an abc book gets the per-file time-out once per this much text (~150 tunes)


def display_name(path: Path, root: Path) -> str:
    """path relative to root as printable text, even for file names that are not valid UTF-8."""
    rel = os.fsencode(path.relative_to(root) if path.is_relative_to(root) else path)
    text = rel.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # a newline in a name stays one line


def find_music_files(input_dir: Path, suffixes: tuple[str, ...] = (".mid", ".midi")) -> list[Path]:
    """Every file with one of the suffixes under input_dir, recursively, sorted; symlinked folders not followed."""
    found = []
    for folder, _dirs, files in os.walk(input_dir, followlinks=False):
        found.extend(Path(folder) / f for f in files if Path(f).suffix.lower() in suffixes)
    return sorted(found)


def truncation(data: bytes) -> str | None:
    """Why a file that starts like MIDI ends before its chunks or its promised tracks do, or None.

    music21 reads such files up to the cut and returns part of a song; a damaged file is skipped instead.
    """
    if not data.startswith(b"MThd"):
        return None  # not MIDI at all: the parser says so
    if len(data) < 14:
        return "truncated (the MIDI header is cut short)"
    promised = int.from_bytes(data[10:12], "big")
    pos, tracks = 0, 0
    while (pos == 0 or tracks < promised) and pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        if pos + 8 + size > len(data):
            return (f"truncated or wrong chunk length (a chunk at byte {pos} claims {size} bytes, "
                    f"{len(data) - pos - 8} follow)")
        tracks += data[pos:pos + 4] == b"MTrk"
        pos += 8 + size
    if tracks < promised:
        return f"truncated (the header promises {promised} tracks, the file holds {tracks})"
    return None


def _parse_one(encoding, path: Path) -> list[dict]:
    """The songs of one file: `{part, tokens, qpm}` each (part names a tune of an abc book, else None), or
    `{part, error}` for what cannot be used."""
    try:
        if path.suffix.lower() == ".abc":
            return read_book(encoding, path)
        tokens = encoding.encode_file(path)
        return [{"part": None, "tokens": tokens, "qpm": encoding.qpm(path)} if tokens
                else {"part": None, "error": "no pitched notes"}]
    except MemoryError:
        return [{"part": None, "error": f"parsing needs more than {MEMORY_LIMIT_BYTES // 2**30} GiB of memory"}]
    except Exception as exc:
        kind = "abc" if path.suffix.lower() == ".abc" else "MIDI"
        return [{"part": None, "error": f"not a readable {kind} file ({type(exc).__name__}: {first_line(exc)})"}]


def file_timeout(path: Path, timeout_s: float) -> float:
    """Seconds allowed for a file: timeout_s, and as much again for every ABC_BYTES_PER_TIMEOUT of an abc book."""
    if path.suffix.lower() != ".abc":
        return timeout_s
    with contextlib.suppress(OSError):
        return timeout_s * max(1, math.ceil(path.stat().st_size / ABC_BYTES_PER_TIMEOUT))
    return timeout_s


def _worker(conn, encoding_name: str, params: dict) -> None:
    """Runs in a forked process under a memory limit: parse the files it is sent, one reply each, until None."""
    warnings.simplefilter("ignore")  # music21 warns on stderr about odd events without naming the file
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    encoding = get_encoding(encoding_name, params)
    while (path := conn.recv()) is not None:
        conn.send_bytes(json.dumps(_parse_one(encoding, path)).encode())


class _Worker:
    """A parsing process and the file it is working on."""

    def __init__(self, ctx, encoding_name: str, params: dict):
        self.conn, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child_end, encoding_name, params), daemon=True)
        self.proc.start()
        child_end.close()
        self.job: tuple[int, float, float] | None = None  # (file index, deadline, seconds allowed)
        self.done = 0

    def send(self, index: int, path: Path, timeout_s: float) -> None:
        """Start on a file."""
        self.conn.send(path)
        allowed = file_timeout(path, timeout_s)
        self.job = (index, time.monotonic() + allowed, allowed)

    def stop(self, kill: bool = False) -> None:
        """End the process: politely when idle, by SIGKILL when it hangs or crashed."""
        if kill:
            self.proc.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _parse_all(jobs: list[tuple[int, Path]], encoding_name: str, params: dict, timeout_s: float, workers: int,
               bar: tqdm) -> dict[int, list[dict]]:
    """Parse files in long-lived forked worker processes; a worker that hangs past timeout_s on a file or crashes
    is killed and replaced, the file named with the reason, and every worker is renewed after WORKER_FILES files."""
    # Fork from a clean single-threaded server with music21 preloaded: cheap per worker, and safe even when the
    # caller has threads (TensorFlow, BLAS), where a plain fork of the caller can crash the child.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["music21.converter", "pianocomposer.encodings"])
    results: dict[int, list[dict]] = {}
    pending = list(reversed(jobs))
    pool = [_Worker(ctx, encoding_name, params) for _ in range(min(workers, len(jobs)))]
    try:
        while pending or any(w.job for w in pool):
            for i, worker in enumerate(pool):
                if worker.job is None and pending:
                    if worker.done >= WORKER_FILES:  # bound what one process accumulates against its memory limit
                        worker.stop()
                        pool[i] = worker = _Worker(ctx, encoding_name, params)
                    index, path = pending.pop()
                    worker.send(index, path, timeout_s)
            busy = {w.conn: w for w in pool if w.job}
            next_deadline = min(w.job[1] for w in busy.values())
            for conn in wait(list(busy), timeout=max(0.0, next_deadline - time.monotonic())):
                worker = busy[conn]
                index = worker.job[0]
                try:
                    results[index] = json.loads(conn.recv_bytes())
                    worker.job, worker.done = None, worker.done + 1
                except (EOFError, OSError, ValueError):
                    worker.proc.join(5)
                    results[index] = [{"part": None, "error": f"parser crashed (exit code {worker.proc.exitcode})"}]
                    worker.stop(kill=True)
                    pool[pool.index(worker)] = _Worker(ctx, encoding_name, params)
                bar.update()
            now = time.monotonic()
            for i, worker in enumerate(pool):
                if worker.job and now >= worker.job[1]:
                    results[worker.job[0]] = [{"part": None, "error": f"parsing took longer than {worker.job[2]:g} s"}]
                    worker.stop(kill=True)
                    pool[i] = _Worker(ctx, encoding_name, params)
                    bar.update()
    finally:
        for worker in pool:
            worker.stop(kill=worker.job is not None)
    return results


def _file_of(entry: Song | Skipped) -> str:
    """The file an entry came from (an abc tune's source is its book's name and the tune)."""
    return entry.source[:-len(entry.part) - 1] if entry.part else entry.source


def extract(input_dir: Path, out_dir: Path, *, encoding: str = "cpc", encoding_params: dict | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None, engine: str = "local",
            progress: bool = True) -> TokenData:
    """Tokenize every music file under input_dir into out_dir/tokens.json, reusing cached results."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if engine not in ENGINES:
        raise PianoComposerError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    encoder = get_encoding(encoding, encoding_params)
    params, suffixes = encoder.params, encoder.suffixes  # the full parameters, defaults filled in
    if not input_dir.is_dir():
        raise PianoComposerError(f"{input_dir}: no such folder")
    files = find_music_files(input_dir, suffixes)
    if not files:
        raise PianoComposerError(f"{input_dir}: no {' or '.join(suffixes)} files in this folder")
    try:  # find an unusable output folder before the parsing, not after
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PianoComposerError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK):
        raise PianoComposerError(f"{out_dir}: the output folder is not writable")

    parser = encoder.parser
    cache: dict[str, list[Song | Skipped]] = {}
    try:
        old = load_tokens(out_dir / TOKENS_FILE)
        if old.encoding == encoding and old.encoding_params == params and old.parser == parser:
            for entry in [*old.songs, *old.skipped]:
                group = cache.setdefault(entry.sha256, [])
                if not group or _file_of(group[0]) == _file_of(entry):  # identical files: one file's entries
                    group.append(entry)
            for digest, entries in list(cache.items()):  # a file with a skip that may pass next time is redone
                if any(isinstance(e, Skipped) and e.reason.startswith(RETRY_REASONS) for e in entries):
                    del cache[digest]
    except PianoComposerError:
        pass  # no usable cache: parse everything

    entries: list[list[Song | Skipped] | None] = []  # per file: its songs and skipped tunes
    to_parse: list[tuple[int, Path]] = []
    hashes: list[str] = []
    reused = 0
    names = [display_name(f, input_dir) for f in files]
    for i, path in enumerate(files):
        digest, problem = "", None
        try:
            if not path.is_file():
                problem = "not a regular file"
            elif path.stat().st_size > MAX_FILE_BYTES:
                problem = f"larger than {MAX_FILE_BYTES // 2**20} MB"
            elif path.stat().st_size == 0:
                problem = "empty file"
            else:
                content = path.read_bytes()
                digest = hashlib.sha256(content).hexdigest()
                problem = truncation(content)
        except OSError as exc:
            problem = f"cannot read ({exc.strerror or exc})"
        hashes.append(digest)
        cached = cache.get(digest) if digest else None
        if problem:
            entries.append([Skipped(names[i], digest, problem)])
        elif cached is not None:
            reused += 1
            entries.append([_entry(names[i], digest, _reply(e)) for e in cached])
        else:
            entries.append(None)
            to_parse.append((i, path))

    with tqdm(total=len(to_parse), desc="extract", unit="file", disable=not progress or None) as bar:
        if to_parse:
            workers = workers or max(1, min(os.cpu_count() or 1, len(to_parse)))
            if engine == "ray":
                from pianocomposer.engines import parse_all_ray as parse_all
            else:
                parse_all = _parse_all
            for i, replies in parse_all(to_parse, encoding, params, timeout_s, workers, bar).items():
                entries[i] = [_entry(names[i], hashes[i], reply) for reply in replies]

    flat = [e for file_entries in entries for e in file_entries]
    data = TokenData(encoding=encoding, encoding_params=params, parser=parser, reused=reused,
                     songs=[e for e in flat if isinstance(e, Song)],
                     skipped=[e for e in flat if isinstance(e, Skipped)])
    if not data.songs:
        raise PianoComposerError(f"{input_dir}: no usable music file ({len(data.skipped)} skipped: "
                                 f"{data.skipped[0].source}: {data.skipped[0].reason})")
    write_json(out_dir / TOKENS_FILE, data.to_json())
    return data


def _entry(name: str, digest: str, reply: dict) -> Song | Skipped:
    """A parser reply as a song or a skip, named by its file (and its tune within an abc book)."""
    source = f"{name} {reply['part']}" if reply.get("part") else name
    if "tokens" in reply:
        return Song(source, digest, reply["tokens"], reply["qpm"], reply.get("part"))
    return Skipped(source, digest, reply["error"], reply.get("part"))


def _reply(entry: Song | Skipped) -> dict:
    """A cached song or skip as the parser's reply, to be named anew (the file may have moved)."""
    if isinstance(entry, Song):
        return {"part": entry.part, "tokens": entry.tokens, "qpm": entry.qpm}
    return {"part": entry.part, "error": entry.reason}
