"""Harmonise a melody in four parts (`pianocomposer harmonize`): the melody is the soprano, note for note and on the
grid, at every frame; a voices model writes the alto, tenor and bass beneath it, frame by frame."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from pianocomposer.atomic import atomic_path
from pianocomposer.compose import Composer, Sampler, prime
from pianocomposer.encodings.voices import DEFAULT_QPM, END, HELD, PREFIXES, REST, START, VoicesEncoding
from pianocomposer.errors import PianoComposerError, first_line
from pianocomposer.readers import Unreadable, kind, read_file
from pianocomposer.render import render_wav
from pianocomposer.voice_leading import judge

SUFFIX = "-harmonized"


@dataclass
class Harmonization:
    """One melody harmonised: where its files are and how likely the model finds its lower voices."""

    melody: Path
    midi: Path
    musicxml: Path
    wav: Path | None
    frames: int
    nats_per_frame: float  # -log p(alto, tenor, bass | soprano) per frame, under the model
    voice_leading: dict[str, float]  # voice_leading.judge: parallels, crossings, chords, ranges, four voices

    def to_json(self) -> dict:
        """The JSON form `harmonize --json` prints."""
        return {"melody": str(self.melody), "midi": str(self.midi), "musicxml": str(self.musicxml),
                "wav": str(self.wav) if self.wav else None,
                "frames": self.frames, "nats_per_frame": round(self.nats_per_frame, 4),
                "voice_leading": {k: round(v, 4) for k, v in self.voice_leading.items()}}


def read_melody(path: Path) -> tuple[pretty_midi.PrettyMIDI, list[pretty_midi.Note]]:
    """A file's first piece and its top line: at each onset the highest note, held until the next onset."""
    try:
        pieces = read_file(path)
    except Exception as exc:
        raise PianoComposerError(f"{path}: not a readable {kind(path)} file ({first_line(exc)})") from None
    music = next((p for p in pieces if not isinstance(p, Unreadable)), None)
    if music is None:
        raise PianoComposerError(f"{path}: {pieces[0].reason if pieces else 'no music in it'}")
    try:
        midi = pretty_midi.PrettyMIDI(io.BytesIO(music.midi))
    except Exception as exc:
        raise PianoComposerError(f"{path}: cannot be played ({first_line(exc)})") from None
    notes = sorted((n for t in midi.instruments if not t.is_drum for n in t.notes), key=lambda n: (n.start, -n.pitch))
    line: list[pretty_midi.Note] = []
    for note in notes:
        if line and note.start < line[-1].end and note.start == line[-1].start:
            continue  # a lower note of the same onset
        if line and note.start < line[-1].end:
            line[-1] = pretty_midi.Note(line[-1].velocity, line[-1].pitch, line[-1].start, note.start)
        line.append(note)
    if not line:
        raise PianoComposerError(f"{path}: no notes to harmonise")
    return midi, line


def token_id(composer: Composer, token: str) -> int | None:
    """A token's id, or its nearest known kin's (a soprano note out of the model's compass), or None (a key or beat
    the model never saw: left out)."""
    vocabulary = composer.bundle.vocabulary
    near = token if token in vocabulary.index else composer.encoding.nearest(token, vocabulary.tokens)
    return vocabulary.index.get(near) if near is not None else None


def harmonize_frames(composer: Composer, key: str, frames: list[list[str]], rng: np.random.Generator,
                     candidates: int = 1, sampler: Sampler | None = None) -> tuple[list[list[str]], float]:
    """The lower voices for each frame (its soprano fixed), sampled `candidates` times in one batch; the most
    likely harmonisation's frames (each the given tokens and A, T, B) and its nats per frame."""
    vocabulary, net = composer.bundle.vocabulary, composer.net
    sampler = sampler or Sampler()
    index = vocabulary.index

    voices = {p: np.array([t.startswith(f"{p}_") and not t.endswith(HELD) for t in vocabulary.tokens])
              for p in PREFIXES[1:]}
    key_id = token_id(composer, key)
    start = np.array([index[START]] + ([key_id] if key_id is not None else []), np.int32)
    probs, state = prime(net, [start] * candidates)
    rows = np.arange(candidates)
    logp = np.zeros(candidates)
    chosen: list[list[list[str]]] = [[] for _ in rows]
    last: dict[str, list[str | None]] = {p: [None] * candidates for p in PREFIXES[1:]}
    for frame in frames:
        for token in frame:
            forced = token_id(composer, token)
            if forced is not None:  # a beat the model never saw is left out; a soprano note, its nearest
                probs, state = net.step(np.full(candidates, forced, np.int32), state)
        for row in rows:
            chosen[row].append(list(frame))
        for prefix in PREFIXES[1:]:
            allowed = np.tile(voices[prefix], (candidates, 1))
            for row, pitch in enumerate(last[prefix]):  # a held note continues the voice's last note only
                held = index.get(f"{prefix}_{pitch}{HELD}") if pitch is not None else None
                if held is not None:
                    allowed[row, held] = True
            ids = sampler(probs, rng, allowed)
            logp += np.log(np.maximum(probs[rows, ids], 1e-30))
            for row, drawn in enumerate(ids):
                token = vocabulary.tokens[int(drawn)]
                chosen[row][-1].append(token)
                value = token.split("_", 1)[1]
                last[prefix][row] = None if value == REST else value.rstrip(HELD)
            probs, state = net.step(ids.astype(np.int32), state)
    best = int(np.argmax(logp))
    return chosen[best], float(-logp[best] / max(len(frames), 1))


