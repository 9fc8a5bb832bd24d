"""`pianocomposer serve`: one page and a JSON API to compose, listen and harmonise, on Starlette and uvicorn.

Compositions run in a bounded pool of worker processes (at most one per core), each loading a bundle once, behind a
bounded queue (past it: 503). Uploads are read up to a size limit while they arrive and parsed in a sandboxed
process (time-out, memory limit); only the MIDI that process writes back reaches a composer. Results live under the
output folder, one folder per result id, within a disk quota (oldest removed first), and are served by id and kind
only: no part of a URL becomes a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pianocomposer.config import DEFAULT_SERVE_DIR, DEFAULT_WEIGHTS_DIR, FLORID, shipped_bundle
from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError, first_line
from pianocomposer.learning.bundle import has_bundle, read_meta
from pianocomposer.pool import call_sandboxed, process_pool
from pianocomposer.writing.atomic import atomic_path, write_json

log = logging.getLogger("pianocomposer.frontends.serve")

PAGE = Path(__file__).with_name("serve_page.html")
SCRIPT = Path(__file__).with_name("serve_page.js")
# What a result may hold, by the kind its URL names: the kind picks one of these fixed names in the result's folder.
KINDS = {"midi": "piece.mid", "ogg": "piece.ogg", "png": "piece.png", "svg": "piece.svg",
         "musicxml": "piece.musicxml", "abc": "piece.abc", "continuation": "continuation.mid"}
MEDIA_TYPES = {"midi": "audio/midi", "ogg": "audio/ogg", "png": "image/png", "svg": "image/svg+xml",
               "musicxml": "application/vnd.recordare.musicxml+xml", "abc": "text/vnd.abc; charset=utf-8",
               "continuation": "audio/midi"}
SUFFIXES = {"midi": ".mid", "ogg": ".ogg", "png": ".png", "svg": ".svg", "musicxml": ".musicxml", "abc": ".abc",
            "continuation": "-continuation.mid"}
RESULT_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")
RESULT_FILE = "result.json"  # written last: a folder without it is a result still being made (or a dead one)
MAX_JSON_BYTES = 16 * 1024
MAX_LENGTH = 2000  # tokens a piece may take (~8 minutes of cpc), or more where a model's own pieces are longer
MAX_BARS = 128
MAX_SECONDS = 300.0
MAX_MELODY_NOTES = 2000  # an upload with more notes is not a melody to harmonise or continue
MAX_MELODY_SECONDS = 5 * 60
# What the workers import once, in the clean server they are forked from.
WORKER_PRELOAD = ("pianocomposer.frontends.generate", "pianocomposer.frontends.harmonize",
                  "pianocomposer.frontends.demos", "matplotlib.figure", "soundfile", "verovio")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                 b"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin")]
# JSON fields of a composition and their types (every field optional).
COMPOSE_FIELDS: dict[str, type] = {"bundle": str, "length": int, "bars": int, "seconds": float, "key": str,
                                   "metre": str, "temperature": float, "top_p": float, "top_k": int, "seed": int}
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string"}
HARMONIZE_FIELDS: dict[str, type] = {"bundle": str, "seed": int, "temperature": float, "figuration": float,
                                     "name": str}
CONTINUE_FIELDS: dict[str, type] = {"bundle": str, "length": int, "temperature": float, "top_p": float,
                                    "top_k": int, "seed": int, "name": str}
# Rewriting bars: of an uploaded piece (the body), or of a result (`from`, its id); keep_melody 1 keeps the top voice.
INFILL_FIELDS: dict[str, type] = {"bundle": str, "from": str, "first": int, "last": int, "seed": int,
                                  "temperature": float, "candidates": int, "keep_melody": int, "name": str}
MAX_CANDIDATES = 16


class ApiError(Exception):
    """An answer other than 200: its HTTP status and one sentence for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BundleInfo:
    """A bundle the page offers, and what it can do."""

    name: str
    folder: Path
    encoding: str
    default_length: int
    harmonizes: bool  # a four-voice model: writes alto, tenor and bass under a melody
    continues: bool  # a MIDI model that continues a piece (cpc, timed)
    metre: bool  # writes a metre as it is asked (abc)
    infills: bool  # rewrites bars of a piece (timed, voices)

    def to_json(self) -> dict:
        """What the page needs to know about it."""
        return {"name": self.name, "encoding": self.encoding, "default_length": self.default_length,
                "harmonizes": self.harmonizes, "continues": self.continues, "metre": self.metre,
                "infills": self.infills}


