"""Small helpers shared by the stages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null: for C libraries and child programs that print regardless."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "wb") as null:
        try:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


TRAIN_EXTRA = "pip install 'pianocomposer[train]'"


def import_keras():
    """Import Keras without TensorFlow's C++ start-up log lines (they bypass TF_CPP_MIN_LOG_LEVEL); a core install
    without the [train] extra gets one line saying how to add it."""
    from pianocomposer.errors import PianoComposerError

    try:
        with quiet_fds():
            import keras
    except ModuleNotFoundError as exc:
        raise PianoComposerError(f"training needs Keras and its backend, which the core install leaves out "
                                 f"({exc.name} is missing): {TRAIN_EXTRA}") from None
    return keras
