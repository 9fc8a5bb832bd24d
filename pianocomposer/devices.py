"""Device placement for training, in one place: which devices share the work and which process writes the bundle.

Training runs inside `placement.scope()` (model building, compiling and every epoch) and writes files only when
`placement.is_writer`; the epoch loop knows nothing else about devices. `placement_for("all")` spreads each
global batch over every local JAX device (GPUs, or CPU devices made with XLA_FLAGS=
--xla_force_host_platform_device_count=N) with Keras's DataParallel distribution.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from pianocomposer.errors import PianoComposerError


@dataclass(frozen=True)
class Placement:
    """Single-process training on the backend's default device (a GPU when Keras sees one)."""

    name: str = "default"
    replicas: int = 1  # model copies that share one global batch
    is_writer: bool = True  # the one process that writes the bundle

    def scope(self) -> contextlib.AbstractContextManager:
        """Context in which the model is built, compiled and trained."""
        return contextlib.nullcontext()


@dataclass(frozen=True)
class DataParallel(Placement):
    """One model copy per device; each global batch split between them and the gradients averaged."""

    strategy: object = None  # keras.distribution.DataParallel

    def scope(self) -> contextlib.AbstractContextManager:
        """The distribution's scope: variables are mirrored and batches sharded inside it."""
        return self.strategy.scope()


def default_placement() -> Placement:
    """The placement `train` uses when none is given."""
    return Placement()


def placement_for(devices: str | None) -> Placement:
    """`None`/"1": one device; "all" or a number N: data-parallel over the first N local devices of the backend."""
    if devices in (None, "1"):
        return default_placement()
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        # TensorFlow's MirroredStrategy was tried: its replicas clip and normalise their own gradients, and on the
        # test corpus its loss curve left the one-device curve by up to 9 %; Keras's JAX distribution matches it.
        raise PianoComposerError(f"training on several devices runs on the jax backend (KERAS_BACKEND=jax), "
                                 f"not {backend}")
    import jax

    found = jax.devices()
    if devices != "all":
        if not devices.isdigit() or not 1 <= int(devices) <= len(found):
            raise PianoComposerError(f"--devices {devices}: expected all or 1..{len(found)} (this machine's "
                                     "jax devices)")
        found = found[: int(devices)]
    if len(found) == 1:
        return default_placement()
    return DataParallel(f"data-parallel over {len(found)} {found[0].platform} devices", len(found),
                        jax.process_index() == 0, keras.distribution.DataParallel(devices=found))