def find_bundles(folders: list[Path] | None = None) -> dict[str, BundleInfo]:
    """Every bundle in the given folders (a bundle, or a folder of bundles), by folder name; by default the bundles
    trained into weights/ and the shipped ones (default, timed, abc, chorale). The first of a name is kept."""
    found: dict[str, BundleInfo] = {}
    seen: set[Path] = set()
    roots = folders if folders is not None else [DEFAULT_WEIGHTS_DIR, shipped_bundle("default").parent]
    for root in map(Path, roots):
        if folders is not None and not root.is_dir():
            raise PianoComposerError(f"{root}: no such folder of bundles")
        candidates = [root] if has_bundle(root) else sorted(p for p in root.glob("*") if has_bundle(p))
        for folder in candidates:
            name = folder.resolve().name
            if folder.resolve() in seen or name in found:
                continue
            seen.add(folder.resolve())
            try:
                meta = read_meta(folder)
                encoding = get_encoding(meta["encoding"], meta.get("encoding_params") or {})
            except (PianoComposerError, KeyError, ValueError) as exc:
                log.warning("bundle %s left out: %s", folder, first_line(exc))
                continue
            found[name] = BundleInfo(name, folder, encoding.name, encoding.default_length, encoding.harmonizes,
                                     encoding.keeps_time and not encoding.harmonizes, encoding.header_fields,
                                     encoding.infills)
    return dict(sorted(found.items(), key=lambda item: item[0] != "default"))  # the default model first


# --- in the worker processes -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _composer(folder: str):
    """The bundle loaded once per worker process."""
    from pianocomposer.composing.compose import Composer

    return Composer(Path(folder))


def _warm(folder: str) -> None:
    """Load a bundle in a worker before the first request needs it."""
    _composer(folder)


def _finish_files(out: Path, midi: Path | None, wav: Path | None, others: dict[str, Path | None], title: str
                  ) -> dict[str, str]:
    """Give a result's files their fixed names (OGG from the WAV, a piano roll from the MIDI); kind -> file name."""
    import pretty_midi

    from pianocomposer.writing.piece import plot_piano_roll
    from pianocomposer.writing.render import wav_to_ogg

    files: dict[str, str] = {}
    for kind, path in {"midi": midi, **others}.items():
        if path is not None and path.is_file():
            os.replace(path, out / KINDS[kind])
            files[kind] = KINDS[kind]
    if wav is not None:
        wav_to_ogg(wav, out / KINDS["ogg"])
        wav.unlink()
        files["ogg"] = KINDS["ogg"]
    if midi is not None:
        piece = pretty_midi.PrettyMIDI(str(out / KINDS["midi"]))
        if any(track.notes for track in piece.instruments):
            plot_piano_roll(piece, out / KINDS["png"], title)
            files["png"] = KINDS["png"]
    return files


def compose_job(folder: str, out: str, settings: dict, primer: str | None = None) -> dict:
    """In a worker: compose one piece (continuing `primer`, a MIDI file the sandbox wrote, where given) into `out`;
    its JSON."""
    from threadpoolctl import threadpool_limits

    from pianocomposer.composing.compose import Sampler
    from pianocomposer.frontends.generate import generate

    out_dir = Path(out)
    sampler = Sampler(**{k: settings[k] for k in ("temperature", "top_p", "top_k") if k in settings})
    controls = {k: settings[k] for k in ("length", "bars", "seconds", "key", "metre") if k in settings}
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):  # one process per core already
        result = generate(_composer(folder), out_dir, seed=settings["seed"], sampler=sampler, sheet=True, wav=True,
                          progress=False, primer=Path(primer) if primer else None, continuation=primer is not None,
                          **controls)
    piece = result.pieces[0]
    title = f"{Path(folder).name}, {sampler.describe()}, seed {settings['seed']}"
    files = _finish_files(out_dir, piece.midi, piece.wav, {"abc": piece.text, "musicxml": piece.musicxml,
                                                           "svg": piece.svg, "continuation": piece.continuation},
                          title)
    return {"tokens": len(piece.tokens), "loop_rate": round(piece.loop_rate, 4), "error": piece.error,
            "files": files, "seconds": round(time.perf_counter() - t0, 3),
            "settings": {k: v for k, v in result.settings.items() if v is not None and k in (
                "length", "seed", "temperature", "top_k", "top_p", "key", "metre", "bars", "seconds")}}


