"""The network, built in exactly one place, and its NumPy twin for fast token-by-token generation."""

from __future__ import annotations

import numpy as np

from pianocomposer.config import ModelConfig


def rnn_layer_names(config: ModelConfig) -> list[str]:
    """Names of the recurrent layers, e.g. lstm_1..lstm_3 or gru_1..gru_3."""
    return [f"{config.cell}_{i + 1}" for i in range(config.rnn_layers)]


def build_model(config: ModelConfig, vocab_size: int, dtype: str | None = None, initialize: bool = True):
    """Embedding -> LSTM/GRU x N (dropout between) -> Dense -> Dropout -> Dense(vocab) -> softmax, every position.

    initialize=False makes every weight zero: for a copy whose weights are set next (and the recurrent layers'
    orthogonal initializer has no float16 kernel on some GPUs).
    """
    import keras
    from keras import layers

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    init = keras.initializers.RandomNormal(stddev=config.embedding_init_stddev) if initialize else "zeros"
    zeros = {} if initialize else {"kernel_initializer": "zeros"}
    x = layers.Embedding(vocab_size, config.embedding_dim, embeddings_initializer=init, name="embedding",
                         dtype=dtype)(tokens)
    # Default activations, bias, no recurrent_dropout, no unroll, no mask (and reset_after for the GRU) keep every
    # layer eligible for cuDNN's fused kernel on a GPU.
    cell = {"lstm": layers.LSTM, "gru": layers.GRU}[config.cell]
    names = rnn_layer_names(config)
    for i, name in enumerate(names):
        x = cell(config.rnn_units, return_sequences=True, name=name, dtype=dtype, **zeros,
                 **({} if initialize else {"recurrent_initializer": "zeros"}))(x)
        if i < len(names) - 1:
            x = layers.Dropout(config.dropout, name=f"dropout_{i + 1}")(x)
    x = layers.Dense(config.dense_units, name="dense", dtype=dtype, **zeros)(x)
    x = layers.Dropout(config.dropout, name="dropout_dense")(x)
    x = layers.Dense(vocab_size, name="logits", dtype=dtype, **zeros)(x)
    probs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(tokens, probs, name=f"pianocomposer_{config.cell}")


def keras_layer_weights(model) -> dict[str, list[np.ndarray]]:
    """Every layer's weights by layer name, as a Keras model holds them."""
    return {layer.name: [np.asarray(v) for v in layer.get_weights()] for layer in model.layers}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class StepModel:
    """Inference with carried recurrent states: the same arithmetic as build_model's network, one step at a time.

    Framework dispatch costs milliseconds per call at batch size 1, more than the maths; plain NumPy with the
    weights in hand runs a step of the 3x512 network in well under a millisecond. Built from weight arrays by
    layer name, so it needs no Keras (see keras_file.py), and computes in float32 whatever the stored dtype.
    """

    def __init__(self, config: ModelConfig, weights: dict[str, list[np.ndarray]]):
        w = {name: [np.asarray(v, np.float32) for v in arrays] for name, arrays in weights.items()}
        self.cell, self.units = config.cell, config.rnn_units
        layers = [w[name] for name in rnn_layer_names(config)]
        dense_w, dense_b = w["dense"]
        logits_w, logits_b = w["logits"]
        # No activation between the two Dense layers and no dropout at inference: fold them into one matrix.
        self.out_w = dense_w @ logits_w
        self.out_b = dense_b @ logits_w + logits_b
        embedding = w["embedding"][0]
        kernel, recurrent, bias = layers[0]
        if self.cell == "lstm":
            # First layer: the input projection of every token precomputed, so a lookup replaces a matmul.
            self.first_input, self.first_recurrent = embedding @ kernel + bias, recurrent
            # Other layers: [x, h] @ [[kernel], [recurrent]] is one matrix product instead of two.
            self.stacked = [(np.vstack([k, r]), b) for k, r, b in layers[1:]]
        else:
            # GRU (reset_after): bias[0] goes with the input, bias[1] with the recurrent product, which the reset
            # gate scales before it joins the candidate, so input and recurrent products stay apart.
            self.first_input, self.first_recurrent = embedding @ kernel + bias[0], (recurrent, bias[1])
            self.stacked = [(k, b[0], r, b[1]) for k, r, b in layers[1:]]
        self.n_layers = len(layers)
        self.states_per_layer = 2 if self.cell == "lstm" else 1

    def initial_state(self, batch: int) -> list[np.ndarray]:
        """Zero states for every layer: (h, c) per LSTM layer, h per GRU layer."""
        return [np.zeros((batch, self.units), np.float32) for _ in range(self.states_per_layer * self.n_layers)]

    def _lstm(self, z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = self.units
        # Keras's gate order: input, forget, cell candidate, output.
        c = _sigmoid(z[:, u:2 * u]) * c + _sigmoid(z[:, :u]) * np.tanh(z[:, 2 * u:3 * u])
        return _sigmoid(z[:, 3 * u:]) * np.tanh(c), c

    def _gru(self, x_proj: np.ndarray, h: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
        u = self.units
        inner = h @ recurrent + bias
        # Keras's gate order: update, reset, candidate.
        z = _sigmoid(x_proj[:, :u] + inner[:, :u])
        r = _sigmoid(x_proj[:, u:2 * u] + inner[:, u:2 * u])
        candidate = np.tanh(x_proj[:, 2 * u:] + r * inner[:, 2 * u:])
        return z * h + (1.0 - z) * candidate

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed one token per sequence (shape (batch,)); return next-token probabilities and the new state."""
        new_state: list[np.ndarray] = []
        x = None
        for layer in range(self.n_layers):
            if self.cell == "lstm":
                h, c = state[2 * layer], state[2 * layer + 1]
                if layer == 0:
                    z = self.first_input[ids] + h @ self.first_recurrent
                else:
                    weights, bias = self.stacked[layer - 1]
                    z = np.concatenate([x, h], axis=1) @ weights + bias
                h, c = self._lstm(z, c)
                new_state += [h, c]
            else:
                h = state[layer]
                if layer == 0:
                    h = self._gru(self.first_input[ids], h, *self.first_recurrent)
                else:
                    kernel, input_bias, recurrent, recurrent_bias = self.stacked[layer - 1]
                    h = self._gru(x @ kernel + input_bias, h, recurrent, recurrent_bias)
                new_state.append(h)
            x = h
        logits = x @ self.out_w + self.out_b
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True), new_state
