"""Default paths, format versions and the model configuration, in one place."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIDI_DIR = Path("midi_songs")
DEFAULT_DATA_DIR = Path("data")
DEFAULT_WEIGHTS_DIR = Path("weights")
DEFAULT_OUTPUT_DIR = Path("output")
# The bundle shipped in the repo; `generate` falls back to it when --weights has no bundle of its own.
SHIPPED_BUNDLE_DIR = PROJECT_ROOT / "weights" / "default"

# Sampling defaults, chosen by measuring the loop rate of the default model's pieces (BENCHMARKS.md):
# temperature-1 sampling from the top 95 % of probability mass loops no more than the corpus itself.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 0.95

TOKENS_FILE = "tokens.json"
TOKENS_FORMAT_VERSION = 1
BUNDLE_FORMAT_VERSION = 1

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@dataclass(frozen=True)
class ModelConfig:
    """Every hyper-parameter of the network and its training, saved inside the bundle."""

    seq_len: int = 100
    embedding_dim: int = 128
    lstm_units: int = 512
    lstm_layers: int = 3
    dropout: float = 0.3
    dense_units: int = 256
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "rmsprop"

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of to_dict; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # The published design: 100-token windows, LSTM(512) x3, Dense(256), RMSprop, batch 64.
    "paper": ModelConfig(),
    # A small network that learns something on a 2-core laptop in a few minutes (the README demo).
    "quick": ModelConfig(seq_len=64, embedding_dim=64, lstm_units=128, lstm_layers=2, dense_units=128,
                         batch_size=32, learning_rate=3e-3),
}
