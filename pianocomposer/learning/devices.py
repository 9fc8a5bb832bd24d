"""Device placement for training, in one place: which devices share the work and which process writes the bundle.

Training runs inside `placement.scope()` (model building, compiling and every epoch), feeds each process's share of
every batch (`placement.local_share`), stops when the processes agree to (`placement.agree`) and writes files only
when `placement.is_writer`; the epoch loop knows nothing else about devices. `placement_for("all")` spreads each
global batch over every JAX device (GPUs, or CPU devices made with XLA_FLAGS=
--xla_force_host_platform_device_count=N) with Keras's DataParallel distribution.

Several processes (hosts) train together when Keras's multi-process variables are set in each one's environment
(see `keras.distribution.initialize`), and each runs the same `train --devices all` on the same data:
KERAS_DISTRIBUTION_JOB_ADDRESSES (process 0's host:port, the coordinator every process connects to),
KERAS_DISTRIBUTION_NUM_PROCESSES (how many processes) and KERAS_DISTRIBUTION_PROCESS_ID (0 .. N-1, this process).
Each process then feeds its own slice of every global batch, a stop (Ctrl-C, SIGTERM, time budget, patience) on any
process stops them all after the same batch, and only process 0 writes the bundle.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pianocomposer.errors import PianoComposerError

CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")
REASON_BYTES = 256  # the longest stop reason processes exchange


@dataclass(frozen=True)
class Placement:
    """Single-process training on the backend's default device (a GPU when Keras sees one)."""

    name: str = "default"
    replicas: int = 1  # model copies that share one global batch
    is_writer: bool = True  # the one process that writes the bundle

    def scope(self) -> contextlib.AbstractContextManager:
        """Context in which the model is built, compiled and trained."""
        return contextlib.nullcontext()

    def alone(self) -> contextlib.AbstractContextManager:
        """Context for work one process does without the others (the writer's saving): no collective operations."""
        return contextlib.nullcontext()

    def local_share(self, arrays: tuple[np.ndarray, ...], batch_size: int) -> tuple[tuple[np.ndarray, ...], int]:
        """This process's rows of every global batch of the arrays, and the batch size it feeds to `fit`."""
        return arrays, batch_size

    def agree(self, reason: str | None) -> str | None:
        """The reason to stop that every process adopts: here, this process's own (None: go on)."""
        return reason


@dataclass(frozen=True)
class DataParallel(Placement):
    """One model copy per device; each global batch split between them and the gradients averaged."""

    strategy: object = None  # keras.distribution.DataParallel
    processes: int = 1  # processes that train together, each feeding its own slice of every global batch

    def scope(self) -> contextlib.AbstractContextManager:
        """The distribution's scope: variables are mirrored and batches sharded inside it."""
        return self.strategy.scope()

    def alone(self) -> contextlib.AbstractContextManager:
        """No distribution inside: variables made there (the saved copy of the model) stay on this process."""
        return _no_distribution()

    def local_share(self, arrays: tuple[np.ndarray, ...], batch_size: int) -> tuple[tuple[np.ndarray, ...], int]:
        """Slice p of every global batch for process p: Keras joins the processes' batches in process order."""
        if self.processes == 1:
            return arrays, batch_size
        import jax

        size = batch_size // self.processes
        return tuple(a.reshape(-1, self.processes, size, *a.shape[1:])[:, jax.process_index()]
                     .reshape(-1, *a.shape[1:]) for a in arrays), size

    def agree(self, reason: str | None) -> str | None:
        """The first process's reason to stop, if any process has one: all processes stop at the same step."""
        if self.processes == 1:
            return reason
        from jax.experimental import multihost_utils

        mine = np.zeros(REASON_BYTES, np.uint8)
        encoded = (reason or "").encode()[:REASON_BYTES]
        mine[: len(encoded)] = np.frombuffer(encoded, np.uint8)
        reasons = [bytes(row).rstrip(b"\0").decode() for row in multihost_utils.process_allgather(mine)]
        return next((r for r in reasons if r), None)


@contextlib.contextmanager
def _no_distribution() -> Iterator[None]:
    """Keras's distribution switched off, then restored."""
    import keras

    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def default_placement() -> Placement:
    """The placement `train` uses when none is given."""
    return Placement()


def placement_for(devices: str | None) -> Placement:
    """`None`/"1": one device; "all" or a number N: data-parallel over the first N devices of the backend.

    With KERAS_DISTRIBUTION_* set, "all" joins the processes first and spans every process's devices.
    """
    cluster = any(os.environ.get(name) for name in CLUSTER_VARIABLES)
    if devices in (None, "1") and not cluster:
        return default_placement()
    from pianocomposer._util import import_keras

    keras = import_keras()

    backend = keras.backend.backend()
    if backend != "jax":
        # TensorFlow's MirroredStrategy was tried: its replicas clip and normalise their own gradients, and on the
        # test corpus its loss curve left the one-device curve by up to 9 %; Keras's JAX distribution matches it.
        raise PianoComposerError(f"training on several devices runs on the jax backend (KERAS_BACKEND=jax), "
                                 f"not {backend}")
    import jax

    if cluster:
        if devices != "all":
            raise PianoComposerError("KERAS_DISTRIBUTION_* is set: processes that train together take --devices all")
        if not jax.distributed.is_initialized():
            keras.distribution.initialize()
    found = jax.devices()
    if devices != "all":
        if not devices.isdigit() or not 1 <= int(devices) <= len(found):
            raise PianoComposerError(f"--devices {devices}: expected all or 1..{len(found)} (this machine's "
                                     "jax devices)")
        found = found[: int(devices)]
    if len(found) == 1:
        return default_placement()
    processes = jax.process_count()
    where = f" in {processes} processes" if processes > 1 else ""
    # Keras shards only tf.data input itself; the arrays train feeds are already this process's (local_share).
    strategy = keras.distribution.DataParallel(devices=found, auto_shard_dataset=False)
    return DataParallel(f"data-parallel over {len(found)} {found[0].platform} devices{where}", len(found),
                        jax.process_index() == 0, strategy, processes)