def harmonize_job(folder: str, out: str, settings: dict, melody: str) -> dict:
    """In a worker: harmonise a melody (a MIDI file the sandbox wrote) into `out`; its JSON."""
    from threadpoolctl import threadpool_limits

    from pianocomposer.frontends.harmonize import harmonize
    from pianocomposer.writing.score import write_svg

    out_dir, seed = Path(out), settings["seed"]
    t0 = time.perf_counter()
    options = {k: settings[k] for k in ("temperature", "figuration") if k in settings}
    with threadpool_limits(1, "blas"):
        (done,) = harmonize([Path(melody)], _composer(folder), out_dir, seed=seed, **options)
    write_svg(done.musicxml, done.musicxml.with_suffix(".svg"))
    files = _finish_files(out_dir, done.midi, done.wav, {"musicxml": done.musicxml,
                                                         "svg": done.musicxml.with_suffix(".svg")},
                          f"harmonised by {Path(folder).name}, seed {seed}")
    Path(melody).unlink()
    return {"files": files, "seconds": round(time.perf_counter() - t0, 3), "frames": done.frames,
            "melody_notes": done.melody_notes, "left_out": done.left_out,
            "nats_per_frame": round(done.nats_per_frame, 4),
            "voice_leading": {k: round(v, 4) for k, v in done.voice_leading.items()},
            "settings": {"seed": seed, **options}}


# --- in the sandbox ------------------------------------------------------------------------------------------------


def melody_midi(path: Path) -> bytes:
    """In the sandbox: an uploaded MIDI, MusicXML or abc file's first piece as MIDI bytes, checked to hold notes."""
    from pianocomposer.reading.readers import midi_bytes, read_midi

    try:
        midi = read_midi(path)
    except PianoComposerError as exc:  # without the server's path: "x.mid: cannot be played (...)"
        raise PianoComposerError(str(exc).removeprefix(f"{path}: ")) from None
    notes = sum(len(track.notes) for track in midi.instruments if not track.is_drum)
    if not notes:
        raise PianoComposerError("it holds no notes")
    if notes > MAX_MELODY_NOTES or midi.get_end_time() > MAX_MELODY_SECONDS:
        raise PianoComposerError(f"it is too long for a melody (at most {MAX_MELODY_NOTES} notes and "
                                 f"{MAX_MELODY_SECONDS // 60} minutes)")
    return midi_bytes(midi)


def sniff_suffix(head: bytes) -> str | None:
    """What an upload is, by its first bytes: .mid, .mxl (zipped MusicXML), .musicxml or .abc; None if none."""
    if head.startswith(b"MThd"):
        return ".mid"
    if head.startswith(b"PK\x03\x04"):
        return ".mxl"
    text = head.decode("utf-8", errors="replace")
    if re.search(r"<score-(partwise|timewise)\b", text):
        return ".musicxml"
    if re.search(r"(?m)^X:[ \t]*\d", text):
        return ".abc"
    return None


# --- the server ----------------------------------------------------------------------------------------------------


