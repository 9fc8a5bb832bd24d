"""Command line: thin Typer wrappers that turn options into calls of the stage functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from pianocomposer.config import (
    CALIBRATION_SONGS,
    DEFAULT_DATA_DIR,
    DEFAULT_DEMOS_CONFIG,
    DEFAULT_DEMOS_DIR,
    DEFAULT_MIDI_DIR,
    DEFAULT_OUTPUT_DIR,
    DEFAULT_SERVE_DIR,
    DEFAULT_TEMPERATURE,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOP_P,
    DEFAULT_WEIGHTS_DIR,
    HARMONY_TEMPERATURE,
    PRESETS,
    TOKENS_FILE,
    TrainOptions,
)
from pianocomposer.encodings import ENCODINGS
from pianocomposer.errors import PianoComposerError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Learn music from a folder of MIDI files and compose new MIDI and audio.")


def _version(show: bool) -> None:
    if show:
        from pianocomposer import __version__

        typer.echo(f"pianocomposer {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """Learn music from a folder of MIDI files and compose new MIDI and audio."""

DEFAULT_LENGTHS = ", ".join(f"{name} {cls.default_length}" for name, cls in ENCODINGS.items())
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object with the result instead of prose.")]


def _emit(as_json: bool, payload: dict, lines: list[str]) -> None:
    """Print the result as JSON for scripts, or as lines for people."""
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        for line in lines:
            typer.echo(line)


@app.command()
def extract(
    input: Annotated[Path, typer.Option("--input", "-i", help="Folder of .mid/.midi (or .abc) files, searched "
                                        "recursively.")]
    = DEFAULT_MIDI_DIR,
    out: Annotated[Path, typer.Option("--out", "-o", help=f"Folder for {TOKENS_FILE}.")] = DEFAULT_DATA_DIR,
    encoding: Annotated[str | None, typer.Option(help="Token encoding: " + "; ".join(
        f"{name} ({cls.description}; reads {' '.join(cls.suffixes)})" for name, cls in ENCODINGS.items()) +
        " (default: cpc).", show_default=False)] = None,
    params: Annotated[str | None, typer.Option("--params", help='Encoding parameters as JSON, e.g. '
                                               '\'{"layout": "remi", "grid": {"0-4": 8}}\' for timed, '
                                               '\'{"unit": "token"}\' for abc (folk-rnn-style tokens; default: '
                                               'characters), \'{"grid": 4, "beats": false}\' for voices (frames '
                                               'without their place in the bar).',
                                               show_default=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed to parse one file.")] = DEFAULT_TIMEOUT_S,
    engine: Annotated[str, typer.Option(help="local (processes on this machine) or ray (tasks on a private local "
                                        "Ray, or on the cluster RAY_ADDRESS names; pip install "
                                        "'pianocomposer\\[ray]').")] = "local",
    like: Annotated[str | None, typer.Option(help="Tokenize with this bundle's encoding and parameters (a folder, "
                                             "or a shipped name such as base), for `train --from` it.",
                                             show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse MIDI files into note/chord tokens (skipping and naming files that cannot be read)."""
    from pianocomposer.reading.extract import extract as run

    try:
        encoding_params = json.loads(params) if params else None
    except ValueError as exc:
        raise PianoComposerError(f"--params: not JSON ({exc})") from None
    data = run(input, out, encoding=encoding, encoding_params=encoding_params, timeout_s=timeout, engine=engine,
               like=like)
    tokens = sum(len(s.tokens) for s in data.songs)
    if not as_json:
        for s in data.skipped:
            typer.echo(f"skipped {s.source}: {s.reason}", err=True)
    _emit(as_json, {"tokens_file": str(out / TOKENS_FILE), "ok": len(data.songs), "skipped": len(data.skipped),
                    "reused": data.reused, "tokens": tokens,
                    "skipped_files": [{"file": s.source, "reason": s.reason} for s in data.skipped]},
          [f"{len(data.songs)} ok, {len(data.skipped)} skipped ({data.reused} from cache); "
           f"{tokens} tokens -> {out / TOKENS_FILE}"])


