"""Stage 3: compose new pieces with a trained bundle (compose.py) and write them: MIDI, WAV, and the piece's text
form where its encoding has one (an abc tune's .abc), each file under a name no other run can take."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pretty_midi

from pianocomposer.composing.compose import Composer, Sampler, encode_primer
from pianocomposer.composing.controls import (
    Key,
    analysed_key,
    check_controls,
    cut,
    end_of,
    interval_to,
    parse_key,
    transpose_tokens,
)
from pianocomposer.encodings import get_encoding
from pianocomposer.errors import PianoComposerError, Unplayable
from pianocomposer.judging.metrics import loop_rate
from pianocomposer.pool import process_pool
from pianocomposer.reading.readers import read_midi
from pianocomposer.writing.atomic import write_text
from pianocomposer.writing.piece import write_midi, write_score
from pianocomposer.writing.render import render_wav
from pianocomposer.writing.score import midi_key

CUT_START_LENGTH = 500  # tokens first composed for pieces cut at --bars or --seconds (doubled while too short)
MAX_ATTEMPTS = 4  # tries to compose pieces in a key and of a length asked for, each with twice the tokens and pieces
WORKER_START_S = 1.0  # what a decoding process costs to start: decoding is spread over processes past this much work


def reserve_stems(out_dir: Path, prefix: str, count: int, suffixes: tuple[str, ...]) -> list[str]:
    """count file stems in out_dir that no file with any of the suffixes uses, each reserved atomically by creating
    its (empty) first-suffix file, so two runs at once never write the same files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stems: list[str] = []
    n = 0
    while len(stems) < count:
        n += 1
        stem = f"{prefix}-{n:02d}"
        if any((out_dir / f"{stem}{suffix}").exists() for suffix in suffixes):
            continue
        try:
            os.close(os.open(out_dir / f"{stem}{suffixes[0]}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:  # another run took it between the check and the creation
            continue
        stems.append(stem)
    return stems


@dataclass
class Piece:
    """One generated piece and where it was written (MIDI only when it plays; its text form where it has one)."""

    midi: Path | None
    wav: Path | None
    tokens: list[str]
    loop_rate: float
    primer: str
    text: Path | None = None
    error: str | None = None  # why the piece is not whole or does not play (then it has no MIDI)
    continuation: Path | None = None  # with `continuation`: the continuation alone (the MIDI holds the primer too)
    musicxml: Path | None = None  # its score, with `sheet`
    svg: Path | None = None  # the score's first page


@dataclass
class GenerateResult:
    """The pieces and the seconds each phase took."""

    pieces: list[Piece]
    seconds: dict[str, float] = field(default_factory=dict)
    bundle: Path | None = None
    settings: dict = field(default_factory=dict)  # every control the pieces were made with

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of the generation phase."""
        return sum(len(p.tokens) for p in self.pieces) / max(self.seconds.get("generate", 0.0), 1e-9)

    def to_json(self) -> dict:
        """A plain dict for --json output."""
        out = {"bundle": str(self.bundle), "settings": self.settings, "pieces": [
            {"midi": str(p.midi) if p.midi else None, "wav": str(p.wav) if p.wav else None, "tokens": len(p.tokens),
             "loop_rate": round(p.loop_rate, 4), "primer": p.primer, "valid": p.error is None, "error": p.error}
            | ({p.text.suffix[1:]: str(p.text)} if p.text else {})  # the text form by its kind: "abc"
            | ({"musicxml": str(p.musicxml), "svg": str(p.svg)} if p.musicxml else {})
            | ({"continuation": str(p.continuation)} if p.continuation else {})
            for p in self.pieces],
            "valid": sum(p.error is None for p in self.pieces),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "tokens_per_s": round(self.tokens_per_s, 1)}
        return out


def generate(weights: Path | Composer | None = None, out_dir: Path = Path("output"), *, length: int | None = None,
             num_outputs: int = 1, seed: int | None = None, sampler: Sampler | None = None,
             primer: Path | None = None, primer_tokens: str | None = None, primer_text: str | None = None,
             program: int = 0, qpm: float | None = None, wav: bool = True, soundfont: Path | None = None,
             sheet: bool = False, key: str | None = None, metre: str | None = None, bars: int | None = None,
             seconds: float | None = None, continuation: bool = False, progress: bool = True,
             constrained: bool = True) -> GenerateResult:
    """Generate num_outputs pieces of `length` tokens (default: the encoding's) in one batch and write each as MIDI
    (and WAV), with its text form where the encoding has one; a piece that does not play is named with the reason.

    `weights` is a bundle folder, or a Composer that already holds one (no load time). `qpm` is the tempo of timed
    encodings (default: the training songs' median, stored in the bundle). `constrained=False` lets the sampler
    draw what the encoding's constraint would mask (abc: bars of any length), for comparison. `sheet` writes each
    piece's score as MusicXML and its first page as SVG, titled with the bundle, sampling and seed.

    A `key` ("D major"; abc also modes, "Dmix") and an abc `metre` ("6/8") are written in an abc tune's header
    by the sampler; other pieces start from the key where their encoding names keys (voices), and are moved into
    it by the key music21 hears in them (the pieces of the other mode are left out, more are composed). `bars` or
    `seconds` cut MIDI pieces at that bar line or beat, composing longer where a piece falls short.
    `continuation` (with a primer file) writes the primer and its continuation as one MIDI file, at the primer's
    tempo and with its key signature, and the continuation alone beside it (NAME-continuation.mid).
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
    spent: dict[str, float] = {}
    t0 = time.perf_counter()
    composer = weights if isinstance(weights, Composer) else Composer(weights)
    encoding = composer.encoding
    spent["load"] = time.perf_counter() - t0
    wanted = parse_key(key) if key is not None else None
    check_controls(encoding, wanted, metre, bars, seconds, length)
    lead = None
    if continuation:
        if primer is None or wanted or bars or seconds or not encoding.keeps_time:
            raise PianoComposerError("--continue needs --primer FILE and a MIDI encoding, and keeps the primer's "
                                     "key and --length (not --key, --bars or --seconds)")
        lead = read_midi(Path(primer))
        tempos = lead.get_tempo_changes()[1]
        qpm = qpm or (float(tempos[0]) if len(tempos) else None)
    length = length or (min(encoding.default_length, CUT_START_LENGTH) if bars or seconds else encoding.default_length)

    t0 = time.perf_counter()
    options = {"sampler": sampler, "primer": primer, "primer_tokens": primer_tokens, "primer_text": primer_text,
               "progress": progress, "constrained": constrained}
    fields = {**({"K": wanted.abc} if wanted else {}), **({"M": metre} if metre else {})}
    played = None
    if encoding.bars_in_tokens and bars is not None:
        composed = _tunes_of_bars(composer, num_outputs, length, seed, bars, {**options, "fields": fields or None})
    elif encoding.header_fields or (wanted is None and bars is None and seconds is None):
        composed = composer.compose(length, num_outputs, rng=np.random.default_rng(seed), fields=fields or None,
                                    **options)
    else:
        composed, played = _compose_to_order(composer, num_outputs, length, seed, wanted, bars, seconds, program,
                                             qpm, options)
    spent["generate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stems = reserve_stems(out_dir, f"piece-{stamp}", len(composed), encoding.outputs)
    texts: list[Path | None] = []
    for i, ((tokens, _), stem) in enumerate(zip(composed, stems, strict=True)):
        text = encoding.text(tokens, number=i + 1)
        texts.append(None if text is None else out_dir / f"{stem}{encoding.text_suffix}")
        if text is not None:
            write_text(texts[-1], text)
    continuations: list[Path | None] = [None] * len(composed)
    if lead is not None:  # the whole primer and each continuation as one piece, and the continuation alone
        whole = encode_primer(composer.bundle, primer, None, None, whole=True)
        signature = lead.key_signature_changes[:1] or [pretty_midi.KeySignature(
            midi_key(lead)[0] + 12 * midi_key(lead)[1], 0.0)]
        played, continuations = [], [out_dir / f"{stem}-continuation.mid" for stem in stems]
        for (tokens, _), path in zip(composed, continuations, strict=True):
            alone = composer.to_midi(tokens, program, qpm)
            alone.key_signature_changes = list(signature)
            write_midi(alone, path)
            played.append(composer.to_midi(whole + tokens, program, qpm))
            played[-1].key_signature_changes = list(signature)
    if played is None:
        errors = write_midi_files(composer, [tokens for tokens, _ in composed],
                                  [out_dir / f"{s}.mid" for s in stems], length, program, qpm)
    else:
        errors = [None] * len(played)
        for midi, stem in zip(played, stems, strict=True):
            write_midi(midi, out_dir / f"{stem}.mid")
    for stem, error in zip(stems, errors, strict=True):  # a reserved name whose piece wrote no such file
        placeholder = out_dir / f"{stem}{encoding.outputs[0]}"
        if error is not None and placeholder.stat().st_size == 0:
            placeholder.unlink()
    midis = [out_dir / f"{stem}.mid" if error is None else None for stem, error in zip(stems, errors, strict=True)]
    spent["write"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wavs = [render_wav(midi, soundfont=soundfont) if wav and midi else None for midi in midis]
    spent["render"] = time.perf_counter() - t0
    rows = zip(composed, midis, wavs, texts, errors, strict=True)
    pieces = [Piece(midi, wav_path, tokens, loop_rate(tokens), label, text, error, alone)
              for ((tokens, label), midi, wav_path, text, error), alone in zip(rows, continuations, strict=True)]
    if sheet:
        t0 = time.perf_counter()
        for number, piece in enumerate(pieces, 1):
            if piece.midi is not None:
                title = f"{composer.folder.name}, {sampler.describe()}, seed {seed}, piece {number}"
                piece.musicxml, piece.svg = piece.midi.with_suffix(".musicxml"), piece.midi.with_suffix(".svg")
                write_score(encoding, pretty_midi.PrettyMIDI(str(piece.midi)), encoding.text(piece.tokens, number),
                            title, f"pianocomposer, model {composer.folder.name}", piece.musicxml, piece.svg)
        spent["sheet"] = time.perf_counter() - t0
    settings = {"length": length, "num_outputs": num_outputs, "seed": seed, "temperature": sampler.temperature,
                "top_k": sampler.top_k, "top_p": sampler.top_p, "min_p": sampler.min_p, "greedy": sampler.greedy,
                "primer": str(primer) if primer else None, "primer_tokens": primer_tokens, "primer_text": primer_text,
                "program": program, "qpm": qpm, "key": str(wanted) if wanted else None, "metre": metre, "bars": bars,
                "seconds": seconds, "continuation": continuation, "sheet": sheet, "rules": constrained, "wav": wav}
    return GenerateResult(pieces, spent, composer.folder, settings)


def _compose_to_order(composer: Composer, count: int, length: int, seed: int | None, key: Key | None,
                      bars: int | None, duration: float | None, program: int, qpm: float | None, options: dict
                      ) -> tuple[list[tuple[list[str], str]], list[pretty_midi.PrettyMIDI]]:
    """`count` MIDI pieces in the key and of the length asked for, and their tokens (see generate)."""
    encoding, known = composer.encoding, composer.bundle.vocabulary.tokens
    start = encoding.key_primer(key.tonic, key.minor) if key is not None else None
    if start is not None and not set(start) <= set(known):
        start = None  # a key the model never saw: it is only moved there
    batch = count * (3 if key is not None else 1)  # a key's mode is kept by choosing: about half are of the other
    for _attempt in range(MAX_ATTEMPTS):
        composed = composer.compose(length, batch, rng=np.random.default_rng(seed), start=start,
                                    endless=bars is not None or duration is not None, **options)
        kept: list[tuple[tuple[list[str], str], pretty_midi.PrettyMIDI]] = []
        for tokens, label in composed:
            try:
                midi = shortened(composer.to_midi(tokens, program, qpm), bars, duration)
                if midi is None:
                    continue  # shorter than asked: the next attempt composes longer pieces
                if key is not None:  # the key of the piece as it will be heard, cut
                    tonic, minor = analysed_key(midi)
                    if minor != key.minor:
                        continue
                    tokens = transpose_tokens(encoding, tokens, interval_to(tonic, key.tonic))
                    midi = shortened(composer.to_midi(tokens, program, qpm), bars, duration)
                    if analysed_key(midi) != (key.tonic, key.minor):
                        continue  # moved an octave here and there, the music is heard in another key
                    midi.key_signature_changes = [pretty_midi.KeySignature(key.tonic + 12 * key.minor, 0.0)]
            except Unplayable:
                continue
            kept.append(((tokens, label), midi))
            if len(kept) == count:
                return [k[0] for k in kept], [k[1] for k in kept]
        length, batch = length * 2, batch * 2
    asked = " ".join(filter(None, (f"in {key}" if key else "", f"of {bars} bars" if bars else "",
                                   f"of {duration:g} s" if duration else "")))
    raise PianoComposerError(f"{composer.folder}: could not compose {count} pieces {asked} in {MAX_ATTEMPTS} tries "
                             "(each with twice the tokens and pieces of the last)")


def _tunes_of_bars(composer: Composer, count: int, length: int, seed: int | None, bars: int, options: dict
                   ) -> list[tuple[list[str], str]]:
    """`count` tunes of exactly `bars` whole bars, each ended at that bar line (see generate)."""
    batch = count * 2  # a tune that has a repeat open at that bar line cannot end there: it is left out
    for _attempt in range(MAX_ATTEMPTS):
        composed = composer.compose(length, batch, rng=np.random.default_rng(seed), endless=True, **options)
        kept = [(cut, label) for tokens, label in composed
                if (cut := composer.encoding.cut_at_bar(tokens, bars)) is not None]
        if len(kept) >= count:
            return kept[:count]
        length, batch = length * 2, batch * 2
    raise PianoComposerError(f"{composer.folder}: could not compose {count} tunes of {bars} bars that end there in "
                             f"{MAX_ATTEMPTS} tries (each with twice the tokens and tunes of the last)")


def shortened(midi: pretty_midi.PrettyMIDI, bars: int | None, seconds: float | None) -> pretty_midi.PrettyMIDI | None:
    """The piece cut to `bars` or `seconds` (as it is where neither is asked), or None where it is shorter."""
    return midi if bars is None and seconds is None else cut(midi, end_of(midi, bars, seconds))


def write_midi_files(composer: Composer, pieces: list[list[str]], paths: list[Path], length: int, program: int,
                     qpm: float | None) -> list[str | None]:
    """Write each whole piece's MIDI file; why each piece that is not whole or does not play has none.

    Decoding an abc tune goes through music21 (~0.1 s a tune): when the first piece shows that the rest would take
    longer than starting worker processes, the rest are decoded over the cores.
    """
    encoding = composer.encoding
    qpm = qpm or composer.bundle.meta.get("qpm")
    errors = [encoding.incomplete(tokens, length) for tokens in pieces]
    jobs = [(composer.bundle.encoding_name, encoding.params, tokens, path, program, qpm)
            for tokens, path, error in zip(pieces, paths, errors, strict=True) if error is None]
    if not jobs:
        return errors
    t0 = time.perf_counter()
    results = [_decode_to_file(jobs[0])]
    rest = jobs[1:]
    workers = min(os.cpu_count() or 1, int(len(rest) * (time.perf_counter() - t0) / WORKER_START_S))
    if workers > 1:
        with process_pool(workers) as pool:
            results += pool.map(_decode_to_file, rest, chunksize=4)
    else:
        results += [_decode_to_file(job) for job in rest]
    whole = iter(results)
    return [error if error is not None else next(whole) for error in errors]


def _decode_to_file(job: tuple[str, dict, list[str], Path, int, float | None]) -> str | None:
    """Decode one piece and write its MIDI file; the reason it does not play, or None."""
    encoding_name, params, tokens, path, program, qpm = job
    try:
        midi = get_encoding(encoding_name, params).decode(tokens, program=program, qpm=qpm)
    except Unplayable as exc:
        return str(exc)
    write_midi(midi, path)
    return None