@dataclass
class Limits:
    """How much the server takes on: worker processes, jobs waiting, upload size, disk, time to read an upload."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    queue: int = 32  # jobs waiting for a worker beyond those running; past it, 503
    max_upload_bytes: int = 2 * 2**20
    quota_bytes: int = 2 * 2**30
    parse_timeout_s: float = 20.0

    def __post_init__(self):
        self.workers = max(1, min(self.workers, os.cpu_count() or 1))  # never more processes than cores
        if self.queue < 0 or self.max_upload_bytes <= 0 or self.quota_bytes <= 0 or self.parse_timeout_s <= 0:
            raise PianoComposerError("the queue must be >= 0; the upload limit, quota and time-out positive")


def folder_bytes(folder: Path) -> int:
    """The bytes of the files in a folder (not below)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def enforce_quota(out: Path, quota_bytes: int, busy: set[str] = frozenset()) -> list[str]:
    """Remove finished results, oldest first, until the results under `out` fit in quota_bytes; the ids removed.
    Results being made (`busy`) are never removed."""
    results = [p for p in out.iterdir() if p.is_dir() and RESULT_ID.fullmatch(p.name)]
    sizes = {p.name: folder_bytes(p) for p in results}
    total = sum(sizes.values())
    removed = []
    finished = sorted((p for p in results if p.name not in busy and (p / RESULT_FILE).is_file()),
                      key=lambda p: ((p / RESULT_FILE).stat().st_mtime, p.name))
    for folder in finished:
        if total <= quota_bytes:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= sizes[folder.name]
        removed.append(folder.name)
    return removed


def checked(values: dict, fields: dict[str, type]) -> dict:
    """Request fields of the right types (null: not given); unknown fields are an error."""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}; the fields are {', '.join(fields)}")
    settings = {}
    for name, value in values.items():
        kind = fields[name]
        if value is None:
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ApiError(400, f"{name} must be {TYPE_WORDS[kind]} (got {json.dumps(value)[:40]})")
        settings[name] = value
    for name, low, high in (("length", 1, 10**5), ("bars", 1, MAX_BARS), ("seconds", 0.1, MAX_SECONDS),
                            ("seed", 0, 2**32 - 1), ("top_k", 0, 10**6), ("figuration", -FLORID, FLORID),
                            ("first", 1, MAX_BARS), ("last", 1, MAX_BARS), ("candidates", 1, MAX_CANDIDATES),
                            ("keep_melody", 0, 1)):
        if name in settings and not low <= settings[name] <= high:
            raise ApiError(400, f"{name} must be between {low:g} and {high:g} (got {settings[name]:g})")
    for name in ("key", "metre", "bundle", "name", "from"):
        if len(settings.get(name, "")) > 100:
            raise ApiError(400, f"{name} is too long (at most 100 characters)")
    return settings


def query_values(request: Request, fields: dict[str, type]) -> dict:
    """The query string's fields, as numbers where the field is one."""
    values: dict = {}
    for name, text in request.query_params.items():
        kind = fields.get(name, str)
        try:
            values[name] = kind(text) if kind in (int, float) else text
        except ValueError:
            raise ApiError(400, f"{name} must be {TYPE_WORDS[kind]} (got {text[:40]!r})") from None
    return values


