"""Stage 1: parse a folder of music files (MIDI, abc books) into token lists, one per song, saved as JSON."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm

from pianocomposer.config import DEFAULT_TIMEOUT_S, TOKENS_FILE
from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError
from pianocomposer.pool import parse_files
from pianocomposer.reading.tokens import Skipped, Song, TokenData, load_tokens
from pianocomposer.writing.atomic import write_json

MAX_FILE_BYTES = 64 * 2**20  # larger files are not songs a user wants to learn from; they are refused unread
# Skips that depend on the run (its time-out, a killed parser), not on the file: a later run tries them again.
RETRY_REASONS = ("parsing took longer than", "parser crashed")
ENGINES = ("local", "ray")  # where files are parsed: local processes, or tasks on Ray (engines.py)


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


def _file_of(entry: Song | Skipped) -> str:
    """The file an entry came from (an abc tune's source is its book's name and the tune)."""
    return entry.source[:-len(entry.part) - 1] if entry.part else entry.source


def extract(input_dir: Path, out_dir: Path, *, encoding: str | None = None, encoding_params: dict | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None, engine: str = "local",
            progress: bool = True, like: Path | str | None = None) -> TokenData:
    """Tokenize every music file under input_dir into out_dir/tokens.json, reusing cached results; `like` (a bundle
    folder or a shipped name) takes that bundle's encoding and parameters, else `encoding` (default cpc)."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if like is not None:
        from pianocomposer.learning.bundle import read_meta, resolve_weights

        if encoding or encoding_params:
            raise PianoComposerError("--like takes the bundle's encoding and parameters; drop --encoding/--params")
        meta = read_meta(resolve_weights(like))
        encoding, encoding_params = meta["encoding"], meta.get("encoding_params")
    encoding = encoding or "cpc"
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

    cache_key = encoder.cache_key
    cache: dict[str, list[Song | Skipped]] = {}
    try:
        old = load_tokens(out_dir / TOKENS_FILE)
        if old.encoding == encoding and old.encoding_params == params and old.parser == cache_key:
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
                from pianocomposer.reading.engines import parse_files_ray as parse_all
            else:
                parse_all = parse_files
            for i, replies in parse_all(to_parse, encoding, params, timeout_s, workers, bar).items():
                entries[i] = [_entry(names[i], hashes[i], reply) for reply in replies]

    flat = [e for file_entries in entries for e in file_entries]
    data = TokenData(encoding=encoding, encoding_params=params, parser=cache_key, reused=reused,
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
