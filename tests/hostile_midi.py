"""Bad and odd MIDI inputs, generated on the fly (no committed binaries): good songs written with pretty_midi,
malformed ones assembled byte by byte with struct, file-system traps (folder named x.mid, symlink loop, FIFO,
device, sparse huge file, non-UTF-8 and multi-line names), and the seeds and mutations the fuzzers use."""

from __future__ import annotations

import io
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import pretty_midi

# Tokens the cpc encoding gives for GOOD_NOTES: three single notes, then a C major triad.
GOOD_NOTES = [[60], [64], [67], [60, 64, 67]]
GOOD_TOKENS = ["C4", "E4", "G4", "0.4.7"]
DRUM_CHANNEL = 9  # "channel 10" counted from 1


def write_good(path: Path | io.BytesIO, onsets: list[list[int]] = GOOD_NOTES, drums: list[int] | None = None):
    """A valid song with pretty_midi: one onset (note or chord) per half second; optional drum track."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    for i, pitches in enumerate(onsets):
        piano.notes.extend(pretty_midi.Note(velocity=90, pitch=p, start=i * 0.5, end=i * 0.5 + 0.4) for p in pitches)
    if onsets:
        midi.instruments.append(piano)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes.extend(pretty_midi.Note(velocity=100, pitch=p, start=i * 0.25, end=i * 0.25 + 0.1)
                         for i, p in enumerate(drums))
        midi.instruments.append(kit)
    midi.write(path if isinstance(path, io.BytesIO) else str(path))
    return path


def good_bytes(onsets: list[list[int]] = GOOD_NOTES) -> bytes:
    """The bytes of a small valid song, built with struct (format 1, one track)."""
    return midi_file([track(notes_events(onsets))])


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int = 1, ntracks: int = 1, division: int = 480, length: int = 6) -> bytes:
    """An MThd chunk."""
    return b"MThd" + struct.pack(">IHHH", length, fmt, ntracks, division)


def track(events: bytes, length: int | None = None) -> bytes:
    """An MTrk chunk around events plus end-of-track, with its true length unless told otherwise."""
    body = events + b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body) if length is None else length) + body


def midi_file(tracks: list[bytes], fmt: int = 1, division: int = 480) -> bytes:
    """A whole MIDI file."""
    return header(fmt, len(tracks), division) + b"".join(tracks)


def notes_events(onsets: list[list[int]], channel: int = 0, step: int = 240, velocity: int = 90) -> bytes:
    """Note-on/off events: each onset's pitches start together and last `step` ticks."""
    out = b""
    for pitches in onsets:
        for p in pitches:
            out += vlq(0) + bytes([0x90 | channel, p, velocity])
        for k, p in enumerate(pitches):
            out += vlq(step if k == 0 else 0) + bytes([0x80 | channel, p, 0])
    return out


def tempo_event(microseconds_per_quarter: int) -> bytes:
    """A set-tempo meta event (24-bit value)."""
    return vlq(0) + b"\xff\x51\x03" + microseconds_per_quarter.to_bytes(3, "big")


def pitch_bend_event(value: int, channel: int = 0) -> bytes:
    """A pitch-bend event (14-bit value, 0x2000 is centre)."""
    return vlq(0) + bytes([0xE0 | channel, value & 0x7F, (value >> 7) & 0x7F])


def many_notes_bytes(count: int) -> bytes:
    """A valid but long song: `count` onsets of a three-note chord, for time-out tests."""
    onsets = [[48 + i % 24, 52 + i % 24, 55 + i % 24] for i in range(count)]
    return midi_file([track(notes_events(onsets, step=120))])


@dataclass
class Corpus:
    """A folder of inputs: display names that must be extracted (with their tokens) and that must be skipped."""

    folder: Path
    good: dict[str, list[str]]
    bad: list[str]