class Server:
    """The server's state: bundles, limits, the output folder, the worker pool and the jobs admitted."""

    def __init__(self, out: Path, bundles: dict[str, BundleInfo], limits: Limits):
        if not bundles:
            raise PianoComposerError("no model bundles found: train one into weights/ or pass --weights DIR")
        self.out, self.bundles, self.limits = Path(out), bundles, limits
        self.pool: ProcessPoolExecutor | None = None
        self.admitted = 0  # requests holding a place: running, waiting for a worker, or uploading and parsing
        self.busy: set[str] = set()  # result ids being made
        self.parsing = asyncio.Semaphore(limits.workers)  # sandboxed readers at once

    def start(self) -> None:
        """Make the output folder, clear what a previous run left half made, start the workers."""
        self.out.mkdir(parents=True, exist_ok=True)
        for folder in self.out.iterdir():
            if folder.is_dir() and RESULT_ID.fullmatch(folder.name) and not (folder / RESULT_FILE).is_file():
                shutil.rmtree(folder, ignore_errors=True)
        self.pool = process_pool(self.limits.workers, WORKER_PRELOAD)
        first = next(iter(self.bundles.values()))
        for _ in range(self.limits.workers):  # the processes start now and load a bundle, not at the first request
            self.pool.submit(_warm, str(first.folder))

    def stop(self) -> None:
        """Stop the workers: jobs waiting are cancelled, running ones finish (without waiting, the pool's manager
        thread races the interpreter's exit and can print a 'Bad file descriptor' traceback: CPython gh-83386)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """A place among the jobs running or waiting, or 503 when the queue is full."""
        capacity = self.limits.workers + self.limits.queue
        if self.admitted >= capacity:
            raise ApiError(503, f"the server is busy ({capacity} requests are being made or waiting); "
                                "try again in a few seconds")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    def bundle(self, name: str | None, need: str) -> BundleInfo:
        """The bundle a request names (by default the first that can do what it needs)."""
        able = [b for b in self.bundles.values() if need == "compose" or getattr(b, need)]
        what = {"compose": "compose", "harmonizes": "harmonise a melody (a four-voice model such as chorale does)",
                "continues": "continue a piece (a MIDI model such as default or timed does)",
                "infills": "rewrite bars of a piece (a timed or four-voice model such as timed or chorale does)"}[need]
        if name is None:
            if not able:
                raise ApiError(400, f"no bundle here can {what}")
            return able[0]
        if name not in self.bundles:
            raise ApiError(400, f"no bundle named {name!r}; the bundles are {', '.join(self.bundles)}")
        if self.bundles[name] not in able:
            raise ApiError(400, f"bundle {name!r} cannot {what}")
        return self.bundles[name]

    @staticmethod
    def check_length(settings: dict, info: BundleInfo) -> None:
        """A length within what the bundle's pieces may take: MAX_LENGTH, or its own pieces' most."""
        most = max(MAX_LENGTH, info.default_length)
        if settings.get("length", 0) > most:
            raise ApiError(400, f"length must be at most {most} tokens for bundle {info.name!r} "
                                f"(got {settings['length']})")

    def new_result(self) -> tuple[str, Path]:
        """A fresh result id and its folder."""
        result_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"
        folder = self.out / result_id
        folder.mkdir(parents=True)
        self.busy.add(result_id)
        return result_id, folder

    def public(self, message: str) -> str:
        """A message for the user: field names as the API spells them, no server paths."""
        message = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)
        for info in self.bundles.values():
            message = message.replace(str(info.folder), info.name)
        return re.sub(re.escape(str(self.out)) + r"/[^\s:]*", "the upload", message)

    async def run(self, result_id: str, folder: Path, job, *args, answer: dict) -> JSONResponse:
        """Run a job in the pool; write and answer its result, or remove its folder and answer why it failed."""
        pool = self.pool
        try:
            data = await asyncio.wrap_future(pool.submit(job, *args))
        except BrokenProcessPool:  # a worker died (killed, out of memory): every job it held fails, once
            if self.pool is pool:
                log.error("a worker process died; starting the pool anew")
                pool.shutdown(wait=False, cancel_futures=True)
                self.pool = process_pool(self.limits.workers, WORKER_PRELOAD)
            raise ApiError(500, "the composing process crashed; try again") from None
        except PianoComposerError as exc:
            raise ApiError(422, self.public(first_line(exc))) from None
        except Exception as exc:
            log.exception("job %s failed", result_id)
            raise ApiError(500, f"composing failed ({type(exc).__name__}: {self.public(first_line(exc))})") from None
        files = {kind: f"/results/{result_id}/{kind}" for kind in data.pop("files")}
        result = {"id": result_id, **answer, **data, "files": files}
        write_json(folder / RESULT_FILE, result)
        return JSONResponse(result)

    async def job(self, job, bundle: BundleInfo, settings: dict, answer: dict, upload: Request | None = None,
                  copy: Path | None = None) -> JSONResponse:
        """Admit a request, read its upload where it has one (or copy a result's file), run job(bundle folder,
        result folder, settings, melody); its folder goes when it fails."""
        async with self.place():
            result_id, folder = self.new_result()
            try:
                melody = str(await self.read_melody(upload, folder, answer.get("name"))) if upload else None
                if copy is not None:
                    melody = str(shutil.copyfile(copy, folder / f"{answer.get('source') or 'piece'}.mid"))
                return await self.run(result_id, folder, job, str(bundle.folder), str(folder), settings, melody,
                                      answer={**answer, "bundle": bundle.name})
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            finally:
                self.busy.discard(result_id)
                removed = enforce_quota(self.out, self.limits.quota_bytes, self.busy)
                if removed:
                    log.info("disk quota: removed %d oldest results", len(removed))

    async def read_melody(self, request: Request, folder: Path, name: str | None) -> Path:
        """The request body, read up to the size limit as it arrives, parsed in the sandbox: the melody's MIDI,
        named after the upload's name where it gives one (the score's title)."""
        limit = self.limits.max_upload_bytes
        too_big = ApiError(413, f"the file is larger than the limit of {limit / 2**20:g} MB")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise too_big
        upload, size = folder / "upload", 0
        with open(upload, "wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                file.write(chunk)
        if size == 0:
            raise ApiError(400, "the file is empty; send a MIDI, MusicXML or abc file as the request body")
        with open(upload, "rb") as file:
            suffix = sniff_suffix(file.read(64 * 1024))
        if suffix is None:
            raise ApiError(415, "this is not a MIDI, MusicXML or abc file (MIDI starts with MThd, MusicXML has "
                                "<score-partwise>, an abc tune an X: line)")
        upload = upload.rename(upload.with_suffix(suffix))
        try:
            async with self.parsing:
                midi = await asyncio.to_thread(call_sandboxed, melody_midi, (upload,), self.limits.parse_timeout_s)
        except PianoComposerError as exc:
            raise ApiError(422, f"the file cannot be used: {self.public(first_line(exc))}") from None
        finally:
            upload.unlink(missing_ok=True)
        stem = re.sub(r"[^\w .-]+", "", Path(name or "").stem).strip(" .") or "melody"
        melody = folder / f"{stem[:60]}.mid"
        with atomic_path(melody) as tmp:
            tmp.write_bytes(midi)
        return melody


async def _json_body(request: Request) -> dict:
    """The request body as a JSON object (empty: {}), read up to MAX_JSON_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(413, f"the settings are larger than {MAX_JSON_BYTES // 1024} KB")
    if not body.strip():
        return {}
    try:
        values = json.loads(body)
    except ValueError:
        raise ApiError(400, 'the body is not JSON; send settings such as {"bundle": "default", "length": 300}') \
            from None
    if not isinstance(values, dict):
        raise ApiError(400, "the body must be a JSON object of settings")
    return values


