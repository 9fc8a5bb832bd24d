"""The one exception type for user errors: the CLI prints it as one line and exits non-zero."""


class PianoComposerError(Exception):
    """A problem with the user's input or environment, explained in one line."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message cut to one short line, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class Unplayable(PianoComposerError, ValueError):
    """A piece that cannot be read or played: tokens that decode to nothing, a tune a notation reader rejects."""
