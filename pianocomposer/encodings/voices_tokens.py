"""The voices encoding's token grammar, written and read in this one place: `<start>`, a key (`Key_7M`), frames of
`Beat_n` (or `Frame`), `Fermata`, each voice's new note (`S_67`), held note (`S_67~`) or silence (`S_rest`), the
soprano's next note (`Next_69`, `Next_end`), `<end>`. The encoding, its sampler's grammar, four-part writing and
calibration all write and parse tokens with these functions."""

from __future__ import annotations

VOICES = ("Soprano", "Alto", "Tenor", "Bass")
PREFIXES = tuple(v[0] for v in VOICES)  # S A T B
START, END, FERMATA, REST, HELD, FRAME, NEXT = "<start>", "<end>", "Fermata", "rest", "~", "Frame", "Next"
VOICE_TOKENS = {f"{p}_" for p in PREFIXES}  # what every voice's token starts with
LOWER = {f"{p}_" for p in PREFIXES[1:]}  # the alto's, tenor's and bass's


def key_token(tonic: int, minor: bool) -> str:
    """`Key_7M` for G major, `Key_9m` for A minor."""
    return f"Key_{tonic % 12}{'m' if minor else 'M'}"


def voice_token(prefix: str, pitch: int | None, held: bool = False) -> str:
    """A voice's new note (`S_67`), held note (`S_67~`) or, for pitch None, silence (`S_rest`)."""
    return f"{prefix}_{REST}" if pitch is None else f"{prefix}_{pitch}{HELD * held}"


def beat_token(step: int) -> str:
    """A frame's place in its bar: `Beat_0` on the downbeat."""
    return f"Beat_{step}"


def next_token(pitch: int | None) -> str:
    """The soprano's next new note (`Next_69`), or `Next_end` after its last."""
    return f"{NEXT}_{'end' if pitch is None else pitch}"


def kind(token: str) -> tuple[str, str]:
    """A token's kind and value: ("Beat", "4"), ("S", "67~"), ("Next", "69"), ("Key", "7M"), ("<end>", "")."""
    name, _, value = token.partition("_")
    return (name, value) if value else (token, "")


def is_frame(token: str) -> bool:
    """Whether a token starts a frame."""
    return token.startswith("Beat_") or token == FRAME


def pitch(token: str) -> int:
    """A voice token's sounding pitch (a held note's too), or -1 for silence."""
    value = kind(token)[1].rstrip(HELD)
    return int(value) if value.isdigit() else -1


def beat(token: str) -> int | None:
    """A `Beat_n` token's n (its step in the bar), else None."""
    name, value = kind(token)
    return int(value) if name == "Beat" and value.isdigit() else None


def key_tonic(key: str | None) -> tuple[int, bool]:
    """(the tonic's pitch class, minor) of a key token (`Key_9m`: (9, True)); (-1, False) for none."""
    name, value = kind(key or "")
    return (int(value[:-1]), value.endswith("m")) if name == "Key" and value[:-1].isdigit() else (-1, False)
