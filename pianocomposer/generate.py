"""Stage 3: compose new pieces with a trained bundle: incremental, batched, sampled, optionally primed."""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from pianocomposer.atomic import atomic_path, write_text
from pianocomposer.bundle import Bundle, has_bundle, read_bundle
from pianocomposer.config import (
    DEFAULT_LENGTH,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    DEFAULT_TUNE_TOKENS,
    DEFAULT_WEIGHTS_DIR,
    SHIPPED_BUNDLE_DIR,
    shipped_bundle,
)
from pianocomposer.errors import PianoComposerError
from pianocomposer.model import StepModel
from pianocomposer.render import render_wav

if TYPE_CHECKING:
    import pretty_midi


@dataclass
class Sampler:
    """How the next token is drawn from the network's probabilities."""

    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = 0
    top_p: float = DEFAULT_TOP_P
    greedy: bool = False

    def check(self) -> None:
        """Reject settings that make no sense, in one line."""
        if self.temperature <= 0:
            raise PianoComposerError(f"--temperature must be > 0 (got {self.temperature})")
        if self.top_k < 0:
            raise PianoComposerError(f"--top-k must be >= 0 (got {self.top_k})")
        if not 0 < self.top_p <= 1:
            raise PianoComposerError(f"--top-p must be in (0, 1] (got {self.top_p})")

    def __call__(self, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One token id per row of probs (batch, vocab)."""
        if self.greedy:
            return probs.argmax(axis=1)
        logp = np.log(np.maximum(probs, 1e-30)) / self.temperature
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        order = np.argsort(-p, axis=1)
        sorted_p = np.take_along_axis(p, order, axis=1)
        keep = np.ones_like(sorted_p, dtype=bool)
        if self.top_k:
            keep[:, self.top_k:] = False
        if self.top_p < 1:
            # keep the smallest prefix whose mass reaches top_p (always at least the top token)
            keep &= (np.cumsum(sorted_p, axis=1) - sorted_p) < self.top_p
        sorted_p = np.where(keep, sorted_p, 0.0)
        cdf = np.cumsum(sorted_p, axis=1)
        draws = rng.random((len(p), 1)) * cdf[:, -1:]
        picks = np.minimum((cdf < draws).sum(axis=1), p.shape[1] - 1)
        return order[np.arange(len(p)), picks]


def loop_rate(tokens: list[str], min_repeats: int = 8, max_period: int = 4) -> float:
    """Share of tokens inside a stretch where one token, or a cycle of up to max_period, repeats min_repeats+ times."""
    n = len(tokens)
    looped = np.zeros(n, dtype=bool)
    for period in range(1, max_period + 1):
        i = period
        while i < n:
            if tokens[i] != tokens[i - period]:
                i += 1
                continue
            j = i
            while j < n and tokens[j] == tokens[j - period]:
                j += 1
            start = i - period  # tokens[start:j] is the cycle tokens[start:i] repeated
            if (j - start) >= min_repeats * period:
                looped[start:j] = True
            i = j
    return float(looped.mean()) if n else 0.0


def prime(net: StepModel, primers: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run primers of any lengths through the network as one batch; return each row's next-token probabilities and
    recurrent state, as if each primer had run alone."""
    batch = len(primers)
    lengths = np.array([len(p) for p in primers])
    width = int(lengths.max())
    padded = np.zeros((batch, width), np.int32)
    for row, p in enumerate(primers):
        padded[row, width - len(p):] = p  # right-align: every row's last primer token is at the same step
    state = net.initial_state(batch)
    for t in range(width):
        probs, new_state = net.step(padded[:, t], state)
        started = (t >= width - lengths)[:, None]  # rows still in their left padding keep the zero state
        state = [np.where(started, new, old) for new, old in zip(new_state, state, strict=True)]
    return probs, state


def continue_sequences(net: StepModel, primers: list[np.ndarray], length: int, sampler: Sampler,
                       rng: np.random.Generator, progress: bool = False, stop_id: int | None = None) -> np.ndarray:
    """Prime the network with each primer, then sample `length` tokens per row, carrying the recurrent states;
    with stop_id, stop early once every row has drawn it (the columns after that are cut off)."""
    probs, state = prime(net, primers)
    out = np.zeros((len(primers), length), np.int32)
    stopped = np.zeros(len(primers), bool)
    for t in tqdm(range(length), desc="generate", unit="token", disable=not progress or None):
        out[:, t] = sampler(probs, rng)
        if stop_id is not None:
            stopped |= out[:, t] == stop_id
            if stopped.all():
                return out[:, :t + 1]
        probs, state = net.step(out[:, t], state)
    return out


def resolve_weights(weights: Path | str | None) -> Path:
    """The bundle folder: the one given (a folder, or the name of a shipped bundle such as `timed`), else
    weights/ if you trained one there, else the shipped default."""
    if weights is not None:
        weights = Path(weights)
        shipped = shipped_bundle(weights.name)
        if not has_bundle(weights) and len(weights.parts) == 1 and has_bundle(shipped):
            return shipped
        return weights
    return DEFAULT_WEIGHTS_DIR if has_bundle(DEFAULT_WEIGHTS_DIR) else SHIPPED_BUNDLE_DIR


def encode_primer(bundle: Bundle, primer: Path | None, primer_tokens: str | None,
                  primer_text: str | None = None) -> list[str] | None:
    """The primer as tokens of the bundle's vocabulary: unknown ones mapped to the nearest known, else dropped."""
    if primer is None and primer_tokens is None and primer_text is None:
        return None
    encoding = bundle.encoder
    if primer_text is not None:
        if not hasattr(encoding, "tokenize_primer"):
            raise PianoComposerError(f"--primer-text is for text encodings (abc); this bundle's is {bundle.encoding}")
        raw, label = encoding.tokenize_primer(primer_text), "--primer-text"
    elif primer is not None:
        if not Path(primer).is_file():
            raise PianoComposerError(f"{primer}: no such primer file")
        try:
            raw = encoding.encode_file(Path(primer))
        except Exception as exc:
            raise PianoComposerError(f"{primer}: not a readable MIDI file ({type(exc).__name__})") from None
        label = str(primer)
    else:
        raw, label = primer_tokens.split(), "--primer-tokens"
    known = bundle.vocabulary.tokens
    mapped, changed, dropped = [], 0, 0
    for token in raw:
        if token in bundle.vocabulary:
            mapped.append(token)
            continue
        try:
            near = encoding.nearest(token, known)
        except Exception:
            near = None
        changed += near is not None
        dropped += near is None
        if near is not None:
            mapped.append(near)
    if changed or dropped:
        print(f"warning: {label}: {changed} tokens mapped to the nearest known one, {dropped} skipped",
              file=sys.stderr)
    if not mapped:
        raise PianoComposerError(f"{label}: the primer has no usable notes for this model")
    return mapped if bundle.end_token else mapped[-bundle.config.seq_len:]  # a tune keeps its whole beginning


def unique_stem(out_dir: Path, prefix: str) -> str:
    """A file stem not used yet in out_dir (no .mid, .wav or .abc), so runs never overwrite each other."""
    stem, n = prefix, 1
    while any((out_dir / f"{stem}{suffix}").exists() for suffix in (".mid", ".wav", ".abc")):
        n += 1
        stem = f"{prefix}-{n}"
    return stem


@dataclass
class Piece:
    """One generated piece and where it was written (a text piece: its .abc, and MIDI only when it plays)."""

    midi: Path | None
    wav: Path | None
    tokens: list[str]
    loop_rate: float
    primer: str
    text: Path | None = None
    error: str | None = None  # why a text piece is not a valid tune


@dataclass
class GenerateResult:
    """The pieces and the seconds each phase took."""

    pieces: list[Piece]
    seconds: dict[str, float] = field(default_factory=dict)
    bundle: Path | None = None

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of the generation phase."""
        return sum(len(p.tokens) for p in self.pieces) / max(self.seconds.get("generate", 0.0), 1e-9)

    def to_json(self) -> dict:
        """A plain dict for --json output."""
        out = {"bundle": str(self.bundle), "pieces": [
            {"midi": str(p.midi) if p.midi else None, "wav": str(p.wav) if p.wav else None, "tokens": len(p.tokens),
             "loop_rate": round(p.loop_rate, 4), "primer": p.primer}
            | ({"abc": str(p.text), "valid": p.error is None, "error": p.error} if p.text else {})
            for p in self.pieces],
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "tokens_per_s": round(self.tokens_per_s, 1)}
        if any(p.text for p in self.pieces):
            out["valid"] = sum(p.error is None for p in self.pieces)
        return out


def blas_threads() -> int | None:
    """One BLAS thread when other work already fills the cores, else the library's default (None).

    Idle, OpenBLAS's two threads step the paper model 1.7x faster than one; with the cores busy (a training
    run beside it) its threads wait on each other and 500 tokens took 1-2 s instead of 0.6 s (BENCHMARKS.md).
    """
    return 1 if os.getloadavg()[0] >= (os.cpu_count() or 1) - 0.5 else None


def seed_primers(bundle: Bundle, n: int, rng: np.random.Generator) -> tuple[list[list[str]], list[str]]:
    """n primers from the bundle's stored seed windows in a random order (repeating past their count), labelled."""
    seeds = bundle.meta["seeds"]
    if not seeds:
        raise PianoComposerError(f"{bundle.path}: the bundle stores no seed windows to start from")
    picks = rng.permutation(len(seeds))
    chosen = [int(picks[i % len(seeds)]) for i in range(n)]
    missing = {t for i in chosen for t in seeds[i]} - set(bundle.vocabulary.tokens)
    if missing:
        raise PianoComposerError(f"{bundle.path}: seed tokens {sorted(missing)[:3]} are not in the bundle's "
                                 "vocabulary; the bundle is inconsistent")
    return [seeds[i] for i in chosen], [f"seed window {i}" for i in chosen]