def _server(request: Request) -> Server:
    return request.app.state.server


async def page(request: Request) -> Response:
    """The page."""
    return Response(PAGE.read_bytes(), media_type="text/html; charset=utf-8")


async def script(request: Request) -> Response:
    """The page's script."""
    return Response(SCRIPT.read_bytes(), media_type="text/javascript; charset=utf-8")


async def list_bundles(request: Request) -> JSONResponse:
    """The bundles on offer, and the limits."""
    server = _server(request)
    return JSONResponse({"bundles": [b.to_json() for b in server.bundles.values()],
                         "max_upload_bytes": server.limits.max_upload_bytes, "max_length": MAX_LENGTH,
                         "max_bars": MAX_BARS})


def _seeded(settings: dict) -> dict:
    """The settings with a seed: the one asked for, else a fresh one (reported, so a piece can be made again)."""
    return {**settings, "seed": settings["seed"] if "seed" in settings else secrets.randbelow(2**31)}


async def compose(request: Request) -> JSONResponse:
    """POST /api/compose: a JSON object of settings (all optional) -> a new piece's files."""
    server = _server(request)
    settings = _seeded(checked(await _json_body(request), COMPOSE_FIELDS))
    info = server.bundle(settings.pop("bundle", None), "compose")
    server.check_length(settings, info)
    return await server.job(compose_job, info, settings, {"kind": "compose"})


