"""The network, built in exactly one place, and its NumPy twin for fast token-by-token generation."""

from __future__ import annotations

import numpy as np

from pianocomposer.config import ModelConfig


def build_model(config: ModelConfig, vocab_size: int, dtype: str | None = None):
    """Embedding -> LSTM x N (dropout between) -> Dense -> Dropout -> Dense(vocab) -> softmax, every position."""
    import keras
    from keras import layers

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # Unit-variance embeddings (as torch.nn.Embedding): with Keras's default uniform(-0.05, 0.05) the input signal
    # fades through the stacked LSTMs and training sits at the unigram plateau for thousands of steps.
    unit_normal = keras.initializers.RandomNormal(stddev=1.0)
    x = layers.Embedding(vocab_size, config.embedding_dim, embeddings_initializer=unit_normal, name="embedding",
                         dtype=dtype)(tokens)
    for i in range(config.lstm_layers):
        # Default activations and no recurrent_dropout keep the layer eligible for the cuDNN kernel.
        x = layers.LSTM(config.lstm_units, return_sequences=True, name=f"lstm_{i + 1}", dtype=dtype)(x)
        if i < config.lstm_layers - 1:
            x = layers.Dropout(config.dropout, name=f"dropout_{i + 1}")(x)
    x = layers.Dense(config.dense_units, name="dense", dtype=dtype)(x)
    x = layers.Dropout(config.dropout, name="dropout_dense")(x)
    x = layers.Dense(vocab_size, name="logits", dtype=dtype)(x)
    probs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(tokens, probs, name="pianocomposer_lstm")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class NumpyLSTM:
    """Inference with carried LSTM states: the same arithmetic as build_model's network, one step at a time.

    Framework dispatch costs milliseconds per call at batch size 1, more than the maths; plain NumPy with the
    weights in hand runs a step of the 3x512 network in well under a millisecond.
    """

    def __init__(self, model):
        w = {layer.name: [np.asarray(v, np.float32) for v in layer.get_weights()] for layer in model.layers}
        embedding = w["embedding"][0]
        lstms = [w[f"lstm_{i + 1}"] for i in range(sum(n.startswith("lstm_") for n in w))]
        dense_w, dense_b = w["dense"]
        logits_w, logits_b = w["logits"]
        # No activation between the two Dense layers and no dropout at inference: fold them into one matrix.
        self.out_w = dense_w @ logits_w
        self.out_b = dense_b @ logits_w + logits_b
        self.units = lstms[0][1].shape[0]
        # First layer: the input projection of every token precomputed, so a lookup replaces a matmul.
        kernel, self.first_recurrent, bias = lstms[0]
        self.first_input = embedding @ kernel + bias
        # Other layers: [x, h] @ [[kernel], [recurrent]] is one matrix product instead of two.
        self.stacked = [(np.vstack([k, r]), b) for k, r, b in lstms[1:]]

    def initial_state(self, batch: int) -> list[np.ndarray]:
        """Zero (h, c) for every layer."""
        return [np.zeros((batch, self.units), np.float32) for _ in range(2 * (len(self.stacked) + 1))]

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed one token per sequence (shape (batch,)); return next-token probabilities and the new state."""
        u = self.units
        new_state = []
        x = None
        for layer in range(len(self.stacked) + 1):
            h, c = state[2 * layer], state[2 * layer + 1]
            if layer == 0:
                z = self.first_input[ids] + h @ self.first_recurrent
            else:
                weights, bias = self.stacked[layer - 1]
                z = np.concatenate([x, h], axis=1) @ weights + bias
            # Keras's gate order: input, forget, cell candidate, output.
            i, f = _sigmoid(z[:, :u]), _sigmoid(z[:, u:2 * u])
            c = f * c + i * np.tanh(z[:, 2 * u:3 * u])
            h = _sigmoid(z[:, 3 * u:]) * np.tanh(c)
            new_state += [h, c]
            x = h
        logits = x @ self.out_w + self.out_b
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True), new_state
