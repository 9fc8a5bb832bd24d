"""Engrave a piece as a score a musician reads: MusicXML on two staves (a piano piece's grand staff split at middle
C, a four-voice piece's soprano and alto over tenor and bass) in its key's signature with pitches spelled for it, or
an abc tune's score from its own text (title, key, metre and repeats kept), and its first page as SVG (verovio).

Every score has a title, names pianocomposer and the model as its source, and one instrument per staff from its
first note (music21's MIDI reading puts one at every note group, which MuseScore shows as instrument changes).
"""

from __future__ import annotations

import copy
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pretty_midi

from pianocomposer.errors import PianoComposerError
from pianocomposer.writing.atomic import atomic_path, write_text

SPLIT = 60  # middle C and above on the treble staff, below it on the bass staff
# In a key without sharps or flats, the black keys as they are usually spelled there (C#, Eb, F#, G#, Bb).
NEUTRAL_SHARPS = {1, 6, 8}
# Krumhansl-Kessler key profiles, from C.
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(durations: np.ndarray) -> tuple[int, bool]:
    """(tonic pitch class, minor) whose Krumhansl-Kessler profile best matches 12 pitch-class durations."""
    scores = [(np.corrcoef(np.roll(profile, tonic), durations)[0, 1], tonic, minor)
              for minor, profile in ((False, MAJOR), (True, MINOR)) for tonic in range(12)]
    _, tonic, minor = max(scores)
    return tonic, minor


def midi_key(midi: pretty_midi.PrettyMIDI) -> tuple[int, bool]:
    """A piece's key: its first key signature's tonic and mode, else the one its notes suggest."""
    if midi.key_signature_changes:
        number = midi.key_signature_changes[0].key_number
        return number % 12, number >= 12
    durations = np.zeros(12)
    for track in midi.instruments:
        for n in track.notes:
            durations[n.pitch % 12] += n.end - n.start
    return estimate_key(durations) if durations.any() else (0, False)


def key_signature(tonic: int, minor: bool):
    """music21's Key for a tonic pitch class and mode, spelled as its usual signature (Bb major, not A# major)."""
    from music21 import key as keys

    name = pretty_midi.key_number_to_key_name(tonic + 12 * minor).split()[0]
    return keys.Key(name.replace("b", "-"), "minor" if minor else "major")


def spell(score, signature) -> None:
    """Respell black-key pitches for the key: flats in flat keys, sharps in sharp keys, the usual ones in C/Am."""
    flats = signature.sharps < 0
    for element in score.recurse().notes:
        for pitch in element.pitches:
            if pitch.accidental is None or pitch.accidental.alter == 0:
                continue
            want_flat = flats or (signature.sharps == 0 and pitch.pitchClass not in NEUTRAL_SHARPS)
            if (pitch.accidental.alter > 0) == want_flat and abs(pitch.accidental.alter) == 1:
                pitch.getEnharmonic(inPlace=True)


def _parts(midi: pretty_midi.PrettyMIDI, divisors: tuple[int, ...]) -> list:
    """Each track of the MIDI as a music21 part in measures, quantised to the grid (an empty track: bars of rest)."""
    from music21 import converter, instrument, note, stream

    buffer = io.BytesIO()
    midi.write(buffer)
    with tempfile.NamedTemporaryFile(suffix=".mid") as tmp:
        tmp.write(buffer.getvalue())
        tmp.flush()
        parsed = converter.parse(tmp.name, format="midi", forceSource=True, quantizePost=True,
                                 quarterLengthDivisors=divisors)
    parts = list(parsed.parts)
    bars = max((len(p.getElementsByClass(stream.Measure)) for p in parts), default=0)
    named = {p.partName: p for p in parts if p.partName}
    out = []
    for i, track in enumerate(midi.instruments):
        part = named.get(track.name) if track.name in named else (parts[i] if i < len(parts) and not named else None)
        if part is None or not track.notes:  # music21 leaves an empty track out: bars of rest in the first's metre
            part = stream.Part()
            template = parts[0].getElementsByClass(stream.Measure) if parts else []
            for m in template:
                bar = stream.Measure(number=m.number)
                bar.append(note.Rest(quarterLength=m.barDuration.quarterLength))
                part.append(bar)
            if not bars:
                part.append(stream.Measure([note.Rest(quarterLength=4.0)], number=1))
        for inst in list(part.recurse().getElementsByClass(instrument.Instrument)):
            inst.activeSite.remove(inst)
        out.append(part)
    return out