def compose_tokens(bundle: Bundle, net: StepModel, primers: list[list[str]], length: int, sampler: Sampler,
                   rng: np.random.Generator, progress: bool = False) -> list[list[str]]:
    """Continue each primer by `length` tokens; in an encoding with an end token (abc), each piece is its primer
    and what follows up to and including the end token: a whole tune."""
    end = bundle.end_token
    ids = continue_sequences(net, [bundle.vocabulary.encode(p) for p in primers], length, sampler, rng, progress,
                             None if end is None else bundle.vocabulary.index[end])
    pieces = [bundle.vocabulary.decode(row) for row in ids]
    if end is None:
        return pieces
    return [p + (row[:row.index(end) + 1] if end in row else row) for p, row in zip(primers, pieces, strict=True)]


class Composer:
    """A bundle loaded once (weights only, no Keras) and kept for composing many pieces: for scripts and services.

        composer = Composer("weights/default")
        for i in range(10):
            generate(composer, "output", length=200, seed=i, wav=False)
    """

    def __init__(self, weights: Path | None = None):
        self.folder = resolve_weights(weights)
        self.bundle = read_bundle(self.folder)
        self.net = self.bundle.step_model()
        self.encoding = self.bundle.encoder

    def compose(self, length: int, num_outputs: int = 1, *, rng: np.random.Generator, sampler: Sampler,
                primer: Path | None = None, primer_tokens: str | None = None, primer_text: str | None = None,
                progress: bool = False) -> list[tuple[list[str], str]]:
        """num_outputs pieces of `length` tokens in one batch, each with a label naming what started it.

        A text encoding (abc) writes whole tunes: each starts with its primer (default: the start of a tune,
        `X:1`), is kept with it, and ends at the end-of-tune token or after `length` tokens.
        """
        bundle = self.bundle
        if bundle.end_token is not None and primer is None and primer_tokens is None and primer_text is None:
            primer_text = self.encoding.TUNE_START
        primed = encode_primer(bundle, primer, primer_tokens, primer_text)
        if primed is not None:
            label = str(primer or ("--primer-tokens" if primer_tokens is not None else repr(primer_text)))
            primers, labels = [primed] * num_outputs, [label] * num_outputs
        else:
            primers, labels = seed_primers(bundle, num_outputs, rng)
        with threadpool_limits(blas_threads(), "blas"):
            pieces = compose_tokens(bundle, self.net, primers, length, sampler, rng, progress)
        return list(zip(pieces, labels, strict=True))

    def to_midi(self, tokens: list[str], program: int = 0, qpm: float | None = None) -> pretty_midi.PrettyMIDI:
        """A piece as MIDI, at qpm or else the bundle's tempo (the training songs' median, timed encodings)."""
        return self.encoding.decode(tokens, program=program, qpm=qpm or self.bundle.meta.get("qpm"))