def parse_transpose(spec: str) -> tuple[int, int]:
    """'-3..3' -> (-3, 3); '0' -> (0, 0)."""
    low, _, high = spec.partition("..")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise PianoComposerError(f"--transpose {spec!r}: expected LOW..HIGH semitones, e.g. -3..3") from None


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Folder (or file) with tokens.json from `extract`.")] = DEFAULT_DATA_DIR,
    weights: Annotated[Path, typer.Option(help="Bundle folder to write.")] = DEFAULT_WEIGHTS_DIR,
    epochs: Annotated[int, typer.Option(help="Epochs to run now (added to earlier ones with --resume).")] = 50,
    resume: Annotated[bool, typer.Option(help="Continue the bundle in --weights exactly where it stopped "
                                         "(weights, optimizer, data order); other settings are the bundle's.")]
    = False,
    preset: Annotated[str | None, typer.Option(help=f"{' | '.join(PRESETS)}: paper is the design's 3x512 network, "
                                               f"quick a small one for demos, abc GRU(256) x3 for abc text (default: "
                                               "the encoding's: " + ", ".join(f"{name} {cls.default_preset}" for
                                                                             name, cls in ENCODINGS.items()) + ").",
                                               show_default=False)] = None,
    cell: Annotated[str | None, typer.Option(help="Recurrent cell: lstm | gru (default: the preset's).",
                                             show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Override the preset's learning rate (also on "
                                                        "--resume).")] = None,
    val_split: Annotated[float | None, typer.Option(help=f"Share of whole songs held out for validation "
                                                    f"(default: {TrainOptions.val_split}).", show_default=False)]
    = None,
    transpose: Annotated[str | None, typer.Option(help="Augment training songs by semitones, e.g. -3..3 "
                                                  "(default: 0).", show_default=False)] = None,
    random_transpose: Annotated[bool | None, typer.Option(
        "--random-transpose", help="Each epoch trains each song once, in a key drawn from --transpose, instead of "
        "every transposed copy (large corpora).")] = None,
    base: Annotated[str | None, typer.Option(
        "--from", help="Fine-tune: start from this bundle (a folder, or a shipped name such as base) with its "
        "encoding, vocabulary and network; the data must be extracted with `extract --like` it. Defaults: "
        "0.3x its learning rate, --patience 3.", show_default=False)] = None,
    objective: Annotated[str | None, typer.Option(help="all: every position; last: last only (the original) "
                                                  "(default: all).", show_default=False)] = None,
    mixed_precision: Annotated[bool | None, typer.Option("--mixed-precision", help="bfloat16 compute (GPU, or "
                                                         "CPUs with AMX).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: split, initialisation, data order, dropout "
                                             "(default: 0).", show_default=False)] = None,
    patience: Annotated[int | None, typer.Option(help="Stop after this many epochs without a better val loss.")]
    = None,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget; stops cleanly when spent.")] = None,
    xla: Annotated[bool | None, typer.Option("--xla/--no-xla", help="Force XLA (default: off on TensorFlow).")]
    = None,
    tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs to WEIGHTS/tensorboard.")] = False,
    float16: Annotated[bool, typer.Option(help="Store the best model's weights as float16 (half the size).")]
    = False,
    devices: Annotated[str | None, typer.Option(help="all, or a number: split each batch over that many local "
                                                "devices (KERAS_BACKEND=jax; default: one device).",
                                                show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the network; keeps the best (by validation loss) and the last model in the bundle folder."""
    from pianocomposer.learning.devices import placement_for
    from pianocomposer.learning.train import train as run

    result = run(data, weights, resume=resume, epochs=epochs, preset=preset, patience=patience, base=base,
                 placement=placement_for(devices), random_transpose=random_transpose,
                 max_minutes=max_minutes, jit_compile=xla, tensorboard=tensorboard, float16=float16,
                 progress=not as_json, cell=cell, batch_size=batch_size, learning_rate=learning_rate,
                 val_split=val_split, transpose=parse_transpose(transpose) if transpose is not None else None,
                 objective=objective, mixed_precision=mixed_precision, seed=seed)
    last = result.history[-1]
    val = f", val loss {last['val_loss']:.3f} (perplexity {last['val_perplexity']:.1f})" if last["val_loss"] else ""
    _emit(as_json, {"bundle": str(result.bundle), "epochs": result.epochs, "best_epoch": result.best_epoch,
                    "best_val_loss": result.best_val_loss, "stopped": result.stopped,
                    "tokens_per_s": round(result.tokens_per_s, 1), "last": last},
          [f"epoch {result.epochs}: loss {last['loss']:.3f}{val}; {result.tokens_per_s:,.0f} supervised tokens/s",
           f"{result.stopped}; best epoch {result.best_epoch}; bundle in {result.bundle}"])
    if result.stopped.startswith("interrupted"):
        raise typer.Exit(130)


@app.command()
def generate(
    weights: Annotated[Path | None, typer.Option(help="Bundle folder, or `timed` / `abc` for the shipped timed or abc "
                                                 "model (default: weights/ if trained, else the shipped "
                                                 "weights/default).", show_default=False)] = None,
    length: Annotated[int | None, typer.Option(help=f"Tokens to generate per piece (default: the encoding's: "
                                               f"{DEFAULT_LENGTHS}; where pieces end themselves, as abc tunes do, the "
                                               "most a piece may take).", show_default=False)] = None,
    num_outputs: Annotated[int, typer.Option(help="Pieces to generate together in one batch.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder for the MIDI and WAV files.")] = DEFAULT_OUTPUT_DIR,
    seed: Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same pieces.")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (lower = safer).")] = DEFAULT_TEMPERATURE,
    top_k: Annotated[int, typer.Option(help="Sample from the k most likely tokens only (0 = all).")] = 0,
    min_p: Annotated[float, typer.Option(help="Sample only tokens at least this share of the likeliest one's "
                                         "probability (0 = all).")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Sample from the smallest set holding this probability mass.")]
    = DEFAULT_TOP_P,
    greedy: Annotated[bool, typer.Option(help="Always take the most likely token (the original; loops).")] = False,
    primer: Annotated[Path | None, typer.Option(help="A MIDI, MusicXML or abc file whose music starts every "
                                                "piece.")] = None,
    primer_tokens: Annotated[str | None, typer.Option(help='Tokens that start every piece, e.g. "C4 E4 G4".')]
    = None,
    primer_text: Annotated[str | None, typer.Option(help='abc models: the start of every tune, e.g. '
                                                    '"X:1\\nM:6/8\\nK:D\\n" (default: X:1).',
                                                    show_default=False)] = None,
    program: Annotated[int, typer.Option(help="General MIDI program (0 = Acoustic Grand Piano).")] = 0,
    qpm: Annotated[float | None, typer.Option(help="Tempo in quarter notes per minute (default: the training "
                                              "songs' median for timed encodings, 120 for cpc).",
                                              show_default=False)] = None,
    wav: Annotated[bool, typer.Option("--wav/--no-wav", help="Render WAV audio with FluidSynth.")] = True,
    soundfont: Annotated[Path | None, typer.Option(help="SF2 soundfont for the WAV.")] = None,
    constrain: Annotated[bool, typer.Option("--rules/--no-rules", help="abc models: write only bars of the metre's "
                                            "length; voices models: keep the chorale grammar and the lower voices' "
                                            "rules (--no-rules: neither, for comparison).")] = True,
    key: Annotated[str | None, typer.Option(help='The key, e.g. "D major", "F# minor" (abc also modes: "Dmix", '
                                            '"A dorian"): abc writes it as K:, other pieces are moved into it.',
                                            show_default=False)] = None,
    metre: Annotated[str | None, typer.Option("--metre", help="abc models: the metre every tune is in, e.g. 6/8.",
                                              show_default=False)] = None,
    bars: Annotated[int | None, typer.Option(help="Length in bars (MIDI encodings): the piece ends at that bar "
                                             "line, after any pickup.", show_default=False)] = None,
    seconds: Annotated[float | None, typer.Option(help="Length in seconds (MIDI encodings), ended at the nearest "
                                                  "beat.", show_default=False)] = None,
    continuation: Annotated[bool, typer.Option("--continue", help="With --primer FILE: write the primer and its "
                                               "continuation as one MIDI file, at the primer's tempo and key, and "
                                               "the continuation alone beside it.")] = False,
    sheet: Annotated[bool, typer.Option("--sheet/--no-sheet", help="Write each piece's score: MusicXML (piano: a "
                                        "grand staff; chorales: SATB on two staves; abc: from the tune's text) and "
                                        "its first page as SVG.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compose new pieces and write them as MIDI (and WAV)."""
    from pianocomposer.composing.compose import Sampler
    from pianocomposer.frontends.generate import generate as run

    result = run(weights, out, length=length, num_outputs=num_outputs, seed=seed,
                 sampler=Sampler(temperature, top_k, top_p, greedy, min_p), primer=primer, primer_tokens=primer_tokens,
                 primer_text=primer_text, program=program, qpm=qpm, wav=wav, soundfont=soundfont, sheet=sheet,
                 key=key, metre=metre, bars=bars, seconds=seconds, continuation=continuation, progress=not as_json,
                 constrained=constrain)
    s = result.seconds
    lines = []
    for p in result.pieces:
        files = "  ".join(str(f) for f in (p.text, p.midi, p.continuation, p.wav, p.musicxml, p.svg) if f)
        lines.append(f"{files}  ({p.error})" if p.error else f"{files}  (loop rate {p.loop_rate:.0%})")
    tokens = sum(len(p.tokens) for p in result.pieces)
    valid = result.to_json()["valid"]
    lines.append((f"{valid} of {len(result.pieces)} pieces valid; " if valid < len(result.pieces) else "")
                 + f"{len(result.pieces)} pieces, {tokens} tokens in {s['generate']:.2f} s "
                 f"({result.tokens_per_s:,.0f} tokens/s); model load {s['load']:.1f} s, MIDI {s['write']:.2f} s, "
                 f"audio {s['render']:.1f} s")
    _emit(as_json, result.to_json(), lines)


@app.command()
def harmonize(
    melodies: Annotated[list[Path], typer.Argument(help="Melody files: MIDI (a one-track file, or the top voice "
                                                   "of any), MusicXML or an abc tune.", show_default=False)],
    weights: Annotated[Path, typer.Option(help="A four-voice (voices) bundle folder, or `chorale` for the shipped "
                                          "one.")] = Path("chorale"),
    out: Annotated[Path | None, typer.Option(help="Folder for the harmonisations (default: beside each melody).",
                                             show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    candidates: Annotated[int, typer.Option(help="Harmonisations sampled per melody; the most likely of those heard in "
                                                 "the melody's mode is kept.")]
    = 1,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the lower voices' notes (whether a "
                                               "voice holds or moves is drawn at the model's own odds).")
                           ] = HARMONY_TEMPERATURE,
    rules: Annotated[bool, typer.Option("--rules/--no-rules", help="Keep the lower voices from crossing "
                                        "each other or the melody and from parallel fifths and octaves, on "
                                        "each beat to a triad or seventh chord, to the tonic under a final tonic "
                                        "chord, and to the note lengths Bach gives them in each place in the "
                                        "beat.")] = True,
    figuration: Annotated[float | None, typer.Option(help="How much the lower voices move between the beats, in "
                                                     "standard deviations of the range of Bach's chorales: -2 "
                                                     "plain, 0 middling, 2 florid (default: drawn for each "
                                                     "melody, as his chorales range).", show_default=False)] = None,
    wav: Annotated[bool, typer.Option("--wav/--no-wav", help="Render WAV audio with FluidSynth.")] = True,
    soundfont: Annotated[Path | None, typer.Option(help="SF2 soundfont for the WAV.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Harmonise melodies in four parts: the melody is the soprano, the model writes alto, tenor and bass."""
    from pianocomposer.frontends.harmonize import harmonize as run

    done = run(melodies, weights, out, seed=seed, candidates=candidates, temperature=temperature, rules=rules,
               figuration=figuration, wav=wav, soundfont=soundfont)
    _emit(as_json, {"harmonizations": [h.to_json() for h in done]},
          [f"{h.midi}{'  ' + str(h.wav) if h.wav else ''}  ({h.frames} frames, {h.nats_per_frame:.2f} nats "
           "per frame for the lower voices)" + (f"; {h.left_out} of its {h.melody_notes} melody notes are shorter "
                                                 "than the grid step and left out" if h.left_out else "")
           for h in done])


@app.command()
def infill(
    pieces: Annotated[list[Path], typer.Argument(help="Pieces to rewrite bars of: MIDI, MusicXML or an abc tune.",
                                                 show_default=False)],
    bars: Annotated[str, typer.Option(help="The bars to rewrite, FIRST-LAST counted from 1 (e.g. 5-8), or one bar.",
                                      show_default=False)],
    weights: Annotated[Path, typer.Option(help="A timed or four-voice bundle folder, or a shipped name: timed, base, "
                                          "chorale.")] = Path("timed"),
    out: Annotated[Path | None, typer.Option(help="Folder for the results (default: beside each piece).",
                                             show_default=False)] = None,
    candidates: Annotated[int, typer.Option(help="Fillings sampled per piece; the one that leads likeliest into "
                                                 "the next bars is kept.")] = 8,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default: 0.5 for a four-voice "
                                                      "model, as harmonize, else 1.0).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    keep_melody: Annotated[bool, typer.Option("--keep-melody", help="With a four-voice model (chorale): keep the "
                                              "top voice, rewrite the alto, tenor and bass beneath it.")] = False,
    sheet: Annotated[bool, typer.Option("--sheet", help="Also write the score as MusicXML.")] = False,
    wav: Annotated[bool, typer.Option("--wav/--no-wav", help="Render WAV audio with FluidSynth.")] = True,
    soundfont: Annotated[Path | None, typer.Option(help="SF2 soundfont for the WAV.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite bars of a piece so that they lead into what follows; every other note stays as it was."""
    from pianocomposer.frontends.infill import infill as run
    from pianocomposer.frontends.infill import parse_bars

    done = run(pieces, parse_bars(bars), weights, out, candidates=candidates, temperature=temperature, seed=seed,
               keep_melody=keep_melody, sheet=sheet, wav=wav, soundfont=soundfont)
    _emit(as_json, {"infilled": [d.to_json() for d in done]},
          [f"{d.midi}{'  ' + str(d.wav) if d.wav else ''}  (bars {d.bars[0]}-{d.bars[1]}: {d.replaced} notes "
           f"rewritten as {d.written}, {d.kept} kept)" for d in done])


@app.command()
def calibrate(
    weights: Annotated[Path, typer.Option(help="A four-voice (voices) bundle folder, or `chorale` for the shipped "
                                          "one.")] = Path("chorale"),
    data: Annotated[Path, typer.Option(help="The extract output it was trained on (its tokens.json).")]
    = DEFAULT_DATA_DIR,
    songs: Annotated[int, typer.Option(help="Training chorales to fit on.")] = CALIBRATION_SONGS,
    as_json: JsonOpt = False,
) -> None:
    """Fit a voices bundle's odds for its lower voices to its training chorales (the bass's motion, semitone clashes,
    the key's degrees, holding under a dotted melody, moving off the beat); harmonize uses them."""
    from pianocomposer.learning.calibrate import calibrate as run

    if songs < 1:
        raise PianoComposerError(f"--songs must be >= 1 (got {songs})")
    done = run(weights, data, songs)
    _emit(as_json, done.to_json(),
          [f"{done.bundle}: log-odds " + ", ".join(f"{k} {v:+.3f}" for k, v in done.calibration.items()),
           f"nats per lower-voice token: {done.songs} training chorales {done.train_nats[0]:.4f} -> "
           f"{done.train_nats[1]:.4f}, held-out {done.heldout_nats[0]:.4f} -> {done.heldout_nats[1]:.4f}"])


@app.command()
def evaluate(
    weights: Annotated[Path | None, typer.Option(help="Bundle folder, or `timed` for the shipped timed model "
                                                 "(default: weights/ if trained, else the shipped weights/default).",
                                                 show_default=False)] = None,
    data: Annotated[Path, typer.Option(help="Folder (or file) with tokens.json: the held-out songs are scored, "
                                       "the training songs are the corpus.")] = DEFAULT_DATA_DIR,
    n_generate: Annotated[int, typer.Option("--generate", help="Pieces to generate and compare with the corpus "
                                            "(0 = likelihood and corpus only; the real-or-generated classifiers "
                                            "need 30+).")] = 60,
    length: Annotated[int, typer.Option(help="Tokens per generated piece (0 = lengths drawn from the corpus "
                                        "songs).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed for the generated pieces.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder (or .png path) for the histogram plot.")] = DEFAULT_OUTPUT_DIR,
    rules: Annotated[bool, typer.Option("--rules/--no-rules", help="abc models: sample with the metre-aware "
                                        "sampler; voices models: harmonise by the rules of `harmonize` (--no-rules: "
                                        "without, for comparison).")] = True,
    realness: Annotated[bool, typer.Option("--realness/--no-realness", help="Let two classifiers try to tell the "
                                           "pieces from real ones, with real-vs-real as the control.")] = True,
    real: Annotated[Path | None, typer.Option(help="Folder of MIDI files to be the real pieces for the classifiers "
                                              "(default: the corpus songs decoded from tokens).",
                                              show_default=False)] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the pieces.")] = DEFAULT_TEMPERATURE,
    top_p: Annotated[float, typer.Option(help="Sample the pieces from the smallest set holding this probability "
                                         "mass.")] = DEFAULT_TOP_P,
    as_json: JsonOpt = False,
) -> None:
    """Judge a bundle: held-out likelihood, music statistics of new pieces next to the corpus's, and whether
    classifiers tell them from real ones."""
    from pianocomposer.composing.compose import Sampler
    from pianocomposer.judging.evaluate import evaluate as run
    from pianocomposer.learning.bundle import resolve_weights

    result = run(resolve_weights(weights), data, generate=n_generate, length=length, seed=seed, out=out,
                 progress=not as_json, constrained=rules, realness=realness, real=real,
                 sampler=Sampler(temperature=temperature, top_p=top_p))
    _emit(as_json, result.to_json(), result.table())


@app.command()
def render(
    files: Annotated[list[Path], typer.Argument(help="MIDI files to render.")],
    soundfont: Annotated[Path | None, typer.Option(help="SF2 soundfont (default: the system General MIDI one).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Render MIDI files to WAV (same name, .wav) with FluidSynth."""
    from pianocomposer.writing.render import render_wav

    written = [render_wav(f, soundfont=soundfont) for f in files]
    _emit(as_json, {"wav": [str(w) for w in written]}, [str(w) for w in written])


@app.command()
def demos(
    config: Annotated[Path, typer.Option(help="TOML file listing bundles, sampling settings, pieces and length.")]
    = DEFAULT_DEMOS_CONFIG,
    out: Annotated[Path, typer.Option(help="Folder for the pieces' files and index.html.")] = DEFAULT_DEMOS_DIR,
    pieces: Annotated[int | None, typer.Option(help="Pieces per bundle and setting (default: the config's).",
                                               show_default=False)] = None,
    length: Annotated[int | None, typer.Option(help="Tokens per piece (default: the config's).",
                                               show_default=False)] = None,
    jobs: Annotated[int | None, typer.Option(help="Processes rendering pieces (default: one per CPU core).",
                                             show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a gallery: MIDI, WAV, OGG, piano roll, sheet music and statistics per piece on one index.html."""
    from pianocomposer.frontends.demos import demos as run

    result = run(config, out, pieces=pieces, length=length, jobs=jobs, progress=not as_json)
    s = result.seconds
    _emit(as_json, result.to_json(),
          [f"bundle {name} skipped: no bundle in {folder}" for name, folder in result.missing.items()]
          + [f"{p.stem} failed: {p.error}" for p in result.pieces if p.error]
          + [f"{len(result.pieces)} pieces ({result.count('new')} new, {result.count('reused')} reused, "
             f"{result.count('failed')} failed) in {s['total']:.1f} s -> {result.index}"])
    if result.count("failed"):
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every network the machine is on).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one, named when it starts).")] = 8000,
    out: Annotated[Path, typer.Option(help="Folder for the results (one folder per result).")] = DEFAULT_SERVE_DIR,
    weights: Annotated[list[Path] | None, typer.Option(help="Bundle folders to offer, or folders of bundles "
                                                       "(default: weights/ and the shipped bundles).",
                                                       show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="Processes composing at once (default and most: one per "
                                                "CPU core).", show_default=False)] = None,
    queue: Annotated[int, typer.Option(help="Requests waiting for a process beyond those running; more are "
                                       "answered 503.")] = 32,
    max_upload_mb: Annotated[float, typer.Option(help="Largest melody file accepted, in MB.")] = 2.0,
    quota_mb: Annotated[float, typer.Option(help="Disk the results may take, in MB; the oldest go first.")]
    = 2048.0,
) -> None:
    """Serve a page (and a JSON API) to compose, listen, read the score and harmonise, on http://HOST:PORT/."""
    from pianocomposer.frontends.serve import Limits
    from pianocomposer.frontends.serve import serve as run

    limits = Limits(queue=queue, max_upload_bytes=int(max_upload_mb * 2**20), quota_bytes=int(quota_mb * 2**20),
                    **({"workers": workers} if workers else {}))
    run(host, port, out, weights=weights, limits=limits)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 1, never a traceback."""
    try:
        app()
    except PianoComposerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
