"""Batch audio demos: pieces per bundle and sampling setting, each as MIDI, WAV, OGG, piano roll, sheet music and
statistics, gathered on one static index.html (no JavaScript, no network, relative links)."""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import sys
import time
import warnings
from concurrent.futures import Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from pianocomposer.composing.compose import Composer, Sampler
from pianocomposer.config import DEFAULT_DEMOS_CONFIG, DEFAULT_DEMOS_DIR
from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError, first_line
from pianocomposer.judging.metrics import STATISTICS, loop_rate
from pianocomposer.learning.bundle import BUNDLE_FILE, has_bundle, resolve_weights
from pianocomposer.pool import process_pool
from pianocomposer.writing.atomic import write_json, write_text
from pianocomposer.writing.piece import plot_piano_roll, write_midi, write_score

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# Every file a finished piece has; the .json (written last) also records how the piece was made.
SUFFIXES = (".mid", ".wav", ".ogg", ".png", ".musicxml", ".svg", ".json")
SAMPLER_KEYS = {"temperature": (int, float), "top_k": int, "top_p": (int, float), "greedy": bool}
NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class DemoConfig:
    """What a demos run makes: bundles by name, sampling settings by name, pieces per setting, tokens per piece."""

    bundles: dict[str, Path]
    settings: dict[str, Sampler]
    pieces: int = 4
    length: int = 500
    seed: int = 0


@dataclass
class DemoPiece:
    """One piece's card: how it was made, its statistics, and the reason when it failed."""

    stem: str
    bundle: str
    setting: str
    seed: int
    info: dict = field(default_factory=dict)
    status: str = "new"  # new | reused | failed
    error: str | None = None


