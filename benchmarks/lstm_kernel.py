"""Which LSTM kernel training really runs here: cuDNN's or Keras's generic loop (issue 3's GPU check).

Each Keras backend takes cuDNN's fused LSTM on a GPU when the layer allows it, and silently falls back to a
generic per-step loop when it does not (or when the cuDNN call fails). This builds the paper-preset network,
traces one step with the backend's own tools and lists the LSTM operations found:

- tensorflow: the op types in the traced graph (`CudnnRNNV3` when cuDNN is used);
- jax: the custom calls in the lowered program (`cudnn_rnn_ffi` when cuDNN is used);
- torch: the operators the profiler records in a training step (`aten::_cudnn_rnn` when cuDNN is used).

Prints one JSON object; on a GPU, `lstm_kernel` must read "cudnn".

    KERAS_BACKEND=torch .venv/bin/python -m benchmarks.lstm_kernel [--mixed-precision]
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np

from pianocomposer._util import import_keras
from pianocomposer.config import PRESETS
from pianocomposer.learning.model import build_model
from pianocomposer.learning.train import compile_model

LSTM_OP = re.compile(r"[\w:.]*(?:cudnn|lstm|rnn)[\w:.]*", re.IGNORECASE)
CUDNN_LSTM = re.compile(r"cudnn_?rnn", re.IGNORECASE)  # not torch's aten::cudnn_is_acceptable, a mere query


def _tensorflow_ops(model, x: np.ndarray) -> tuple[bool, str]:
    import tensorflow as tf

    graph = tf.function(lambda t: model(t, training=True)).get_concrete_function(
        tf.TensorSpec(x.shape, tf.int32)).graph.as_graph_def()
    ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
    return bool(tf.config.list_physical_devices("GPU")), " ".join(ops)


def _jax_ops(model, x: np.ndarray) -> tuple[bool, str]:
    import jax

    def forward(trainable, non_trainable, tokens):
        return model.stateless_call(trainable, non_trainable, tokens, training=True)[0]

    values = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    text = jax.jit(forward).lower(*values, x).as_text()
    return jax.default_backend() == "gpu", " ".join(re.findall(r"custom_call[^(]*", text))


def _torch_ops(model, x: np.ndarray) -> tuple[bool, str]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    gpu = torch.cuda.is_available()
    model.train_on_batch(x, x)  # warm-up outside the trace
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if gpu else [])]) as trace:
        model.train_on_batch(x, x)
    return gpu, " ".join(event.key for event in trace.key_averages())


def main() -> None:
    """Trace one step of the paper network on the active backend and print which LSTM kernel ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 compute, as `train` uses it")
    parser.add_argument("--vocab", type=int, default=626, help="vocabulary size (the default model's)")
    args = parser.parse_args()
    keras = import_keras()
    config = PRESETS["paper"]
    if args.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    model = build_model(config, args.vocab)
    compile_model(model, config)  # as `train` compiles it: torch.compile, say, would rule cuDNN out
    x = np.random.default_rng(0).integers(args.vocab, size=(config.batch_size, config.seq_len), dtype=np.int32)
    backend = keras.backend.backend()
    gpu, ops = {"tensorflow": _tensorflow_ops, "jax": _jax_ops, "torch": _torch_ops}[backend](model, x)
    found = sorted(set(LSTM_OP.findall(ops)))
    print(json.dumps({"backend": backend, "gpu": gpu, "mixed_precision": args.mixed_precision,
                      "lstm_kernel": "cudnn" if any(CUDNN_LSTM.search(op) for op in found) else "generic",
                      "lstm_ops": found}, indent=2))


if __name__ == "__main__":
    main()