def write_bad_files(folder: Path) -> list[str]:
    """Malformed or unusable MIDI content; returns the file names."""
    valid = good_bytes()
    files = {
        "truncated.mid": valid[: len(valid) // 2],
        "header_then_noise.mid": header() + random.Random(0).randbytes(200),
        "header_only.mid": header(),
        "track_length_too_long.mid": header() + track(notes_events(GOOD_NOTES), length=10_000),
        "track_length_too_short.mid": header() + track(notes_events(GOOD_NOTES), length=3),
        "header_length_wrong.mid": header(length=2) + track(notes_events(GOOD_NOTES)),
        "format2.mid": midi_file([track(notes_events(GOOD_NOTES)), track(notes_events(GOOD_NOTES))], fmt=2),
        "no_notes.mid": midi_file([track(tempo_event(500_000))]),
        "zero_tempo.mid": midi_file([track(tempo_event(0) + notes_events(GOOD_NOTES))]),
        "zero_ticks_per_quarter.mid": midi_file([track(notes_events(GOOD_NOTES))], division=0),
        "smpte_time_division.mid": midi_file([track(notes_events(GOOD_NOTES))], division=0xE728),
        "drums_only.mid": midi_file([track(notes_events([[36], [38], [42], [36, 42]], channel=DRUM_CHANNEL))]),
        "empty.mid": b"",
        "not_midi.mid": b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return list(files)


def write_odd_but_valid_files(folder: Path) -> dict[str, list[str]]:
    """Files that are unusual but well-formed: they must be extracted; returns name -> expected tokens."""
    overlap = (vlq(0) + b"\x90\x3c\x5a" + vlq(0) + b"\x90\x3c\x5a"  # the same note struck twice at once
               + vlq(240) + b"\x80\x3c\x00" + vlq(0) + b"\x80\x3c\x00" + notes_events([[64], [67]]))
    files = {
        "overlapping_identical_notes.mid": (midi_file([track(overlap)]), ["C4", "E4", "G4"]),
        "huge_tempo.mid": (midi_file([track(tempo_event(0xFFFFFF) + notes_events(GOOD_NOTES))]), GOOD_TOKENS),
        "tiny_tempo.mid": (midi_file([track(tempo_event(1) + notes_events(GOOD_NOTES))]), GOOD_TOKENS),
        # Legacy files often name instruments in Latin-1 ("Flûte"); music21 warns about it on stderr.
        "latin1_instrument_name.mid": (midi_file([track(vlq(0) + b"\xff\x04\x05Fl\xfbte" + notes_events(GOOD_NOTES))]),
                                       GOOD_TOKENS),
        "extreme_pitch_bend.mid": (midi_file([track(pitch_bend_event(0x3FFF) + notes_events(GOOD_NOTES[:2])
                                                    + pitch_bend_event(0) + notes_events(GOOD_NOTES[2:]))]),
                                   GOOD_TOKENS),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: tokens for name, (_, tokens) in files.items()}


def write_fs_traps(folder: Path) -> list[str]:
    """File-system traps that are not songs; returns their names, all to be skipped. Also a folder named x.mid
    holding a good song (a folder is searched like any other, so x.mid/inner.mid must be extracted)."""
    (folder / "x.mid").mkdir()
    write_good(folder / "x.mid" / "inner.mid")
    (folder / "loop_a.mid").symlink_to("loop_b.mid")
    (folder / "loop_b.mid").symlink_to("loop_a.mid")
    (folder / "dangling.mid").symlink_to("does_not_exist.mid")
    (folder / "zero.mid").symlink_to("/dev/zero")  # endless bytes: must never be read
    os.mkfifo(folder / "pipe.mid")  # reading it would block forever
    with open(folder / "huge.mid", "wb") as f:
        f.truncate(65 * 2**20)  # sparse: over the size limit without using the disk
    return ["loop_a.mid", "loop_b.mid", "dangling.mid", "zero.mid", "pipe.mid", "huge.mid"]


NON_UTF8_GOOD = os.fsdecode(b"good\xff.mid")  # extract shows it as good\xff.mid
NON_UTF8_BAD = os.fsdecode(b"bad\xfe.mid")


def write_corpus(folder: Path) -> Corpus:
    """Good songs mixed with every kind of bad input above."""
    folder.mkdir(parents=True, exist_ok=True)
    write_good(folder / "good_a.mid")
    write_good(folder / "good_b.mid", [[62], [65, 69], [72]])
    write_good(folder / "piano_and_drums.mid", drums=[36, 38, 42, 46, 49, 36])
    (folder / NON_UTF8_BAD).write_bytes(b"MThd\x00")
    (folder / "two\nlines.mid").write_bytes(b"MThd")
    good = {"good_a.mid": GOOD_TOKENS, "good_b.mid": ["D4", "5.9", "C5"], "piano_and_drums.mid": GOOD_TOKENS,
            "x.mid/inner.mid": GOOD_TOKENS, **write_odd_but_valid_files(folder)}
    bad = [*write_bad_files(folder), *write_fs_traps(folder), "bad\\xfe.mid", "two\\nlines.mid"]
    return Corpus(folder, good, bad)


def _pretty_midi_bytes(**song) -> bytes:
    out = io.BytesIO()
    write_good(out, **song)
    return out.getvalue()


# Valid songs the fuzzers start from: struct-built and pretty_midi-built, one and several tracks.
SEEDS = [
    good_bytes(),
    midi_file([track(tempo_event(400_000) + pitch_bend_event(0x2400)),
               track(notes_events([[60, 64, 67], [62], [65, 69, 72], [59]])),
               track(notes_events([[36], [42]], channel=DRUM_CHANNEL))], division=96),
    _pretty_midi_bytes(),
    _pretty_midi_bytes(onsets=[[48, 55], [60], [64, 67, 71]], drums=[36, 38, 42]),
]
MUTATIONS = ("flip", "overwrite", "truncate", "chunk_length", "splice", "delete", "insert", "fix_lengths")
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xF0, 0xF7, 0xFF)  # VLQ ends and continuations, status bytes, meta


def fix_lengths(data: bytearray) -> None:
    """Set every MTrk chunk's length to reach the next MTrk or the end: damaged events in well-formed chunks."""
    starts = [i for i in range(len(data) - 7) if data[i:i + 4] == b"MTrk"]
    for at, end in zip(starts, [*starts[1:], len(data)], strict=False):
        data[at + 4:at + 8] = max(0, end - at - 8).to_bytes(4, "big")


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    """Apply (kind, a, b) mutations in turn; a and b are any 32-bit numbers that pick places and values."""
    out = bytearray(data)
    for kind, a, b in mutations:
        size = len(out)
        if kind == "flip" and size:
            out[a % size] ^= 1 << (b % 8)
        elif kind == "overwrite" and size:
            out[a % size] = INTERESTING_BYTES[b % len(INTERESTING_BYTES)] if b % 2 else (b >> 8) & 0xFF
        elif kind == "truncate":
            del out[a % (size + 1):]
        elif kind == "chunk_length":
            chunks = [i for i in range(size - 7) if out[i:i + 4] in (b"MThd", b"MTrk")]
            if chunks:
                at = chunks[a % len(chunks)]
                true = int.from_bytes(out[at + 4:at + 8], "big")
                new = max(0, true + (b >> 1) % 33 - 16) if b % 2 else b  # off by a little, or anything
                out[at + 4:at + 8] = new.to_bytes(4, "big")
        elif kind == "splice":
            donor = SEEDS[a % len(SEEDS)]
            start = b % len(donor)
            out[(a >> 8) % (size + 1):(a >> 8) % (size + 1)] = donor[start:start + 1 + (b >> 16) % 64]
        elif kind == "delete" and size:
            del out[a % size:a % size + 1 + b % 16]
        elif kind == "insert":
            out[a % (size + 1):a % (size + 1)] = b.to_bytes(4, "big")[: 1 + (a >> 16) % 4]
        elif kind == "fix_lengths":
            fix_lengths(out)
    return bytes(out)


def crash_loudly(path) -> bytes:
    """Dies as a reader whose C stack overflowed does (music21 on a 4 MB one-line abc tune): a fatal error dumped on
    stderr, then an abort."""
    os.write(2, b"Fatal Python error: Cannot recover from stack overflow.\n"
                b"Current thread 0x00007f00 (most recent call first):\n  File \"music21/abcFormat/__init__.py\"\n")
    os.abort()