async def harmonize(request: Request) -> JSONResponse:
    """POST /api/harmonize: a melody file as the body, settings in the query -> its harmonisation's files."""
    server = _server(request)
    settings = _seeded(checked(query_values(request, HARMONIZE_FIELDS), HARMONIZE_FIELDS))
    info = server.bundle(settings.pop("bundle", None), "harmonizes")
    name = settings.pop("name", None)
    return await server.job(harmonize_job, info, settings, {"kind": "harmonize", "name": name}, upload=request)


async def continue_melody(request: Request) -> JSONResponse:
    """POST /api/continue: a piece as the body, settings in the query -> the piece with its continuation."""
    server = _server(request)
    settings = _seeded(checked(query_values(request, CONTINUE_FIELDS), CONTINUE_FIELDS))
    info = server.bundle(settings.pop("bundle", None), "continues")
    server.check_length(settings, info)
    name = settings.pop("name", None)
    return await server.job(_continue_job, info, settings, {"kind": "continue", "name": name}, upload=request)


async def infill(request: Request) -> JSONResponse:
    """POST /api/infill: bars `first`-`last` of a piece rewritten, the piece a result's (`from`: its id, no body) or
    the body (a MIDI, MusicXML or abc file) -> the piece with those bars rewritten."""
    server = _server(request)
    settings = _seeded(checked(query_values(request, INFILL_FIELDS), INFILL_FIELDS))
    info = server.bundle(settings.pop("bundle", None), "infills")
    if "first" not in settings:
        raise ApiError(400, "first (the first bar to rewrite, from 1) is required")
    settings.setdefault("last", settings["first"])
    if settings["last"] < settings["first"]:
        raise ApiError(400, f"an empty range of bars: {settings['first']}-{settings['last']}")
    source, name = settings.pop("from", None), settings.pop("name", None)
    answer = {"kind": "infill", "name": name, "source": source}
    if source is None:
        return await server.job(infill_job, info, settings, answer, upload=request)
    piece = _result_folder(request, source) / KINDS["midi"]
    if not piece.is_file() or piece.is_symlink():
        raise ApiError(404, f"result {source} has no MIDI file to rewrite")
    return await server.job(infill_job, info, settings, answer, copy=piece)


def infill_job(folder: str, out: str, settings: dict, piece: str) -> dict:
    """In a worker: rewrite bars of a piece (a MIDI file in `out`) into `out`; its JSON."""
    from threadpoolctl import threadpool_limits

    from pianocomposer.frontends.infill import infill
    from pianocomposer.writing.score import write_svg

    out_dir, bars = Path(out), (settings["first"], settings["last"])
    options = {k: settings[k] for k in ("temperature", "candidates") if k in settings}
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):
        (done,) = infill([Path(piece)], bars, _composer(folder), out_dir, seed=settings["seed"], sheet=True,
                         keep_melody=bool(settings.get("keep_melody")), **options)
    Path(piece).unlink()
    write_svg(done.musicxml, done.musicxml.with_suffix(".svg"))
    files = _finish_files(out_dir, done.midi, done.wav, {"musicxml": done.musicxml,
                                                         "svg": done.musicxml.with_suffix(".svg")},
                          f"bars {bars[0]}-{bars[1]} rewritten by {Path(folder).name}, seed {settings['seed']}")
    return {"files": files, "seconds": round(time.perf_counter() - t0, 3), "bars": list(bars),
            "kept": done.kept, "replaced": done.replaced, "written": done.written, "candidates": done.candidates,
            "settings": {"seed": settings["seed"], "bars": f"{bars[0]}-{bars[1]}", **options}}


def _continue_job(folder: str, out: str, settings: dict, primer: str) -> dict:
    """In a worker: compose_job continuing the primer, which then goes."""
    data = compose_job(folder, out, settings, primer)
    Path(primer).unlink()
    return data


async def result(request: Request) -> JSONResponse:
    """GET /api/results/{id}: a finished result's JSON."""
    folder = _result_folder(request)
    return JSONResponse(json.loads((folder / RESULT_FILE).read_text(encoding="utf-8")))