def write_score(midi_path: Path, target: Path, key: str, title: str, source: str) -> None:
    """The harmonisation as a MusicXML score: soprano and alto on a treble staff, tenor and bass on a bass staff
    (two voices each), the key signature of its key, its title, and pianocomposer and the model as its source."""
    import copy

    from music21 import clef, converter, layout, metadata, stream
    from music21 import key as keys

    tonic, mode = int(key[4:-1]), "minor" if key.endswith("m") else "major"
    name = pretty_midi.key_number_to_key_name(tonic + 12 * (mode == "minor")).split()[0]
    signature = keys.Key(name.replace("b", "-") if len(name) > 1 else name, mode)
    parts = list(converter.parse(str(midi_path), quantizePost=True, quarterLengthDivisors=(4,)).parts)
    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title, composer=source))
    staves = []
    for upper, lower, staff_clef in ((parts[0], parts[1], clef.TrebleClef()), (parts[2], parts[3], clef.BassClef())):
        staff = stream.Part()
        for i, bars in enumerate(zip(upper.getElementsByClass(stream.Measure), lower.getElementsByClass(stream.Measure),
                                     strict=False)):
            measure = stream.Measure(number=bars[0].number)
            if i == 0:
                measure.insert(0, staff_clef)
                measure.insert(0, copy.deepcopy(signature))
            if bars[0].timeSignature:
                measure.insert(0, copy.deepcopy(bars[0].timeSignature))
            for number, bar in enumerate(bars, 1):
                voice = stream.Voice(id=str(number))
                for element in bar.flatten().notesAndRests:
                    voice.insert(element.offset, copy.deepcopy(element))
                measure.insert(0, voice)
            staff.append(measure)
        staves.append(staff)
        score.insert(0, staff)
    score.insert(0, layout.StaffGroup(staves, symbol="brace"))
    with atomic_path(target) as tmp:
        score.write("musicxml", fp=str(tmp))


def score_lower_voices(composer: Composer, key: str, frames: list[list[str]]) -> float:
    """Nats per frame the model gives a piece's own alto, tenor and bass, given its soprano (frames as
    VoicesEncoding.frames makes them with all four voices)."""
    net = composer.net
    lower = {f"{p}_" for p in PREFIXES[1:]}
    probs, state = prime(net, [np.array([composer.bundle.vocabulary.index[START]], np.int32)])
    nats = 0.0
    for token in [key, *(t for frame in frames for t in frame)]:
        known = token_id(composer, token)
        if known is None:
            continue
        if token[:2] in lower:  # a note the model does not know scores as its nearest kin
            nats -= float(np.log(max(probs[0, known], 1e-30)))
        probs, state = net.step(np.array([known], np.int32), state)
    return nats / max(len(frames), 1)


def harmonize(melodies: list[Path], weights: Path | None = None, out_dir: Path | None = None, *, seed: int = 0,
              candidates: int = 1, wav: bool = True, soundfont: Path | None = None) -> list[Harmonization]:
    """Harmonise each melody file (MIDI, MusicXML or an abc tune) with a voices bundle; each is written beside it
    (or in out_dir) as NAME-harmonized.mid (one named track per voice, at the melody's tempo), .musicxml (SATB on
    two staves) and .wav."""
    if candidates < 1:
        raise PianoComposerError(f"--candidates must be >= 1 (got {candidates})")
    composer = Composer(weights)
    encoding = composer.encoding
    if not isinstance(encoding, VoicesEncoding):
        raise PianoComposerError(f"{composer.folder}: harmonize needs a four-voice (voices) bundle; this one is "
                                 f"{composer.bundle.encoding_name}")
    rng = np.random.default_rng(seed)
    done = []
    for path in map(Path, melodies):
        midi, line = read_melody(path)
        key, frames = encoding.frames(midi, line)
        chosen, nats = harmonize_frames(composer, key, frames, rng, candidates)
        qpm = float(midi.get_tempo_changes()[1][0]) if len(midi.get_tempo_changes()[1]) else None
        out = encoding.decode([START, key, *(t for frame in chosen for t in frame), END], qpm=qpm)
        folder = Path(out_dir) if out_dir is not None else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}{SUFFIX}.mid"
        with atomic_path(target) as tmp:
            out.write(str(tmp))
        sheet = target.with_suffix(".musicxml")
        write_score(target, sheet, key, f"{path.stem} (harmonised)",
                    f"pianocomposer, model {composer.folder.name}")
        steps_per_second = (qpm or DEFAULT_QPM) / 60 * encoding.grid
        done.append(Harmonization(path, target, sheet, render_wav(target, soundfont=soundfont) if wav else None,
                                  len(frames), nats, judge(out.instruments, steps_per_second)))
    return done
