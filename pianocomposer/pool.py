"""Worker processes, in one place: forked from a clean single-threaded server with the heavy modules imported once
(cheap per worker, and safe even when the caller has threads, TensorFlow's or BLAS's, where a plain fork of the
caller can crash the child). `parse_files` reads music files in sandboxed workers (time-out, memory limit, killed
and replaced on a hang or crash) for extract and its Ray engine, `call_sandboxed` runs one call on untrusted input
(serve's uploads) in such a process; `process_pool` is a plain pool for generate, demos and serve."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait
from pathlib import Path

from tqdm import tqdm

from pianocomposer.errors import PianoComposerError, first_line
from pianocomposer.reading.readers import time_allowed

MEMORY_LIMIT_BYTES = 2 * 2**30  # per parsing process; real songs need a few hundred MB
WORKER_FILES = 100  # files one parsing process handles before a fresh one takes over
PRELOAD = ("music21.converter", "pianocomposer.encodings")  # what every worker needs
# A fresh parsing process says it is ready (its modules imported) before its first file's time starts: counted
# against the file, its start-up (a forkserver importing music21, in every new Ray task) lost good files on a busy
# machine, the first of each task's chunk
READY = b"ready"
START_S = 300.0  # seconds a parsing process may take to start


def forkserver(preload: Iterable[str] = ()) -> multiprocessing.context.BaseContext:
    """The forkserver context, its server importing PRELOAD and `preload` once for every worker it forks."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, *preload])
    return ctx


def process_pool(workers: int, preload: Iterable[str] = ()) -> ProcessPoolExecutor:
    """A pool of `workers` processes forked from the clean server."""
    return ProcessPoolExecutor(workers, mp_context=forkserver(preload))


def _quiet(log: str) -> None:
    """In a child: its stdout and stderr go to `log`, so a crash's dump (a C stack overflow's fatal error) never
    reaches the user's terminal; the parent names its first line (`said`)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def said(log: Path) -> str:
    """What a crashed child wrote, as the tail of a one-line reason: its fatal error, else its first line."""
    try:
        lines = [line.strip() for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    line = next((x for x in lines if x.startswith("Fatal Python error")), lines[0] if lines else "")
    return f": {line[:200]}" if line else ""


def _log_file() -> Path:
    """An empty file for a child's output."""
    fd, name = tempfile.mkstemp(prefix="pianocomposer-child-", suffix=".log")
    os.close(fd)
    return Path(name)


def read_songs_limited(encoding, path: Path) -> list[dict]:
    """encoding.read_songs(path), with running out of memory (the worker's limit) as the file's reason."""
    try:
        return encoding.read_songs(path)
    except MemoryError:
        return [{"part": None, "error": f"parsing needs more than {MEMORY_LIMIT_BYTES // 2**30} GiB of memory"}]


def _worker(conn, encoding_name: str, params: dict, log: str) -> None:
    """Runs in a forked process under a memory limit: parse the files it is sent, one reply each, until None."""
    from pianocomposer.encodings import get_encoding

    _quiet(log)
    warnings.simplefilter("ignore")  # music21 warns on stderr about odd events without naming the file
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    encoding = get_encoding(encoding_name, params)
    conn.send_bytes(READY)
    while (path := conn.recv()) is not None:
        conn.send_bytes(json.dumps(read_songs_limited(encoding, path)).encode())


class _Worker:
    """A parsing process and the file it is working on."""

    def __init__(self, ctx, encoding_name: str, params: dict):
        self.conn, child_end = ctx.Pipe()
        self.log = _log_file()
        self.proc = ctx.Process(target=_worker, args=(child_end, encoding_name, params, str(self.log)), daemon=True)
        self.proc.start()
        child_end.close()
        self.job: tuple[int, float, float] | None = None  # (file index, deadline, seconds allowed)
        self.done = 0
        self.ready = False

    def send(self, index: int, path: Path, timeout_s: float) -> None:
        """Start on a file, its time counted from when the process is ready (READY)."""
        if not self.ready:
            try:
                if not self.conn.poll(START_S) or self.conn.recv_bytes() != READY:
                    raise EOFError
            except (EOFError, OSError):
                raise PianoComposerError(f"a parsing process did not start within {START_S:g} s (exit code "
                                         f"{self.proc.exitcode})") from None
            self.ready = True
        self.conn.send(path)
        allowed = time_allowed(path, timeout_s)
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
        self.log.unlink(missing_ok=True)


def parse_files(jobs: list[tuple[int, Path]], encoding_name: str, params: dict, timeout_s: float, workers: int,
                bar: tqdm) -> dict[int, list[dict]]:
    """Each file's songs (Encoding.read_songs), parsed in long-lived workers; a worker that hangs past its time on a
    file or crashes is killed and replaced, the file named with the reason, and every worker is renewed after
    WORKER_FILES files."""
    ctx = forkserver()
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
                    results[index] = [{"part": None, "error": f"parser crashed (exit code {worker.proc.exitcode}"
                                                              f"{said(worker.log)})"}]
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


def _call_limited(conn, func: Callable[..., bytes], args: tuple, log: str) -> None:
    """Runs in a forked process under the memory limit: one call; its bytes, or why it failed, as the one reply."""
    _quiet(log)
    warnings.simplefilter("ignore")
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    try:
        reply = b"+" + func(*args)
    except MemoryError:
        reply = f"-needs more than {MEMORY_LIMIT_BYTES // 2**30} GiB of memory".encode()
    except PianoComposerError as exc:
        reply = f"-{first_line(exc)}".encode()
    except Exception as exc:
        reply = f"-{type(exc).__name__}: {first_line(exc)}".encode()
    conn.send_bytes(reply)


def call_sandboxed(func: Callable[..., bytes], args: tuple, timeout_s: float) -> bytes:
    """func(*args) on untrusted input, in a process of its own forked from the clean server, under the memory limit
    and killed past timeout_s: the bytes it returns (never unpickled), or PianoComposerError with the reason."""
    ctx = forkserver()
    conn, child_end = ctx.Pipe(duplex=False)
    log = _log_file()
    proc = ctx.Process(target=_call_limited, args=(child_end, func, args, str(log)), daemon=True)
    proc.start()
    child_end.close()
    try:
        if not conn.poll(timeout_s):
            raise PianoComposerError(f"reading it took longer than {timeout_s:g} s")
        try:
            reply = conn.recv_bytes()
        except (EOFError, OSError):
            proc.join(5)
            raise PianoComposerError(f"the reader crashed on it (exit code {proc.exitcode}{said(log)})") from None
    finally:
        proc.kill()
        proc.join()
        conn.close()
        log.unlink(missing_ok=True)
    if reply[:1] != b"+":
        raise PianoComposerError(reply[1:].decode(errors="replace"))
    return reply[1:]
