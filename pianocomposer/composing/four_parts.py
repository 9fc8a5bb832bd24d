"""Four-part writing under a given soprano: a voices model writes the alto, tenor and bass frame by frame, at its
own odds corrected by a calibration, under the rules of voice-leading and Bach's rhythm (harmonize, evaluate and
calibrate share it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pianocomposer.composing.compose import Sampler, categorical, prime, token_id
from pianocomposer.encodings.voices_tokens import (
    END,
    HELD,
    LOWER,
    PREFIXES,
    REST,
    START,
    VOICE_TOKENS,
    beat,
    key_tonic,
    pitch,
    voice_token,
)
from pianocomposer.judging.realness import DEGREES
from pianocomposer.judging.voice_leading import Memory, voice_breaks
from pianocomposer.learning.bundle import Bundle
from pianocomposer.learning.model import StepModel
from pianocomposer.writing.score import estimate_key

# frame_voices: 1 draws a frame's lower voices one by one; more keeps so many notes of each voice but the last and
# draws the frame whole. One by one is the default: with the bass-first model, frames drawn whole (4) are more likely
# under the model (fewer crossings) but told from Bach's more easily (88.5 % against 81.1 %) and take twice as long.
LOOKAHEAD = 1
# How long Bach's lower voices hold a note by where in the beat it begins, in sixteenths (the training chorales):
# begun off the eighths, a sixteenth (all 763); on the off-beat eighth, a sixteenth, an eighth or a quarter (99.8 %
# of 11 528); on the beat, as long as the music asks. Used on a sixteenth grid (the voices encoding's default).
LASTS = {1: (1,), 2: (1, 2, 4), 3: (1,)}
# Nor do they begin a note on a beat's off-beat eighth (in sixteenths) where the soprano holds on and no voice began one
# on the beat or its sixteenth: at 13 of 1441 such eighths (the harmonisations, before this rule: 10 %). And a beat
# after a note begun on (or after) the off-beat eighth begins one in some voice: at 99.8 % of 9470 (98.3 %).
STILL = 2
# The lower voices' odds a calibrated bundle corrects (bundle.json `calibration`, calibrate.py): how the bass moves
# against the soprano, a new note a semitone from another voice, each degree of the key's scale in either mode, a
# voice holding on under a dotted melody (`dotted`), and a new note on the off-beat eighth
CALIBRATION = ("bass similar", "bass contrary", "bass leap", "bass repeat", "semitone clash",
               *(f"{mode} {degree}" for mode in ("major", "minor") for degree in DEGREES), "hold under a dotted melody",
               "move off the beat")
# Whether a lower voice holds or moves, and how far the bass moves, are drawn at the model's own odds (`draw`); the
# temperature sharpens only which note. Sharpened, the likeliest move (a step) won too often: 67 % of the bass's
# moves were steps (Bach's, 63 %), its mean leap 2.7 semitones (3.1). Thirds and wider leaps are kinds of their own:
# as one kind the sharpened third won over the fourths, fifths and octaves (a fourth or wider: 24.0 % of its moves,
# Bach's 26.8 %; apart, 24.3 %: the rules and the calibrated odds of a leap take the rest).
BASS_LEAPS = (3, 5)  # semitones: a bass move this wide or wider (a third; a fourth) is of its own kind
KINDS = 2 + len(BASS_LEAPS)  # holds, new notes, the bass's thirds, its wider leaps
# Bach's chorales differ in how much their lower voices move between the beats, from plain to florid: in 10 % of
# his training chorales some lower voice begins a note on fewer than 31 % of the off-beat eighths, in 10 % on more
# than 75 % (`florid`; standard deviation 0.18 over 96 chorales). Under teacher forcing the network follows each
# chorale's own figuration (its odds of a new note per chorale correlate 0.97 with Bach's), but writing on its own
# it drifts to the middle and below: under the same 96 melodies its harmonisations' figurations spread 0.10 about
# 0.48 (Bach's: 0.18 about 0.55). So each melody draws its own figuration, a log-odds offset of beginning a note on
# the off-beat eighth, normal with this mean and spread: fitted on those training melodies so that the spread and
# mean come out as Bach's (0.175 about 0.54: benchmarks/figuration.py).
FIGURATION = (0.25, 1.0)  # the offsets' mean and standard deviation
OFF_BEAT = np.array(CALIBRATION) == "move off the beat"  # the odds a figuration offsets


def beat_phase(frame: list[str], grid: int) -> int:
    """A frame's place in its beat, in grid steps (0: on a beat), by its `Beat_n` token; -1 without one."""
    return next((step % grid for t in frame if (step := beat(t)) is not None), -1)


