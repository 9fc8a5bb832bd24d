"""Device placement for training, in one place: where the model is built and which process writes the bundle.

Training builds and compiles the model inside `placement.scope()` and writes files only when
`placement.is_writer`; the epoch loop knows nothing else about devices. A distribution strategy (several GPUs,
several hosts) is a new Placement, not a change to the loop.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """Single-process training on the backend's default device (a GPU when Keras sees one)."""

    name: str = "default"
    replicas: int = 1  # model copies that share one global batch
    is_writer: bool = True  # the one process that writes the bundle

    def scope(self) -> contextlib.AbstractContextManager:
        """Context in which the model and its optimizer are created."""
        return contextlib.nullcontext()


def default_placement() -> Placement:
    """The placement `train` uses when none is given."""
    return Placement()
