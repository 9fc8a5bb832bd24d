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
DEFAULT_DEMOS_CONFIG = Path("pipelines/demos.toml")
DEFAULT_DEMOS_DIR = DEFAULT_OUTPUT_DIR / "demos"
DEFAULT_SERVE_DIR = DEFAULT_OUTPUT_DIR / "serve"
DEFAULT_TIMEOUT_S = 60.0  # seconds to parse one file: one hostile file must not hang extract


def shipped_bundle(name: str = "default") -> Path:
    """The folder of the bundle shipped as weights/<name>/ in the repo.

    An installed wheel carries the bundles as package data in pianocomposer/shipped/<name>/ (see pyproject.toml);
    without that folder (a source checkout or an editable install) they are read from the checkout's weights/<name>/.
    """
    installed = Path(__file__).resolve().parent / "shipped"
    return (installed if installed.is_dir() else PROJECT_ROOT / "weights") / name


# The default shipped bundle; `generate` falls back to it when --weights has no bundle of its own.
SHIPPED_BUNDLE_DIR = shipped_bundle("default")

# Sampling defaults, chosen by measuring the loop rate of the default model's pieces (BENCHMARKS.md):
# temperature-1 sampling from the top 95 % of probability mass loops no more than the corpus itself.
DEFAULT_TEMPERATURE = 1.0
# harmonize draws cooler: on held-out sopranos 70 % of onsets are chords at 0.5, 65 % at 1.0 (BENCHMARKS.md)
HARMONY_TEMPERATURE = 0.5
FLORID = 3.0  # `harmonize --figuration` lies within so many standard deviations of Bach's chorales' mean figuration
DEFAULT_TOP_P = 0.95
DEFAULT_LENGTH = 500  # tokens per piece (the design's 500 notes)
CALIBRATION_SONGS = 60  # training chorales `calibrate` fits on: 39 000 tokens for 31 numbers, a laptop minute

TOKENS_FILE = "tokens.json"
TOKENS_FORMAT_VERSION = 4  # 2: encoding parameters; 3: songs may be tunes of an abc book (`part`); 4: ids + vocabulary
BUNDLE_FORMAT_VERSION = 2  # 2: cell, clipping and embedding init in the config; typed options; encoding parameters

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CELLS = ("lstm", "gru")
OBJECTIVES = ("all", "last")
OPTIMIZERS = ("rmsprop", "adam")


class _Frozen:
    """JSON round trip for the frozen dataclasses saved in the bundle; unknown keys are an error."""

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Inverse of to_dict; unknown keys are an error, missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig(_Frozen):
    """Every hyper-parameter of the network and its optimizer, saved inside the bundle."""

    seq_len: int = 100
    embedding_dim: int = 128
    cell: str = "lstm"
    rnn_units: int = 512
    rnn_layers: int = 3
    dropout: float = 0.3
    dense_units: int = 256
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "rmsprop"
    clipnorm: float = 1.0  # gradient clipping by global norm
    # Unit-variance embeddings (as torch.nn.Embedding): with Keras's default uniform(-0.05, 0.05) the input signal
    # fades through the stacked recurrent layers and training sits at the unigram plateau for thousands of steps.
    embedding_init_stddev: float = 1.0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)} (got {self.cell!r})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        for name in ("seq_len", "embedding_dim", "rnn_units", "rnn_layers", "dense_units", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.learning_rate <= 0 or self.clipnorm <= 0 or self.embedding_init_stddev <= 0:
            raise ValueError("learning_rate, clipnorm and embedding_init_stddev must be positive")


@dataclass(frozen=True)
class TrainOptions(_Frozen):
    """How the data is fed to training (saved in the bundle; fixed for the bundle's life)."""

    objective: str = "all"  # all: supervise every position; last: only each window's last (the original)
    transpose: tuple[int, int] = (0, 0)  # augmentation: every song also moved by low..high semitones
    # each epoch trains each song once, moved by a transposition drawn from the range, instead of every copy
    # (a large corpus: the epoch stays the corpus's size)
    random_transpose: bool = False
    val_split: float = 0.1  # share of whole songs held out
    mixed_precision: bool = False  # bfloat16 compute
    seed: int = 0  # split, initialisation, and every epoch's window shift, order and dropout

    def __post_init__(self):
        object.__setattr__(self, "transpose", tuple(self.transpose))  # JSON gives a list
        low, high = self.transpose
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)} (got {self.objective!r})")
        if not -12 <= low <= 0 <= high <= 12:
            raise ValueError(f"transposition {low}..{high} must have -12 <= low <= 0 <= high <= 12")
        if not 0 <= self.val_split < 1:
            raise ValueError(f"val_split must be in [0, 1) (got {self.val_split})")

    @property
    def semitones(self) -> range:
        """Every transposition, 0 included."""
        return range(self.transpose[0], self.transpose[1] + 1)


PRESETS: dict[str, ModelConfig] = {
    # The published design: 100-token windows, LSTM(512) x3, Dense(256), RMSprop, batch 64.
    "paper": ModelConfig(),
    # A small network that learns something on a 2-core laptop in a few minutes (the README demo).
    "quick": ModelConfig(seq_len=64, embedding_dim=64, rnn_units=128, rnn_layers=2, dense_units=128,
                         batch_size=32, learning_rate=3e-3),
    # abc text (the folk-rnn lineage): the TensorFlow folk-music workshop's GRU x3, 128-step windows, dropout 0.3,
    # Adam 1e-3, with 256 units instead of 512: on a 2-core CPU it trains 2.9x the tokens per second and in the
    # same 5 minutes reached a lower held-out loss and more valid tunes (BENCHMARKS.md).
    "abc": ModelConfig(seq_len=128, cell="gru", rnn_units=256, optimizer="adam"),
}
DEFAULT_PRESET = "paper"  # an encoding may name another (Encoding.default_preset)


def migrate_bundle_meta(meta: dict) -> dict:
    """A bundle.json of an older format version in today's form (the values v1 used without recording them)."""
    if meta.get("version", BUNDLE_FORMAT_VERSION) < 2:
        config = dict(meta.get("config", {}))
        for old, new in (("lstm_units", "rnn_units"), ("lstm_layers", "rnn_layers")):
            if old in config:
                config[new] = config.pop(old)
        meta["config"] = {"cell": "lstm", "clipnorm": 1.0, "embedding_init_stddev": 1.0, **config}
        meta.setdefault("encoding_params", {})
        training = meta.get("training", {})
        options = dict(training.get("options", {}))
        if isinstance(options.get("transpose"), str):
            low, _, high = options["transpose"].partition("..")
            options["transpose"] = [int(low), int(high or low)]
        training["preset"] = options.pop("preset", None)
        training["options"] = options
        meta.setdefault("weights_dtype", training.pop("weights_dtype", "float32"))
        meta["version"] = 2
    return meta