def cadence(key: str | None, frames: list[list[str]]) -> tuple[int, int]:
    """(the frame where the melody starts its last note, the key's tonic pitch class) when that note belongs to the
    tonic chord, where a harmonisation ends over the tonic in the bass (Bach's chorales: 87 %); else (-1, -1)."""
    tonic = key_tonic(key)[0]
    if tonic < 0:
        return -1, -1
    onsets = [(i, p) for i, frame in enumerate(frames) for t in frame
              if t.startswith(f"{PREFIXES[0]}_") and not t.endswith(HELD) and (p := pitch(t)) >= 0]
    if not onsets or (onsets[-1][1] - tonic) % 12 not in (0, 3, 4, 7):
        return -1, -1
    return onsets[-1][0], tonic


def dotted(frames: list[list[str]], grid: int) -> np.ndarray:
    """Per frame: whether it is on a beat the soprano holds a note over and leaves within that beat, as in a dotted
    quarter's second beat. There Bach's lower voices all hold on at 6 % of such beats (at 56 % where the soprano
    stays the beat); the network cannot tell the two apart, as it does not know when the soprano next moves."""
    soprano = [next((t for t in frame if t.startswith(f"{PREFIXES[0]}_")), "") for frame in frames]
    held = [t.endswith(HELD) and pitch(t) >= 0 for t in soprano]
    return np.array([beat_phase(frame, grid) == 0 and held[i] and not all(held[i + 1:i + grid])
                     for i, frame in enumerate(frames)], bool)


def pulse(frames: list[list[str]], grid: int) -> np.ndarray:
    """(frames, 2): whether each frame is a beat under a dotted melody (`dotted`), and whether it is on a beat's
    off-beat eighth: where the calibrated odds of holding and of beginning a note apply (calibration_features)."""
    return np.stack([dotted(frames, grid), [2 * beat_phase(frame, grid) == grid for frame in frames]], axis=1)


def florid(frames: list[list[str]], grid: int) -> float:
    """How florid a four-voice piece's frames are: the share of its off-beat eighths where some lower voice begins a
    note (NaN: none)."""
    moving = [any(t[:2] in LOWER and not t.endswith((HELD, REST)) for t in frame)
              for frame in frames if 2 * beat_phase(frame, grid) == grid]
    return float(np.mean(moving)) if moving else float("nan")


@dataclass
class Demands:
    """What the rules ask of one frame's lower voices, row by row (each a numpy array over the rows)."""

    strong: np.ndarray  # on a beat: the voices make a triad or seventh chord
    ending: np.ndarray  # the pitch class the bass must sound (a final chord's tonic; -1: any)
    hold: np.ndarray  # (rows, voices in the frame's order): the voice may hold its note on (LASTS)
    move: np.ndarray  # (rows, voices): the voice may begin a new note (LASTS; off the eighths, only after one)
    lead: np.ndarray  # some voice begins a note (the beat after one begun on the off-beat eighth: STILL)
    tonic: np.ndarray  # the key's tonic pitch class, -1: no key (for a calibrated bundle)
    minor: np.ndarray  # whether that key is minor
    soprano: np.ndarray  # the sign of the soprano's step into the frame (0: held, silent; for a calibrated bundle)
    begins: np.ndarray  # whether the soprano begins a note in the frame
    pulse: np.ndarray  # (rows, 2): the frame's `pulse` (for a calibrated bundle)
    figuration: np.ndarray  # the row's melody's log-odds offset of a new note on the off-beat eighth (FIGURATION)