def two_staves(upper: Sequence, lower: Sequence, signature, title: str, source: str, names: tuple[str, str]):
    """A score of two staves joined by a brace (treble over bass), the parts of each as its voices: measures
    merged, the clef, key signature and metre at the start, one instrument, a title and its source."""
    from music21 import clef, instrument, layout, metadata, stream

    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title, composer=source))
    staves = []
    for parts, staff_clef, name in ((upper, clef.TrebleClef(), names[0]), (lower, clef.BassClef(), names[1])):
        staff = stream.PartStaff()
        staff.partName = name
        measures = [list(p.getElementsByClass(stream.Measure)) for p in parts]
        for i in range(max(len(m) for m in measures)):
            bars = [m[i] for m in measures if i < len(m)]
            measure = stream.Measure(number=i + 1)
            if i == 0:
                measure.insert(0, staff_clef)
                measure.insert(0, copy.deepcopy(signature))
            if bars[0].timeSignature:
                measure.insert(0, copy.deepcopy(bars[0].timeSignature))
            for number, bar in enumerate(bars, 1):
                if len(bars) == 1:  # one part: its notes and chords are the staff's
                    for element in bar.flatten().notesAndRests:
                        measure.insert(element.offset, copy.deepcopy(element))
                    continue
                voice = stream.Voice(id=str(number))
                for element in bar.flatten().notesAndRests:
                    voice.insert(element.offset, copy.deepcopy(element))
                measure.insert(0, voice)
            staff.append(measure)
        staff.insert(0, instrument.Piano() if names[0] == "Piano" else instrument.Vocalist())
        staves.append(staff)
        score.insert(0, staff)
    score.insert(0, layout.StaffGroup(staves, symbol="brace", barTogether=True))
    spell(score, signature)
    return score


def piano_score(midi: pretty_midi.PrettyMIDI, title: str, source: str, divisors: tuple[int, ...] = (4, 3)):
    """A piano piece on a grand staff: notes from middle C up in the right hand, below it in the left."""
    hands = pretty_midi.PrettyMIDI(initial_tempo=float(midi.get_tempo_changes()[1][0]) if len(
        midi.get_tempo_changes()[1]) else 120.0)
    hands.time_signature_changes = list(midi.time_signature_changes)
    right, left = pretty_midi.Instrument(0, name="Right"), pretty_midi.Instrument(0, name="Left")
    for track in midi.instruments:
        for n in track.notes:
            (right if n.pitch >= SPLIT else left).notes.append(copy.copy(n))
    if not right.notes and not left.notes:
        raise PianoComposerError("the piece has no notes to engrave")
    hands.instruments = [right, left]
    treble, bass = _parts(hands, divisors)
    return two_staves([treble], [bass], key_signature(*midi_key(midi)), title, source, ("Piano", "Piano"))


def satb_score(midi: pretty_midi.PrettyMIDI, title: str, source: str, divisors: tuple[int, ...] = (4,)):
    """Four voices (tracks S, A, T, B) on two staves: soprano and alto over tenor and bass, two voices each."""
    soprano, alto, tenor, bass = _parts(midi, divisors)
    return two_staves([soprano, alto], [tenor, bass], key_signature(*midi_key(midi)), title, source,
                      ("Soprano, Alto", "Tenor, Bass"))


def abc_score(text: str, source: str):
    """An abc tune's score from its own text: its title, key, metre and repeats as written."""
    from music21 import converter, metadata

    score = converter.parse(text, format="abc", forceSource=True)
    if score.metadata is None:
        score.insert(0, metadata.Metadata())
    score.metadata.composer = source
    return score


def write_sheet(score, xml_path: Path, svg_path: Path | None = None) -> None:
    """The score as MusicXML, and its first page engraved as SVG by verovio where svg_path is given."""
    with atomic_path(xml_path) as tmp:
        score.write("musicxml", fp=str(tmp))
    if svg_path is not None:
        write_svg(xml_path, svg_path)


def write_svg(xml_path: Path, svg_path: Path) -> None:
    """The first page of a MusicXML score engraved as SVG by verovio."""
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    toolkit.setOptions({"pageWidth": 2100, "pageHeight": 2970, "pageMarginLeft": 150, "scale": 40,
                        "adjustPageHeight": True, "footer": "none"})
    if not toolkit.loadData(xml_path.read_text(encoding="utf-8")):
        raise PianoComposerError(f"{xml_path}: verovio cannot read the MusicXML")
    write_text(svg_path, toolkit.renderToSVG(1))
