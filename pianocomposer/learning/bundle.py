"""The model bundle: Keras model(s), vocabulary, config, encoding, seeds and history in one folder.

Schema (bundle.json, format version 2): `format` "pianocomposer-bundle", `version`, `encoding` (name),
`encoding_params`, `vocabulary` (token list; id = position), `config` (ModelConfig fields), `seeds` (token
windows from the training songs for seeding generation), `split` (training/validation song names), `training`
(the TrainingState: preset, options (TrainOptions fields), epochs done, optimizer steps, best epoch and loss,
per-epoch history). Beside it: `model.keras` (the best weights, no optimizer), `last.keras` (the last epoch with
optimizer state, for --resume), `history.csv`, `loss.png`. Version 1 bundles are migrated on reading
(config.migrate_bundle_meta).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pianocomposer._util import import_keras
from pianocomposer.config import (
    BUNDLE_FORMAT_VERSION,
    DEFAULT_WEIGHTS_DIR,
    SHIPPED_BUNDLE_DIR,
    ModelConfig,
    migrate_bundle_meta,
    shipped_bundle,
)
from pianocomposer.encodings import Encoding, get_encoding
from pianocomposer.errors import PianoComposerError, first_line
from pianocomposer.learning.keras_file import read_layer_weights
from pianocomposer.learning.model import StepModel, keras_layer_weights, rnn_layer_names
from pianocomposer.learning.vocab import Vocabulary
from pianocomposer.writing.atomic import atomic_path, write_json

BUNDLE_FILE = "bundle.json"
BEST_MODEL = "model.keras"
LAST_MODEL = "last.keras"
# last.keras of the newest epoch until bundle.json records that epoch (see train.BundleWriter)
PENDING_LAST_MODEL = "last.pending.keras"


@dataclass
class Bundle:
    """A loaded bundle: its metadata and the network, as a Keras model (load_bundle) or weight arrays (read_bundle)."""

    path: Path
    meta: dict
    config: ModelConfig
    vocabulary: Vocabulary
    encoding: Encoding  # the encoding the model was trained on, with its parameters
    model: object | None = None  # the Keras model, for training, resume and Keras-side checks
    layer_weights: dict[str, list[np.ndarray]] | None = None  # layer name -> arrays, read without Keras

    @property
    def encoding_name(self) -> str:
        """Name of the encoding the model was trained on."""
        return self.meta["encoding"]

    @property
    def seeds(self) -> list[list[str]]:
        """Token windows from the training songs that generation may start from."""
        return self.meta["seeds"]

    def step_model(self) -> StepModel:
        """The NumPy twin of the network, for token-by-token generation and scoring."""
        layers = self.layer_weights if self.layer_weights is not None else keras_layer_weights(self.model)
        return StepModel(self.config, layers)


def has_bundle(folder: Path) -> bool:
    """Whether folder holds a bundle."""
    return (Path(folder) / BUNDLE_FILE).is_file()


def resolve_weights(weights: Path | str | None) -> Path:
    """The bundle folder: the one given (a folder, or the name of a shipped bundle such as `timed`), else
    weights/ if you trained one there, else the shipped default."""
    if weights is not None:
        weights = Path(weights)
        shipped = shipped_bundle(weights.name)
        if not has_bundle(weights) and len(weights.parts) == 1 and has_bundle(shipped):
            return shipped
        return weights
    return DEFAULT_WEIGHTS_DIR if has_bundle(DEFAULT_WEIGHTS_DIR) else SHIPPED_BUNDLE_DIR


def read_meta(folder: Path) -> dict:
    """bundle.json, checked for format and version."""
    path = Path(folder) / BUNDLE_FILE
    if not path.is_file():
        raise PianoComposerError(f"{folder}: no model bundle here ({BUNDLE_FILE} missing); "
                                 "train one with `pianocomposer train`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != "pianocomposer-bundle":
            raise ValueError("not a pianocomposer bundle")
        if not isinstance(meta.get("version"), int):
            raise TypeError("no format version")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise PianoComposerError(f"{path}: unreadable bundle file ({exc})") from None
    if meta["version"] > BUNDLE_FORMAT_VERSION:
        raise PianoComposerError(f"{path}: bundle format version {meta['version']} is newer than this "
                                 f"pianocomposer reads ({BUNDLE_FORMAT_VERSION}); upgrade pianocomposer")
    return migrate_bundle_meta(meta)


def _check_weights(weights: dict[str, list[np.ndarray]], vocab_size: int, config: ModelConfig, path: Path) -> None:
    """Explain, in one line, any way the network's layers disagree with the bundle's vocabulary or config."""
    rnn = rnn_layer_names(config)
    expected = {"embedding", "dense", "logits", *rnn}
    if not expected <= set(weights):
        raise PianoComposerError(f"{path}: not a pianocomposer {config.cell.upper()} network (missing layers "
                                 f"{sorted(expected - set(weights))})")
    in_dim, out_units = weights["embedding"][0].shape[0], weights["logits"][0].shape[-1]
    if out_units != vocab_size or in_dim != vocab_size:
        raise PianoComposerError(f"{path}: the vocabulary has {vocab_size} tokens but the model's output layer has "
                                 f"{out_units} (embedding {in_dim}); the bundle's files do not belong together")
    units = weights[rnn[0]][1].shape[0]  # the recurrent kernel: (units, gates x units)
    if units != config.rnn_units:
        raise PianoComposerError(f"{path}: config says {config.rnn_units} {config.cell.upper()} units, the model "
                                 f"has {units}")


def _read_meta_parts(folder: Path) -> tuple[dict, ModelConfig, Vocabulary, Encoding]:
    """bundle.json with its config, vocabulary and encoding, checked for completeness and a known encoding."""
    meta = read_meta(folder)
    try:
        config = ModelConfig.from_dict(meta["config"])
        vocabulary = Vocabulary(meta["vocabulary"])
        if len(vocabulary) != len(meta["vocabulary"]):
            raise ValueError("duplicate tokens in the vocabulary")
        meta["seeds"]
        name = meta["encoding"]
    except (KeyError, TypeError, ValueError) as exc:
        raise PianoComposerError(f"{folder / BUNDLE_FILE}: incomplete bundle file ({exc})") from None
    try:
        encoding = get_encoding(name, meta.get("encoding_params"))
    except PianoComposerError as exc:
        raise PianoComposerError(f"{folder / BUNDLE_FILE}: {exc}") from None
    return meta, config, vocabulary, encoding


def _check_seeds(meta: dict, vocabulary: Vocabulary, folder: Path) -> None:
    """Every stored seed window must be in the vocabulary (generation starts from them)."""
    missing = {t for seed in meta["seeds"] for t in seed} - set(vocabulary.tokens)
    if missing:
        raise PianoComposerError(f"{folder / BUNDLE_FILE}: seed tokens {sorted(missing)[:3]} are not in the "
                                 "bundle's vocabulary; the bundle is inconsistent")


def _model_file(folder: Path, which: str) -> Path:
    """The model file's path, checked to exist and to be a zip."""
    path = folder / which
    if not path.is_file():
        raise PianoComposerError(f"{path}: model file missing from the bundle")
    if not zipfile.is_zipfile(path):
        raise PianoComposerError(f"{path}: not a Keras model file (truncated or not a .keras zip)")
    return path