class Rhythm:
    """Each row's lower voices: where in the beat each one's sounding note began (-1: unknown) and how many frames
    ago, and whether any voice has begun a note in the row's beat so far, for the rhythm rules (LASTS; STILL) on a
    sixteenth grid."""

    def __init__(self, rows: int, voices: int):
        self.began = np.full((rows, voices), -1)
        self.age = np.zeros((rows, voices), np.int64)
        self.stirred = np.zeros(rows, bool)  # a voice has begun a note in the beat so far
        self.led = np.zeros(rows, bool)  # a voice has begun a note on the beat's off-beat eighth or after

    def allows(self, rows: np.ndarray, phase: np.ndarray, held: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(may hold, may move), each (rows, voices), and whether some voice must begin a note (rows), for `rows` in
        a frame at `phase` (sixteenths into the beat; -1: no rule) where the soprano holds its note on (`held`)."""
        began, age = self.began[rows], self.age[rows]
        hold, move = np.ones(age.shape, bool), np.ones(age.shape, bool)
        for start, lasts in LASTS.items():
            at = began == start
            hold &= ~at | (age < max(lasts))
            move &= ~at | np.isin(age, lasts)
        move &= ~((phase[:, None] >= 0) & (phase[:, None] % 2 == 1)) | (age == 1)
        move &= ~((phase == STILL) & held & ~self.stirred[rows])[:, None]
        return hold, move, (phase == 0) & self.led[rows]

    def step(self, rows: np.ndarray, phase: np.ndarray, moved: np.ndarray, sounded: np.ndarray) -> None:
        """Advance `rows` by a frame at `phase` in which the lower voices `moved` (rows, voices: began notes or rests)
        and any voice `sounded` a new note (rows)."""
        self.began[rows] = np.where(moved, phase[:, None], self.began[rows])
        self.age[rows] = np.where(moved, 1, self.age[rows] + 1)
        self.stirred[rows] = sounded | (self.stirred[rows] & (phase != 0))
        self.led[rows] = (sounded & (phase >= STILL)) | (self.led[rows] & (phase != 0))


def four_parts(bundle: Bundle, net: StepModel, pieces: list[tuple[str, list[list[str]]]], rng: np.random.Generator,
               candidates: int = 1, sampler: Sampler | None = None, rules: bool = True, chords: bool = True,
               width: int = LOOKAHEAD,
               figuration: tuple[float, float] = FIGURATION) -> list[tuple[list[list[str]], float]]:
    """Each piece's alto, tenor and bass frame by frame, all pieces and `candidates` samples of each in one batch.

    A piece is its key token and frames (`Beat_n`, `Fermata`, the soprano, as VoicesEncoding.frames makes them);
    a lower voice a frame already holds is taken as given and scored, one it lacks is sampled (the network's odds
    corrected where the bundle is calibrated: calibrate.py, and by the melody's figuration, a log-odds offset of a new
    note on the off-beat eighth drawn for each piece with `figuration`'s mean and spread; a rest where the melody
    rests, else whether it holds or moves, and how far the bass moves, at the model's own odds, its new note by
    `sampler`: `draw`; a held note may only continue the voice's last note; with `rules`, a note that would cross
    a voice (held on or new) or make
    parallel fifths or octaves (with the notes before a rest too, and from the notes the two voices last began
    together), or with `chords` too leave a frame on a beat outside every triad and seventh
    chord, or a bass under the melody's last note (to the end) other than the tonic where that note is in the tonic
    chord (`cadence`), or on a sixteenth grid a note held longer or shorter than Bach's lower voices hold one begun
    at its place in the beat (LASTS) or begin one on the off-beat eighth of a beat where nothing began and the
    melody holds (STILL; `Rhythm`: these rules give way first), is not drawn, unless nothing else is
    left). With `width` > 1 a frame's lower voices are drawn together (`frame_voices`: the `width` likeliest notes
    of each voice but the last weighed by what they leave the last voice). Returns, per piece, the frames of
    the candidate `keep` keeps (each with S and the lower voices in the encoding's order) and its nats per frame for
    the three lower voices given the rest.
    """
    vocabulary, index, encoding = bundle.vocabulary, bundle.vocabulary.index, bundle.encoding
    sampler = sampler or Sampler()
    voices = Voices(vocabulary.tokens, encoding.lower, bundle.meta.get("calibration"))
    memory = Memory.empty(len(pieces) * candidates)  # each row's voices as the rules remember them
    owner = np.repeat(np.arange(len(pieces)), candidates)  # the piece each row writes
    starts = []
    for key, _ in pieces:
        key_id = token_id(bundle, key) if key else None
        starts.append(np.array([index[START]] + ([key_id] if key_id is not None else []), np.int32))
    probs, state = prime(net, [starts[p] for p in owner])
    logp = np.zeros(len(owner))
    chosen: list[list[list[str]]] = [[] for _ in owner]
    ends = [cadence(key, frames) if rules else (-1, -1) for key, frames in pieces]
    sixteenths = rules and encoding.grid == 4 and encoding.beats  # where the rhythm rules apply
    rhythm = Rhythm(len(owner), len(voices.order))
    tonic, minor = (np.array(column) for column in zip(*(key_tonic(key) for key, _ in pieces), strict=True))
    pulses = [pulse(frames, encoding.grid) for _, frames in pieces]
    # each melody's figuration, shared by its candidates (`figuration`: the offsets' mean and spread; (0, 0): none)
    offsets = rng.normal(*figuration, len(pieces)) if figuration[1] else np.full(len(pieces), figuration[0])

    for f in range(max(len(frames) for _, frames in pieces)):
        rows = np.flatnonzero([f < len(pieces[p][1]) for p in owner])
        frame = {row: pieces[owner[row]][1][f] for row in rows}
        context = {row: [i for t in frame[row] if t[:2] not in LOWER
                         if (i := token_id(bundle, t)) is not None] for row in rows}
        for j in range(max(len(c) for c in context.values())):  # beat, fermata, soprano: as many as each row has
            going = np.array([row for row in rows if j < len(context[row])])
            out, new = net.step(np.array([context[row][j] for row in going], np.int32), [s[going] for s in state])
            probs[going] = out
            for old, fresh in zip(state, new, strict=True):
                old[going] = fresh
        given = np.full((len(rows), len(voices.order)), -1)
        now = np.full((len(rows), len(PREFIXES)), -1)
        begins = np.zeros(len(rows), bool)
        for i, row in enumerate(rows):
            chosen[row].append([t for t in frame[row] if t[:2] not in LOWER])
            soprano = next((t for t in frame[row] if t.startswith(f"{PREFIXES[0]}_")), None)
            now[i, 0] = pitch(soprano) if soprano else -1
            begins[i] = now[i, 0] >= 0 and not soprano.endswith(HELD)
            for t in frame[row]:
                if t[:2] in LOWER and (known := token_id(bundle, t)) is not None:
                    given[i, voices.order.index(t[0])] = known
        beats = np.array([beat_phase(frame[row], encoding.grid) for row in rows])
        phase = beats if sixteenths else np.full(len(rows), -1)
        hold, move, lead = rhythm.allows(rows, phase, (now[:, 0] >= 0) & ~begins)
        remembered = memory.take(rows)
        before = remembered.before
        sounding = (now[:, 0] >= 0) & (before[:, 0] >= 0)
        demands = Demands(strong=chords & (beats == 0),
                          ending=np.array([ends[owner[row]][1] if 0 <= ends[owner[row]][0] <= f else -1
                                           for row in rows]),
                          hold=hold, move=move, lead=lead, tonic=tonic[owner[rows]], minor=minor[owner[rows]],
                          soprano=np.where(sounding, np.sign(now[:, 0] - before[:, 0]), 0), begins=begins,
                          pulse=np.array([pulses[owner[row]][f] for row in rows]),
                          figuration=offsets[owner[rows]])
        ids, nats, probs[rows], new_state = frame_voices(net, voices, probs[rows], [s[rows] for s in state],
                                                         remembered, now, demands, given, rng, sampler, rules,
                                                         width)
        moved = ~voices.holds[ids]
        began = np.zeros((len(rows), len(PREFIXES)), bool)
        began[:, 0] = begins
        now[:, voices.columns] = voices.sounding[ids]
        began[:, voices.columns] = moved & (now[:, voices.columns] >= 0)
        rhythm.step(rows, phase, moved, began.any(axis=1))
        for whole, part in zip(memory, remembered.after(now, began), strict=True):
            whole[rows] = part
        for old, fresh in zip(state, new_state, strict=True):
            old[rows] = fresh
        logp[rows] -= nats
        for i, row in enumerate(rows):
            chosen[row][-1] += [vocabulary.tokens[int(t)] for t in ids[i]]
    best = []
    for piece, (key, frames) in enumerate(pieces):
        rows = np.flatnonzero(owner == piece)
        row = rows[keep([chosen[row] for row in rows], logp[rows], bool(minor[piece]) if key and rules else None)]
        best.append((chosen[row], float(-logp[row] / max(len(frames), 1))))
    return best


def keep(candidates: list[list[list[str]]], logp: np.ndarray, minor: bool | None) -> int:
    """The likeliest (`logp`) of a melody's candidate harmonisations (each its frames) among those heard in the key's
    mode (`minor`; None: any), or of all where none is."""
    likeliest = np.argsort(-logp, kind="stable")
    return int(next((i for i in likeliest if minor is None or heard_minor(candidates[i]) == minor), likeliest[0]))


def heard_minor(frames: list[list[str]]) -> bool:
    """Whether four-part frames sound in a minor key to the Krumhansl-Kessler key-finder (`estimate_key`; each
    voice's pitch in each frame weighs one)."""
    pitches = [p for frame in frames for t in frame if t[:2] in VOICE_TOKENS and (p := pitch(t)) >= 0]
    return bool(pitches) and estimate_key(np.bincount(np.array(pitches) % 12, minlength=12))[1]


class Voices:
    """The lower voices' tokens, as arrays over the vocabulary, in the order a frame writes them, and a calibrated
    bundle's log-odds per CALIBRATION (zeros: none)."""

    def __init__(self, tokens: list[str], order: str, calibration: dict[str, float] | None = None):
        self.order = order
        self.calibration = np.array([(calibration or {}).get(name, 0.0) for name in CALIBRATION])
        self.columns = np.array([PREFIXES.index(p) for p in order])  # each voice's column in S A T B
        self.sounding = np.array([pitch(t) if t[:2] in LOWER else -1 for t in tokens])  # a held note's too
        own = np.array([t[0] if t[:2] in LOWER else "" for t in tokens])
        held = np.array([t.endswith(HELD) for t in tokens])
        self.new = {p: np.where((own == p) & ~held, self.sounding, -1) for p in order}  # -1: not a new note
        self.held = {p: np.where((own == p) & held, self.sounding, -2) for p in order}  # -2: not a held note
        self.holds = held  # over the vocabulary: the tokens that hold a voice's note
        self.rest = {p: np.array([t == voice_token(p, None) for t in tokens]) for p in order}


def calibration_features(new: np.ndarray, bass: bool, last: np.ndarray, soprano: np.ndarray, tonic: np.ndarray,
                         minor: np.ndarray, others: np.ndarray, holds: np.ndarray, pulse: np.ndarray) -> np.ndarray:
    """(rows, vocabulary, CALIBRATION) for a voice's tokens (`new`: each one's pitch where it is a new note of the
    voice, else -1): if the voice is the `bass`, whether the note moves from `last` (rows: the voice's pitch, -1:
    silent) the same way as the soprano (`soprano`, rows: the sign of its step into the frame), the other way, by
    five semitones or more, or repeats it; whether it lies a semitone (or an octave and one) from any of `others`
    (rows x the other voices' pitches, -1: silent); which degree of the row's key it is (`tonic`, rows: the
    tonic's pitch class, -1: no key; `minor`, rows: its mode); whether it holds the voice's note (`holds`, over the
    voice's tokens) on a beat the soprano leaves within, and whether it begins one on the off-beat eighth (`pulse`,
    rows x 2: the frame's `pulse`)."""
    note, last, soprano = new[None, :], last[:, None], soprano[:, None]
    moving = bass & (note >= 0) & (last >= 0) & (note != last)
    way = np.sign(note - last)
    clash = np.zeros((len(last), len(new)), bool)
    for other in others.T:
        gap = np.abs(note - other[:, None]) % 12
        clash |= (note >= 0) & (other[:, None] >= 0) & ((gap == 1) | (gap == 11))
    degree = np.where((note >= 0) & (tonic[:, None] >= 0), (note - tonic[:, None]) % 12 + 12 * minor[:, None], -1)
    return np.stack([moving & (soprano != 0) & (way == soprano), moving & (soprano != 0) & (way == -soprano),
                     moving & (np.abs(note - last) >= 5), bass & (note >= 0) & (note == last), clash,
                     *(degree == d for d in range(24)), holds[None, :] & pulse[:, :1],
                     (note >= 0) & pulse[:, 1:]], axis=-1)


def draw(sampler: Sampler, probs: np.ndarray, rng: np.random.Generator, mask: np.ndarray,
         kinds: np.ndarray, free: np.ndarray | None = None) -> np.ndarray:
    """A voice's token for each row among the masked ones: its kind (`kinds`, rows x vocabulary: `kind`) at the
    model's own odds among the `free` tokens (default: the masked ones; harmonize's: those the voice-leading rules
    do not judge, so that forbidding some of a voice's moves does not make it hold more often), then which masked
    token of that kind by `sampler` (a temperature below 1 sharpens the choice of pitch, not whether a voice holds
    or how far the bass moves; greedy: the likeliest token); a kind with no masked token gives way."""
    if sampler.greedy:
        return sampler(probs, rng, mask)
    free = mask if free is None else free
    odds = np.stack([np.where(free & (kinds == k), probs, 0.0).sum(axis=1) for k in range(KINDS)], axis=1)
    chosen = mask & (kinds == categorical(odds, rng)[:, None])
    return sampler(probs, rng, np.where(chosen.any(axis=1)[:, None], chosen, mask))


def kind(voices: Voices, prefix: str, last: np.ndarray) -> np.ndarray:
    """(rows, vocabulary) each of a voice's tokens' kind for `draw`: 0 holds the voice's note, 1 is a new note (or a
    rest), 2 a new note of the bass a third from its `last` pitch (rows; -1: silent), 3 a fourth or more."""
    kinds = np.where(voices.holds, 0, 1)[None, :].repeat(len(last), axis=0)
    if prefix == PREFIXES[-1]:
        note = voices.new[prefix][None, :]
        for k, leap in enumerate(BASS_LEAPS, start=2):
            kinds[(note >= 0) & (last[:, None] >= 0) & (np.abs(note - last[:, None]) >= leap)] = k
    return kinds


def narrow(mask: np.ndarray, wish: np.ndarray) -> np.ndarray:
    """`mask & wish` (rows, vocabulary) in the rows where that leaves a token; elsewhere `mask`."""
    narrowed = mask & wish
    return np.where(narrowed.any(axis=1)[:, None], narrowed, mask)


def frame_voices(net: StepModel, voices: Voices, probs: np.ndarray, state: list[np.ndarray], memory: Memory,
                 now: np.ndarray, demands: Demands, given: np.ndarray, rng: np.random.Generator, sampler: Sampler,
                 rules: bool, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """One frame's lower voices for each row: with `width` 1 one by one, each drawn (`draw`) among the notes the
    rules allow it; else together: each voice but the last keeps its `width` likeliest allowed notes, and every
    branch (a note for each) is weighed by its tempered probability times the tempered mass its last voice has left
    under the rules, so a note that leaves a later voice only forbidden or unlikely notes is seldom drawn; the last
    voice is then drawn (`draw`) in the branch drawn. `demands` says what the rules ask of each row (a chord, the
    final tonic, which voices may hold or move: each kept where any note is left), `given` (rows, voices) the token
    ids of voices the frame already has (-1: draw one). Returns the ids (rows, voices), their nats, and the
    next-token probabilities and state after them."""
    rows = len(probs)
    parent = np.arange(rows)  # each branch's row
    weight, nats, picked = np.ones(rows), np.zeros(rows), np.zeros((rows, 0), np.int64)
    exponent = 1.0 if sampler.greedy else 1 / sampler.temperature
    began = np.zeros(now.shape, bool)  # each branch's voices that begin a note in this frame
    began[:, 0] = demands.begins
    for level, prefix in enumerate(voices.order):
        voice = voices.columns[level]
        new, held = voices.new[prefix] >= 0, voices.held[prefix] == memory.before[parent, voice][:, None]
        # where the melody rests, the lower voices rest with it (Bach's, all three, at 96 % of such frames)
        mask = np.where((now[:, 0] < 0)[:, None] & voices.rest[prefix].any(), voices.rest[prefix], new | held)
        penalty = np.ones(len(parent))
        written = [0, *voices.columns[:level]]  # the soprano, the voices drawn
        if voices.calibration.any() or demands.figuration.any():  # a calibrated bundle (calibrate.py), a figuration
            known = memory.before[parent].copy()  # the other voices' pitches: as drawn in this frame, else as they were
            known[:, written] = now[:, written]
            known = np.delete(known, voice, axis=1)
            odds = voices.calibration + np.outer(demands.figuration[parent], OFF_BEAT)
            probs = probs * np.exp(np.einsum("rvk,rk->rv", calibration_features(
                voices.new[prefix], voice == len(PREFIXES) - 1, memory.before[parent, voice], demands.soprano[parent],
                demands.tonic[parent], demands.minor[parent], known, voices.holds, demands.pulse[parent]), odds))
            probs /= probs.sum(axis=1, keepdims=True)
        if voice == len(PREFIXES) - 1:  # the bass of a final chord: its tonic
            tonic = demands.ending[parent][:, None]
            mask = narrow(mask, (tonic < 0) | ((voices.sounding >= 0) & (voices.sounding % 12 == tonic)))
        free = mask  # the tokens the rules do not judge, for whether the voice holds or moves (`draw`)
        if rules:
            kept = ~voice_breaks(memory.take(parent), now, began, voice, voices.new[prefix],
                                 voices.held[prefix], demands.strong[parent], written)
            penalty = np.where((mask & kept).any(axis=1), 1.0, 1e-6)  # a branch that leaves no rule-abiding note
            mask = narrow(mask, kept)
        # the rhythm weighs least: a note held too long or begun too soon rather than a parallel or a crossing
        move, hold = demands.move[parent, level][:, None], demands.hold[parent, level][:, None]
        if level == len(voices.order) - 1:  # the last voice begins a note where the frame must and none has
            hold = hold & ~(demands.lead[parent] & ~began.any(axis=1))[:, None]
        rhythm = (new & move) | (held & hold)
        mask, free = narrow(mask, rhythm), narrow(free, rhythm)
        fixed = np.flatnonzero(given[parent, level] >= 0)
        mask[fixed] = free[fixed] = False
        mask[fixed, given[parent[fixed], level]] = free[fixed, given[parent[fixed], level]] = True
        penalty[fixed] = 1.0
        mass = np.where(mask, np.maximum(probs.astype(np.float64), 1e-30) ** exponent, 0.0) * penalty[:, None]
        if level == len(voices.order) - 1:  # the last voice: draw a branch for each row, then its note
            total = (weight * mass.sum(axis=1)).reshape(rows, -1)
            if sampler.greedy or total.shape[1] == 1:
                which = total.argmax(axis=1)
            else:
                which = categorical(total, rng)
            pick = np.arange(rows) * total.shape[1] + which
            last = draw(sampler, probs[pick], rng, mask[pick], kind(voices, prefix, memory.before[parent[pick], voice]),
                        free[pick])
            out_nats = nats[pick] - np.log(np.maximum(probs[pick, last], 1e-30))
            next_probs, next_state = net.step(last.astype(np.int32), [s[pick] for s in state])
            return np.concatenate([picked[pick], last[:, None]], axis=1), out_nats, next_probs, next_state
        # each branch's likeliest notes (width 1: one drawn, the voices one after another)
        if width == 1:
            top = draw(sampler, probs, rng, mask, kind(voices, prefix, memory.before[parent, voice]), free)[:, None]
        else:
            top = np.argsort(-mass, axis=1)[:, :width]
        weight = (weight[:, None] * np.take_along_axis(mass, top, axis=1)).reshape(-1)
        nats = (nats[:, None] - np.log(np.maximum(np.take_along_axis(probs, top, axis=1), 1e-30))).reshape(-1)
        source = np.repeat(np.arange(len(parent)), width)  # each new branch's branch before it
        picked = np.concatenate([picked[source], top.reshape(-1, 1)], axis=1)
        now, began = now[source], began[source]
        now[:, voice] = voices.sounding[top.reshape(-1)]
        began[:, voice] = ~voices.holds[top.reshape(-1)] & (now[:, voice] >= 0)
        probs, state = net.step(top.reshape(-1).astype(np.int32), [s[source] for s in state])
        parent = parent[source]
    raise AssertionError("a voices encoding has lower voices")


def reharmonize(bundle: Bundle, net: StepModel, songs: list[list[str]], rng: np.random.Generator,
                candidates: int = 1, sampler: Sampler | None = None, rules: bool = True, chords: bool = True,
                width: int = LOOKAHEAD,
                figuration: tuple[float, float] = FIGURATION) -> list[tuple[list[str], float]]:
    """Four-voice pieces (tokens) with their alto, tenor and bass written anew under their soprano (four_parts):
    each new piece's tokens and its nats per frame."""
    pieces = [bundle.encoding.split(song) for song in songs]
    melodies = [(key, [[t for t in frame if t[:2] not in LOWER] for frame in frames]) for key, frames in pieces]
    written = four_parts(bundle, net, melodies, rng, candidates, sampler, rules, chords, width, figuration)
    return [([START, *([key] if key else []), *(t for frame in frames for t in frame), END], nats)
            for (key, _), (frames, nats) in zip(pieces, written, strict=True)]