def _result_folder(request: Request, result_id: str | None = None) -> Path:
    """The folder of the finished result the URL (or `result_id`) names by id, or 404."""
    result_id = result_id or request.path_params["result_id"]
    folder = _server(request).out / result_id
    if not RESULT_ID.fullmatch(result_id) or folder.is_symlink() or not (folder / RESULT_FILE).is_file():
        raise ApiError(404, "no such result (results are removed, oldest first, when the disk quota is reached)")
    return folder


async def download(request: Request) -> Response:
    """GET /results/{id}/{kind}: one file of a result, by its kind (midi, ogg, png, svg, musicxml, abc)."""
    folder = _result_folder(request)
    kind = request.path_params["kind"]
    path = folder / KINDS[kind] if kind in KINDS else None
    if path is None or path.is_symlink() or not path.is_file():
        raise ApiError(404, f"this result has no {kind[:20]!r} file")
    attach = "inline" if kind in ("ogg", "png", "svg") else "attachment"
    return FileResponse(path, media_type=MEDIA_TYPES[kind], content_disposition_type=attach,
                        filename=f"pianocomposer-{folder.name}{SUFFIXES[kind]}")


async def api_error(request: Request, exc: Exception) -> JSONResponse:
    """Every error the user sees: JSON with one sentence, never a traceback."""
    if isinstance(exc, ApiError):
        status, message = exc.status, str(exc)
    elif isinstance(exc, ClientDisconnect):
        status, message = 400, "the request was cut off before its body was complete"
    else:  # uvicorn logs its traceback
        status, message = 500, f"the server failed ({type(exc).__name__}); see its log"
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def not_found(request: Request, exc: Exception) -> JSONResponse:
    """404 and 405 as JSON."""
    status = getattr(exc, "status_code", 404)
    return JSONResponse({"error": "no such page" if status == 404 else "method not allowed here"}, status_code=status)


class SecurityHeaders:
    """Every answer says: nothing but this server's own scripts, styles and media; no framing; no sniffing. A POST
    from another site's page (its Origin not this server's) is refused, so no web page can spend this machine."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if scope["method"] == "POST" and origin is not None and urlsplit(origin.decode("latin-1")).netloc != \
                headers.get(b"host", b"").decode("latin-1"):
            response = JSONResponse({"error": "requests from other sites are refused"}, status_code=403)
            return await response(scope, receive, self._with_headers(send))
        return await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send):
        async def sending(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)
        return sending


def create_app(out: Path = DEFAULT_SERVE_DIR, bundles: dict[str, BundleInfo] | None = None,
               limits: Limits | None = None, hosts: list[str] | None = None) -> Starlette:
    """The ASGI app: the page, the JSON API and the results in `out`; `hosts` the Host names it answers to."""
    server = Server(out, find_bundles() if bundles is None else bundles, limits or Limits())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            server.stop()

    routes = [Route("/", page), Route("/serve_page.js", script), Route("/api/bundles", list_bundles),
              Route("/api/compose", compose, methods=["POST"]), Route("/api/harmonize", harmonize, methods=["POST"]),
              Route("/api/continue", continue_melody, methods=["POST"]),
              Route("/api/infill", infill, methods=["POST"]),
              Route("/api/results/{result_id}", result), Route("/results/{result_id}/{kind}", download)]
    middleware = [Middleware(SecurityHeaders),
                  Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost", "[::1]"])]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={ApiError: api_error, ClientDisconnect: api_error, Exception: api_error,
                                        404: not_found, 405: not_found})
    app.state.server = server
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, out: Path = DEFAULT_SERVE_DIR, *,
          weights: list[Path] | None = None, limits: Limits | None = None) -> None:
    """Serve the page and the API on host:port (0: a free port, named in the first line) until interrupted, results
    under `out`."""
    import socket

    import uvicorn

    bundles = find_bundles(weights or None)
    wildcard = host in ("0.0.0.0", "::", "")
    app = create_app(out, bundles, limits, hosts=["*"] if wildcard else ["127.0.0.1", "localhost", "[::1]", host])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PianoComposerError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    log.info("pianocomposer serve: http://%s:%d/ (bundles %s; results in %s)", host if not wildcard else "127.0.0.1",
             sock.getsockname()[1], ", ".join(bundles), out)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it shut down on again: stopping is the normal end
        pass