def read_bundle(folder: Path, which: str = BEST_MODEL) -> Bundle:
    """bundle.json and one model file's weights, read without Keras or TensorFlow (keras_file.py), checked."""
    folder = Path(folder)
    meta, config, vocabulary, encoding = _read_meta_parts(folder)
    path = _model_file(folder, which)
    layers = read_layer_weights(path)
    _check_weights(layers, len(vocabulary), config, path)
    _check_seeds(meta, vocabulary, folder)
    return Bundle(folder, meta, config, vocabulary, encoding, layer_weights=layers)


def load_bundle(folder: Path, which: str = BEST_MODEL, compile: bool = False) -> Bundle:
    """bundle.json and one model file as a Keras model (safe mode), checked; for training, resume and Keras checks."""
    folder = Path(folder)
    meta, config, vocabulary, encoding = _read_meta_parts(folder)
    path = _model_file(folder, which)
    keras = import_keras()
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:
        raise PianoComposerError(f"{path}: cannot load the Keras model ({first_line(exc)})") from None
    _check_weights(keras_layer_weights(model), len(vocabulary), config, path)
    _check_seeds(meta, vocabulary, folder)
    return Bundle(folder, meta, config, vocabulary, encoding, model)


def save_model(model, target: Path) -> None:
    """Save a Keras model atomically."""
    with atomic_path(target) as tmp:
        model.save(tmp)


def save_meta(folder: Path, meta: dict) -> None:
    """Write bundle.json atomically, stamped with the format version."""
    write_json(Path(folder) / BUNDLE_FILE, {"format": "pianocomposer-bundle", "version": BUNDLE_FORMAT_VERSION, **meta})