def generate(weights: Path | Composer | None = None, out_dir: Path = Path("output"), *, length: int | None = None,
             num_outputs: int = 1, seed: int | None = None, sampler: Sampler | None = None,
             primer: Path | None = None, primer_tokens: str | None = None, primer_text: str | None = None,
             program: int = 0, qpm: float | None = None, wav: bool = True, soundfont: Path | None = None,
             progress: bool = True) -> GenerateResult:
    """Generate num_outputs pieces of `length` tokens in one batch and write MIDI (and WAV) files.

    A text (abc) bundle writes whole tunes instead: each an .abc file, checked by music21's parser, with MIDI and
    WAV for the valid ones; `length` is then the most tokens a tune may take, and the primer text starts it.

    `weights` is a bundle folder, or a Composer that already holds one (no load time). `qpm` is the tempo of timed
    encodings (default: the training songs' median, stored in the bundle).
    """
    sampler = sampler or Sampler()
    sampler.check()
    if length is not None and length <= 0:
        raise PianoComposerError(f"--length must be positive (got {length})")
    if num_outputs <= 0:
        raise PianoComposerError(f"--num-outputs must be positive (got {num_outputs})")
    if not 0 <= program <= 127:
        raise PianoComposerError(f"--program must be a General MIDI program 0..127 (got {program})")
    if qpm is not None and not 10 <= qpm <= 400:
        raise PianoComposerError(f"--qpm must be between 10 and 400 quarter notes per minute (got {qpm})")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    composer = weights if isinstance(weights, Composer) else Composer(weights)
    seconds["load"] = time.perf_counter() - t0
    length = length or (DEFAULT_TUNE_TOKENS if composer.bundle.end_token else DEFAULT_LENGTH)

    t0 = time.perf_counter()
    composed = composer.compose(length, num_outputs, rng=np.random.default_rng(seed), sampler=sampler,
                                primer=primer, primer_tokens=primer_tokens, primer_text=primer_text,
                                progress=progress)
    seconds["generate"] = time.perf_counter() - t0

    out_dir = Path(out_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stems = [unique_stem(out_dir, f"piece-{stamp}-{i + 1:02d}") for i in range(len(composed))]
    midi_paths = [out_dir / f"{stem}.mid" for stem in stems]
    t0 = time.perf_counter()
    if composer.bundle.end_token is not None:
        texts = [out_dir / f"{stem}.abc" for stem in stems]
        errors = _write_tunes(composer, [tokens for tokens, _ in composed], texts, midi_paths, length, program, qpm)
    else:
        errors, texts = [None] * len(stems), [None] * len(stems)
        for (tokens, _), path in zip(composed, midi_paths, strict=True):
            with atomic_path(path) as tmp:
                composer.to_midi(tokens, program, qpm).write(str(tmp))
    midis = [path if error is None else None for path, error in zip(midi_paths, errors, strict=True)]
    seconds["write"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wavs = [render_wav(midi, soundfont=soundfont) if wav and midi else None for midi in midis]
    seconds["render"] = time.perf_counter() - t0
    rows = zip(composed, midis, wavs, texts, errors, strict=True)
    pieces = [Piece(midi, wav_path, tokens, loop_rate(tokens), label, text, error)
              for (tokens, label), midi, wav_path, text, error in rows]
    return GenerateResult(pieces, seconds, composer.folder)


TUNES_PER_PROCESS = 8  # fewer tunes than this per core are checked in this process (a worker costs ~1 s to start)


def _write_tunes(composer: Composer, tunes: list[list[str]], texts: list[Path], midis: list[Path], length: int,
                 program: int, qpm: float | None) -> list[str | None]:
    """Write each generated tune's text (numbered X:1, X:2, ...), check it with music21 and write the MIDI of each
    valid one, in parallel processes when there are many (music21 takes ~0.1 s a tune); why each is not valid."""
    from pianocomposer.encodings.abc import detokenize

    errors: list[str | None] = []
    jobs = []
    for i, (tokens, text, midi) in enumerate(zip(tunes, texts, midis, strict=True)):
        write_text(text, re.sub(r"^X:[^\n]*", f"X:{i + 1}", detokenize(tokens), count=1))
        ended = tokens[-1] == composer.bundle.end_token
        errors.append(None if ended else f"the tune did not end within {length} tokens")
        if ended:
            jobs.append((i, (composer.bundle.encoding, composer.bundle.meta["encoding_params"], tokens, midi,
                             program, qpm or composer.bundle.meta.get("qpm"))))
    workers = min(os.cpu_count() or 1, len(jobs) // TUNES_PER_PROCESS)
    if workers > 1:
        ctx = multiprocessing.get_context("forkserver")  # a clean process, not a fork of this threaded one
        ctx.set_forkserver_preload(["music21.converter", "pianocomposer.encodings"])
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_play_tune, [job for _, job in jobs], chunksize=4))
    else:
        results = [_play_tune(job) for _, job in jobs]
    for (i, _), error in zip(jobs, results, strict=True):
        errors[i] = error
    return errors


def _play_tune(job: tuple[str, dict, list[str], Path, int, float | None]) -> str | None:
    """Check one tune with music21 and write its MIDI file; the reason it is not valid, or None."""
    from pianocomposer.encodings import get_encoding
    from pianocomposer.encodings.abc import AbcError

    encoding, params, tokens, midi_path, program, qpm = job
    try:
        midi = get_encoding(encoding, params).decode(tokens, program=program, qpm=qpm)
    except AbcError as exc:
        return str(exc)
    with atomic_path(midi_path) as tmp:
        midi.write(str(tmp))
    return None