@dataclass
class DemosResult:
    """The pieces of a run, the bundles skipped as missing, and the seconds each phase took."""

    index: Path
    pieces: list[DemoPiece]
    missing: dict[str, Path]
    seconds: dict[str, float]

    def count(self, status: str) -> int:
        """Pieces with this status."""
        return sum(p.status == status for p in self.pieces)

    def to_json(self) -> dict:
        """A plain dict for --json output."""
        folder = self.index.parent
        return {"index": str(self.index),
                "pieces": [{"stem": p.stem, "bundle": p.bundle, "setting": p.setting, "seed": p.seed,
                            "status": p.status, "error": p.error,
                            "files": {} if p.error else {s[1:]: str(folder / f"{p.stem}{s}") for s in SUFFIXES},
                            "primer": p.info.get("primer"), "loop_rate": p.info.get("loop_rate"),
                            "statistics": p.info.get("statistics")} for p in self.pieces],
                "new": self.count("new"), "reused": self.count("reused"), "failed": self.count("failed"),
                "missing_bundles": {name: str(path) for name, path in self.missing.items()},
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def _check_type(path: Path, where: str, value: object, kind: type | tuple[type, ...]) -> None:
    """Reject a TOML value of the wrong type, in one line (bool is not taken for a number)."""
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise PianoComposerError(f"{path}: {where} has the wrong type ({type(value).__name__})")


def _names(path: Path, table: object, where: str) -> dict:
    """A non-empty TOML table whose keys can be used in file names."""
    if not isinstance(table, dict) or not table:
        raise PianoComposerError(f"{path}: [{where}] must be a table with at least one entry")
    for name in table:
        if not NAME.fullmatch(name):
            raise PianoComposerError(f"{path}: {where}.{name}: use letters, digits, '_', '-' or '.' in names")
    return table


def read_config(path: Path) -> DemoConfig:
    """The demos TOML file, checked: [bundles] name = folder, [settings.NAME] sampler keys, pieces, length, seed."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PianoComposerError(f"{path}: cannot read the demos config ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PianoComposerError(f"{path}: not valid TOML ({first_line(exc)})") from None
    unknown = set(data) - {"bundles", "settings", "pieces", "length", "seed"}
    if unknown:
        raise PianoComposerError(f"{path}: unknown keys {sorted(unknown)}")
    for key in ("pieces", "length", "seed"):
        if key in data:
            _check_type(path, key, data[key], int)
    bundles = {}
    for name, folder in _names(path, data.get("bundles"), "bundles").items():
        _check_type(path, f"bundles.{name}", folder, str)
        bundles[name] = Path(folder)
    settings = {}
    for name, values in _names(path, data.get("settings"), "settings").items():
        _check_type(path, f"settings.{name}", values, dict)
        for key, value in values.items():
            if key not in SAMPLER_KEYS:
                raise PianoComposerError(f"{path}: settings.{name}.{key}: unknown; use {', '.join(SAMPLER_KEYS)}")
            _check_type(path, f"settings.{name}.{key}", value, SAMPLER_KEYS[key])
        sampler = Sampler(**values)
        try:
            sampler.check()
        except PianoComposerError as exc:
            raise PianoComposerError(f"{path}: settings.{name}: {exc}") from None
        settings[name] = sampler
    config = DemoConfig(bundles, settings, **{k: data[k] for k in ("pieces", "length", "seed") if k in data})
    if config.pieces <= 0 or config.length <= 0:
        raise PianoComposerError(f"{path}: pieces and length must be positive")
    return config


def _finished(out: Path, stem: str, recipe: dict) -> dict | None:
    """The stored card of a piece whose files all exist and that was made by the same recipe, else None."""
    if not all((out / f"{stem}{s}").is_file() for s in SUFFIXES):
        return None
    try:
        info = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("recipe") == recipe else None


def _json_number(value: float) -> float | None:
    """A statistic for JSON: rounded, NaN as null."""
    return None if math.isnan(value) else round(float(value), 4)


def render_piece(out: Path, stem: str, info: dict) -> tuple[dict, dict[str, float]]:
    """In a worker: every file of a piece from its MIDI, then its .json card; return the card and seconds per step."""
    import pretty_midi

    from pianocomposer.judging.metrics import music_statistics
    from pianocomposer.writing.render import render_wav, wav_to_ogg

    warnings.simplefilter("ignore")  # music21 and pretty_midi warn about harmless details of generated MIDI
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = now - clock
        clock = now

    midi_path = out / f"{stem}.mid"
    wav = render_wav(midi_path)
    lap("wav")
    wav_to_ogg(wav, out / f"{stem}.ogg")
    lap("ogg")
    midi = pretty_midi.PrettyMIDI(str(midi_path))
    if not any(inst.notes for inst in midi.instruments):
        raise PianoComposerError(f"{midi_path}: the piece has no notes")
    plot_piano_roll(midi, out / f"{stem}.png", stem)
    lap("png")
    encoding = get_encoding(info["encoding"], info["encoding_params"])
    title = f"{info['bundle']}, {info['sampling']}, seed {info['seed']}"
    write_score(encoding, midi, info.get("text"), title, f"pianocomposer, model {info['bundle']}",
                out / f"{stem}.musicxml", out / f"{stem}.svg")
    lap("sheet")
    stats = music_statistics(midi)
    info = {**info, "seconds_of_music": round(midi.get_end_time(), 1),
            "notes": sum(len(inst.notes) for inst in midi.instruments),
            "statistics": {k: _json_number(v) for k, v in stats.items()}}
    write_json(out / f"{stem}.json", info)
    lap("statistics")
    return info, seconds


def _bundle_digest(folder: Path) -> str:
    """A short hash of bundle.json: a retrained bundle makes new pieces instead of reusing old ones."""
    try:
        return hashlib.sha256((folder / BUNDLE_FILE).read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def _reason(exc: BaseException) -> str:
    """Why a piece failed, in one line: a user error's own words, else the exception's type and message."""
    return first_line(exc) if isinstance(exc, PianoComposerError) else f"{type(exc).__name__}: {first_line(exc)}"


def _load(folder: Path) -> Composer | str:
    """The bundle loaded for composing, or the one-line reason it cannot be (all its pieces then fail)."""
    try:
        return Composer(folder)
    except Exception as exc:
        return _reason(exc)


def _compose(composer: Composer, out: Path, piece: DemoPiece, sampler: Sampler, length: int) -> None:
    """Generate one piece with its own seed and write its MIDI; piece.info gets the primer and loop rate."""
    (tokens, label), = composer.compose(length, 1, rng=np.random.default_rng(piece.seed), sampler=sampler)
    text = composer.encoding.text(tokens)
    if text is not None:  # a piece with a text form (an abc tune): its text is shown on the card and linked
        piece.info["text"], piece.info["text_suffix"] = text, composer.encoding.text_suffix
        write_text(out / f"{piece.stem}{composer.encoding.text_suffix}", text)
    write_midi(composer.to_midi(tokens), out / f"{piece.stem}.mid")
    piece.info.update(primer=label, tokens=len(tokens), loop_rate=round(loop_rate(tokens), 4),
                      encoding=composer.bundle.encoding_name, encoding_params=composer.encoding.params)


def _collect(piece: DemoPiece, future: Future, seconds: dict[str, float], bar: tqdm) -> bool:
    """Take a rendered piece's card and timings, or its failure; False (nothing taken) when its worker crashed."""
    try:
        piece.info, steps = future.result()
        for step, s in steps.items():
            seconds[step] += s
    except BrokenProcessPool:
        return False
    except Exception as exc:
        piece.status, piece.error = "failed", _reason(exc)
    bar.update()
    return True


def demos(config_path: Path = DEFAULT_DEMOS_CONFIG, out: Path = DEFAULT_DEMOS_DIR, *, pieces: int | None = None,
          length: int | None = None, jobs: int | None = None, progress: bool = True) -> DemosResult:
    """Make (or reuse) every piece the config lists, render them over `jobs` processes, and write index.html."""
    config = read_config(config_path)
    pieces = config.pieces if pieces is None else pieces
    length = config.length if length is None else length
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    for option, value in (("--pieces", pieces), ("--length", length), ("--jobs", jobs)):
        if value <= 0:
            raise PianoComposerError(f"{option} must be positive (got {value})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    folders = {name: resolve_weights(folder) for name, folder in config.bundles.items()}
    missing = {name: folder for name, folder in folders.items() if not has_bundle(folder)}
    present = {name: folder for name, folder in folders.items() if name not in missing}
    seconds = {"generate": 0.0, "wav": 0.0, "ogg": 0.0, "png": 0.0, "sheet": 0.0, "statistics": 0.0}
    cards: list[DemoPiece] = []
    # A fresh single-threaded server with the renderers imported once; each worker is a cheap fork of it.
    renderers = ("matplotlib.figure", "pretty_midi", "soundfile", "verovio", "muspy", "pianocomposer.judging.metrics",
                 "pianocomposer.writing.render", "pianocomposer.writing.score")
    # One BLAS thread for composing: the workers have the other cores, and OpenBLAS threads that must share a
    # core spin against each other (a 500-token piece took 11-16 s with two threads on a busy 2-core machine, 0.5 s
    # with one).
    with threadpool_limits(1, "blas"), process_pool(jobs, renderers) as pool, \
            tqdm(total=len(present) * len(config.settings) * pieces, desc="demos", unit="piece",
                 disable=not progress or None) as bar:
        running: dict[Future, DemoPiece] = {}
        crashed: list[DemoPiece] = []  # pieces whose worker, or another piece's, died and took the pool with it
        for bundle_name, folder in present.items():
            composer: Composer | str | None = None  # loaded when the first piece that is not reused needs it
            for setting, sampler in config.settings.items():
                for k in range(pieces):
                    piece = DemoPiece(f"{bundle_name}-{setting}-{k + 1:02d}", bundle_name, setting, config.seed + k)
                    cards.append(piece)
                    recipe = {"bundle": str(folder), "bundle_sha256": _bundle_digest(folder), "length": length,
                              "seed": piece.seed, "sampler": asdict(sampler)}
                    stored = _finished(out, piece.stem, recipe)
                    if stored is not None:
                        piece.info, piece.status = stored, "reused"
                        bar.update()
                        continue
                    piece.info = {"bundle": bundle_name, "setting": setting, "sampling": sampler.describe(),
                                  "seed": piece.seed, "recipe": recipe}
                    t0 = time.perf_counter()
                    composer = composer or _load(folder)
                    try:
                        if isinstance(composer, str):
                            raise PianoComposerError(composer)
                        _compose(composer, out, piece, sampler, length)
                    except Exception as exc:
                        piece.status, piece.error = "failed", _reason(exc)
                        bar.update()
                        continue
                    finally:
                        seconds["generate"] += time.perf_counter() - t0
                    try:
                        running[pool.submit(render_piece, out, piece.stem, piece.info)] = piece
                    except BrokenProcessPool:
                        crashed.append(piece)
        crashed += [running[f] for f in as_completed(running) if not _collect(running[f], f, seconds, bar)]
        for piece in crashed:  # retried one by one, each in a fresh worker: only a culprit crashes again
            with process_pool(1, renderers) as solo:
                future = solo.submit(render_piece, out, piece.stem, piece.info)
            if not _collect(piece, future, seconds, bar):
                piece.status, piece.error = "failed", "the rendering process crashed (a fault in a native library?)"
                bar.update()
    t0 = time.perf_counter()
    index = out / "index.html"
    write_text(index, page(cards, missing, config_path))
    seconds["page"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - started
    return DemosResult(index, cards, missing, seconds)


def _link(stem: str, suffix: str) -> str:
    """A relative URL to one of a piece's files."""
    return quote(f"{stem}{suffix}")


def _statistics_rows(info: dict) -> str:
    """The card's table of statistics."""
    rows = [("loop rate", f"{info.get('loop_rate', math.nan):.0%}"), ("notes", str(info.get("notes", "?"))),
            ("length", f"{info.get('seconds_of_music', math.nan):.0f} s")]
    for key, value in (info.get("statistics") or {}).items():
        label = STATISTICS.get(key, (key,))[0]
        rows.append((label, "n/a" if value is None else f"{value:.3g}"))
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)


def _card(piece: DemoPiece) -> str:
    """One piece as an HTML card: player, pictures, links and statistics, or the reason it failed."""
    e, info, stem = html.escape, piece.info, piece.stem
    head = (f"<h2>{e(stem)}</h2><p class=meta>bundle <b>{e(piece.bundle)}</b> · setting <b>{e(piece.setting)}</b> "
            f"({e(info.get('sampling', ''))}) · seed {piece.seed}"
            + (f" · {e(info['primer'])}" if info.get("primer") else "") + "</p>")
    text = f"<pre class=text>{e(info['text'])}</pre>" if "text" in info else ""  # an abc tune, valid or not
    if piece.error:
        return f"<section class='card failed'>{head}<p class=error>failed: {e(piece.error)}</p>{text}</section>"
    files = ((info["text_suffix"][1:], info["text_suffix"]),) if "text" in info else ()
    files += (("MIDI", ".mid"), ("WAV", ".wav"), ("MusicXML", ".musicxml"), ("sheet (SVG)", ".svg"))
    links = " · ".join(f"<a href='{_link(stem, s)}'>{name}</a>" for name, s in files)
    return (f"<section class=card>{head}"
            f"<audio controls preload=metadata src='{_link(stem, '.ogg')}'></audio>"
            f"<img class=roll src='{_link(stem, '.png')}' alt='piano roll of {e(stem)}'>"
            f"<div class=sheet><img src='{_link(stem, '.svg')}' alt='first page of the score of {e(stem)}'></div>"
            f"{text}<p class=links>{links}</p><table>{_statistics_rows(info)}</table></section>")


STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1em; }
.card { border: 1px solid #ccc; border-radius: 8px; padding: 0.8em; background: #fafafa; }
.card h2 { font-size: 1.05em; margin: 0 0 0.2em; }
.meta, .links { margin: 0.2em 0 0.5em; font-size: 0.9em; color: #555; }
audio, .roll { width: 100%; }
.sheet { background: #fff; max-height: 320px; overflow: auto; border: 1px solid #eee; }
.sheet img { width: 100%; }
.text { background: #fff; border: 1px solid #eee; max-height: 200px; overflow: auto; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.85em; width: 100%; }
th { text-align: left; font-weight: normal; color: #555; }
td { text-align: right; }
.failed { background: #fff1f0; border-color: #e0a0a0; }
.error { color: #a00; font-family: monospace; }
.note { background: #fffbe6; border: 1px solid #e6d9a0; padding: 0.5em 0.8em; border-radius: 6px; }
"""


def page(cards: list[DemoPiece], missing: dict[str, Path], config_path: Path) -> str:
    """The static gallery page: a note per missing bundle, then a card per piece."""
    e = html.escape
    notes = "".join(f"<p class=note>bundle <b>{e(name)}</b> skipped: no bundle in {e(str(folder))}</p>"
                    for name, folder in missing.items())
    failed = sum(p.error is not None for p in cards)
    summary = f"{len(cards)} pieces from {e(str(config_path))}" + (f", {failed} failed" if failed else "")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>pianocomposer demos</title>"
            "<meta name=viewport content='width=device-width, initial-scale=1'><link rel=icon href='data:,'>"
            f"<style>{STYLE}</style></head><body><h1>pianocomposer demos</h1><p>{summary}</p>{notes}"
            f"<main>{''.join(_card(p) for p in cards)}</main></body></html>\n")
