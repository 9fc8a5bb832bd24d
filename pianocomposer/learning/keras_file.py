"""Read a Keras 3 `.keras` model file's weights without Keras or TensorFlow: a checked zip, config and HDF5.

A `.keras` file is a zip of `metadata.json`, `config.json` (the model's architecture) and `model.weights.h5`.
Keras 3 stores a Functional model's weights in HDF5 groups named after each layer's *class*, not its name:
the layers of config.json, in order, become `layers/<snake_case(class_name)>` with `_1`, `_2`... appended to
repeats (`layers/lstm`, `layers/lstm_1`, ...); a layer's own variables are the datasets `vars/0`, `vars/1`...
of its group and a recurrent layer's live in its cell, `layers/lstm/cell/vars/0..2` (kernel, recurrent kernel,
bias), in the order of Keras's `layer.get_weights()`. Each layer's `vars` group carries the layer's name as its
`name` attribute, which is checked against config.json when present.

Nothing here can run code from the file: config.json is only read as JSON data (never deserialized into
objects), the weights only as float16/float32 arrays of the shapes the config implies, and everything that
is not exactly what Keras writes for the allowed layer types is refused with one PianoComposerError line.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pianocomposer.errors import PianoComposerError, first_line

CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"
# Uncompressed size limits per zip member, checked before anything is read (zip bombs), and in all.
MEMBER_LIMITS = {METADATA_MEMBER: 1 << 16, CONFIG_MEMBER: 1 << 22, WEIGHTS_MEMBER: 1 << 31}
TOTAL_LIMIT = 1 << 31
MAX_LAYERS = 1000
MAX_DIM = 1 << 20  # units, vocabulary or feature size of any one layer
MAX_HDF5_OBJECTS = 10_000
MAX_HDF5_DEPTH = 16
WEIGHT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
# HDF5 filters that ship inside the library (deflate, shuffle, fletcher32): no plugin is ever loaded.
BUILTIN_FILTERS = {1, 2, 3}
# The layer classes a pianocomposer network may hold, and the group name Keras gives each (its snake_case).
LAYER_GROUPS = {"InputLayer": "input_layer", "Embedding": "embedding", "LSTM": "lstm", "GRU": "gru",
                "Dropout": "dropout", "Dense": "dense", "Activation": "activation"}
# Serialized non-class markers Keras writes for plain data; every other `__name__` (`__lambda__`...) is refused.
DATA_MARKERS = {"__keras_tensor__", "__tuple__"}


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a model file: its name, Keras class, config (plain JSON data) and weight arrays."""

    name: str
    class_name: str
    config: dict
    weights: list[np.ndarray]


class _Invalid(Exception):
    """A reason the file is refused; turned into one PianoComposerError line naming the file."""


def _short(value: object, limit: int = 60) -> str:
    """A value from the file, quoted on one line and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _read_members(path: Path) -> tuple[bytes, bytes, bytes]:
    """metadata.json, config.json and the HDF5 bytes, after checking the zip's members and their sizes."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if sorted(names) != sorted(MEMBER_LIMITS):
            extra, missing = sorted(set(names) - set(MEMBER_LIMITS)), sorted(set(MEMBER_LIMITS) - set(names))
            detail = (f"unexpected members {_short(extra)}" if extra else f"missing members {missing}"
                      if missing else "duplicate members")
            raise _Invalid(f"the zip does not hold exactly {', '.join(MEMBER_LIMITS)} ({detail})")
        total = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise _Invalid(f"{info.filename} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Invalid(f"{info.filename} uses an unsupported compression ({info.compress_type})")
            if info.file_size > MEMBER_LIMITS[info.filename]:
                raise _Invalid(f"{info.filename} claims {info.file_size} bytes, over the "
                               f"{MEMBER_LIMITS[info.filename]}-byte limit")
            total += info.file_size
        if total > TOTAL_LIMIT:
            raise _Invalid(f"the members claim {total} bytes in all, over the {TOTAL_LIMIT}-byte limit")
        # ZipFile.read stops at each member's declared size and checks its CRC-32.
        return tuple(archive.read(name) for name in (METADATA_MEMBER, CONFIG_MEMBER, WEIGHTS_MEMBER))


def _json(data: bytes, member: str) -> dict:
    """A zip member parsed as a JSON object."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Invalid(f"{member} is not JSON ({first_line(exc, 80)})") from None
    if not isinstance(value, dict):
        raise _Invalid(f"{member} is not a JSON object")
    return value


def _check_objects(config: dict) -> None:
    """Refuse anything in config.json that names code: objects from outside keras, registered or dunder names."""
    pending: list[object] = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            pending.extend(node.values())
            if "class_name" not in node:
                continue
            class_name, module = node["class_name"], node.get("module")
            registered = node.get("registered_name")
            if not isinstance(class_name, str):
                raise _Invalid(f"config.json has a non-string class name {_short(class_name)}")
            if class_name.startswith("__") and class_name not in DATA_MARKERS:
                raise _Invalid(f"config.json holds a {_short(class_name)} object (code), which is not allowed")
            if class_name == "Lambda" or "lambda" in class_name.lower():
                raise _Invalid(f"config.json holds a {_short(class_name)} object (code), which is not allowed")
            if module is not None and not (module == "keras" or (isinstance(module, str)
                                                                 and module.startswith("keras."))):
                raise _Invalid(f"config.json holds {_short(class_name)} from module {_short(module)}, "
                               "outside keras")
            if registered is not None and registered != class_name:
                raise _Invalid(f"config.json holds a custom object {_short(registered)}")


def _dim(value: object, what: str) -> int:
    """A positive layer dimension from the config, bounded."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DIM:
        raise _Invalid(f"config.json: {what} is {_short(value)}, not an integer in 1..{MAX_DIM}")
    return value


def _source(layer: dict, name: str, known: dict[str, int | None]) -> str:
    """The name of the one earlier layer that feeds this one."""
    nodes = layer.get("inbound_nodes")
    try:
        (node,) = nodes
        (tensor,) = node["args"]
        source = tensor["config"]["keras_history"][0]
        if tensor["class_name"] != "__keras_tensor__":
            raise TypeError
    except (TypeError, ValueError, KeyError, IndexError):
        raise _Invalid(f"config.json: layer {_short(name)} does not take exactly one tensor input") from None
    if not isinstance(source, str) or source not in known:
        raise _Invalid(f"config.json: layer {_short(name)} takes its input from an unknown layer {_short(source)}")
    return source


def _layer_shapes(class_name: str, name: str, layer_config: dict,
                  in_dim: int | None) -> tuple[list[tuple[int, ...]], int | None]:
    """The weight shapes a layer of this class and config holds, in get_weights() order, and its output size."""
    if class_name == "Activation" and layer_config.get("activation") != "softmax":
        raise _Invalid(f"config.json: layer {_short(name)} is not the softmax the step model computes")
    if class_name in ("InputLayer", "Dropout", "Activation"):
        return [], in_dim
    if class_name == "Embedding":
        if in_dim is not None:
            raise _Invalid(f"config.json: embedding {_short(name)} is not fed token ids")
        rows = _dim(layer_config.get("input_dim"), f"{name}.input_dim")
        width = _dim(layer_config.get("output_dim"), f"{name}.output_dim")
        return [(rows, width)], width
    if in_dim is None:
        raise _Invalid(f"config.json: layer {_short(name)} is fed token ids, not vectors")
    units = _dim(layer_config.get("units"), f"{name}.units")
    use_bias, reset_after = layer_config.get("use_bias", True), layer_config.get("reset_after", True)
    if not isinstance(use_bias, bool) or not isinstance(reset_after, bool):
        raise _Invalid(f"config.json: layer {_short(name)} has a non-boolean use_bias or reset_after")
    # Only the arithmetic model.StepModel computes: any other activation would give silently different music.
    expected = ({"activation": "linear", "use_bias": True} if class_name == "Dense" else
                {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True, "go_backwards": False,
                 "return_sequences": True, **({"reset_after": True} if class_name == "GRU" else {})})
    for key, value in expected.items():
        if layer_config.get(key, value) != value:
            raise _Invalid(f"config.json: layer {_short(name)} has {key}={_short(layer_config.get(key))}, "
                           f"not {value!r}")
    if class_name == "Dense":
        return [(in_dim, units)] + [(units,)] * use_bias, units
    gates = 4 if class_name == "LSTM" else 3
    shapes = [(in_dim, gates * units), (units, gates * units)]
    if use_bias:
        shapes.append((2, gates * units) if class_name == "GRU" and reset_after else (gates * units,))
    return shapes, units


@dataclass(frozen=True)
class _Plan:
    """What the config says the weights file must hold for one layer."""

    name: str
    class_name: str
    config: dict
    group: str
    shapes: list[tuple[int, ...]]


def _plan(config: dict) -> list[_Plan]:
    """Check config.json's model and list, per layer in order, its HDF5 group and expected weight shapes."""
    _check_objects(config)
    if config.get("class_name") != "Functional" or not isinstance(config.get("config"), dict):
        raise _Invalid(f"config.json describes a {_short(config.get('class_name'))}, not a Functional model")
    layers = config["config"].get("layers")
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        raise _Invalid(f"config.json: the model's layer list is missing or has over {MAX_LAYERS} layers")
    plans, used, out_dims = [], {}, {}
    total = 0
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            raise _Invalid("config.json: a layer entry is not an object")
        class_name, name, layer_config = layer.get("class_name"), layer.get("name"), layer["config"]
        if class_name not in LAYER_GROUPS:
            raise _Invalid(f"config.json: layer {_short(name)} is a {_short(class_name)}; only "
                           f"{', '.join(LAYER_GROUPS)} are allowed")
        if layer.get("module") != "keras.layers":
            raise _Invalid(f"config.json: layer {_short(name)} comes from module {_short(layer.get('module'))}")
        if not isinstance(name, str) or not 0 < len(name) <= 200 or layer_config.get("name") != name:
            raise _Invalid(f"config.json: layer name {_short(name)} is empty, too long or inconsistent")
        if name in out_dims:
            raise _Invalid(f"config.json: two layers are named {_short(name)}")
        in_dim = None if class_name == "InputLayer" else out_dims[_source(layer, name, out_dims)]
        if class_name == "InputLayer" and layer.get("inbound_nodes"):
            raise _Invalid(f"config.json: input layer {_short(name)} has inputs")
        shapes, out_dims[name] = _layer_shapes(class_name, name, layer_config, in_dim)
        total += sum(int(np.prod(shape)) * 4 for shape in shapes)
        if total > TOTAL_LIMIT:
            raise _Invalid(f"config.json: the layers' weights would exceed {TOTAL_LIMIT} bytes")
        # Keras's naming of weight groups: the class in snake_case, made unique by _1, _2... in layer order.
        base = LAYER_GROUPS[class_name]
        used[base] = used.get(base, -1) + 1
        group = f"layers/{base}" + (f"_{used[base]}" if used[base] else "")
        plans.append(_Plan(name, class_name, layer_config, group, shapes))
    return plans


def _datasets(root: h5py.Group) -> dict[str, h5py.Dataset]:
    """Every dataset by path, after checking that the file holds only hard-linked groups and datasets."""
    found: dict[str, h5py.Dataset] = {}
    pending: list[tuple[h5py.Group, str, int]] = [(root, "", 0)]
    seen = 0
    while pending:
        group, prefix, depth = pending.pop()
        for key in group:
            path = f"{prefix}{key}"
            seen += 1
            if seen > MAX_HDF5_OBJECTS or depth >= MAX_HDF5_DEPTH:
                raise _Invalid(f"{WEIGHTS_MEMBER} holds too many or too deeply nested objects")
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} is a {type(link).__name__}, not a plain object")
            kind = group.get(key, getclass=True)
            if kind is h5py.Group:
                pending.append((group[key], f"{path}/", depth + 1))
            elif kind is h5py.Dataset:
                found[path] = group[key]
            else:
                raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} is a {getattr(kind, '__name__', kind)}, "
                               "not a group or dataset")
    return found


def _order(path: str, group: str) -> tuple[int, str, int]:
    """Sort key of a weight dataset inside its layer's group: own vars first, then sub-objects (the cell)."""
    inner = path[len(group) + 1:]
    parent, _, index = inner.rpartition("/")
    if not index.isdigit() or not (parent == "vars" or parent.endswith("/vars")):
        raise _Invalid(f"{WEIGHTS_MEMBER}: unexpected dataset {_short(path)}")
    return (parent != "vars", parent, int(index))


def _read_array(dataset: h5py.Dataset, path: str, shape: tuple[int, ...]) -> np.ndarray:
    """One weight dataset as a NumPy array, checked for dtype, shape, storage and finiteness before and after."""
    dtype = dataset.dtype
    if dtype.kind != "f" or dtype.newbyteorder("=") not in WEIGHT_DTYPES or h5py.check_dtype(vlen=dtype):
        raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} holds {dtype}, not float16 or float32 numbers")
    if dataset.shape != shape:
        raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} has shape {dataset.shape}, the config implies {shape}")
    if dataset.is_virtual or dataset.external:
        raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} refers to data outside the file")
    plist = dataset.id.get_create_plist()
    filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    if not filters <= BUILTIN_FILTERS:
        raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} needs HDF5 filters {sorted(filters - BUILTIN_FILTERS)}")
    array = np.empty(shape, dtype.newbyteorder("="))
    if array.size:
        dataset.read_direct(array)
    if not np.isfinite(array).all():
        raise _Invalid(f"{WEIGHTS_MEMBER}: {_short(path)} holds NaN or infinite values")
    return array


def _read_weights(data: bytes, plans: list[_Plan]) -> list[list[np.ndarray]]:
    """Each planned layer's arrays from the HDF5 bytes; any dataset the plan does not expect is refused."""
    with h5py.File(io.BytesIO(data), "r") as h5:
        datasets = _datasets(h5)
        claimed: set[str] = set()
        weights = []
        for plan in plans:
            mine = sorted((p for p in datasets if p.startswith(plan.group + "/")),
                          key=lambda p, g=plan.group: _order(p, g))
            if len(mine) != len(plan.shapes):
                state = "missing" if not mine else f"{len(mine)} arrays instead of {len(plan.shapes)}"
                raise _Invalid(f"{WEIGHTS_MEMBER}: weights of layer {_short(plan.name)} ({plan.group}) {state}")
            own_vars = h5.get(f"{plan.group}/vars")
            if isinstance(own_vars, h5py.Group):
                stored_name = own_vars.attrs.get("name")
                if stored_name is not None and stored_name != plan.name:
                    raise _Invalid(f"{WEIGHTS_MEMBER}: {plan.group} holds the weights of {_short(stored_name)}, "
                                   f"config.json says {_short(plan.name)}")
            weights.append([_read_array(datasets[p], p, s) for p, s in zip(mine, plan.shapes, strict=True)])
            claimed.update(mine)
        stray = sorted(set(datasets) - claimed)
        if stray:
            raise _Invalid(f"{WEIGHTS_MEMBER}: unexpected dataset {_short(stray[0])}")
    return weights


def read_keras_layers(path: Path) -> list[KerasLayer]:
    """Every layer of a .keras file in config order, with its weights as stored (float16 stays float16)."""
    path = Path(path)
    try:
        metadata, config_bytes, weights_bytes = _read_members(path)
        version = _json(metadata, METADATA_MEMBER).get("keras_version")
        if not isinstance(version, str) or not version.startswith("3."):
            raise _Invalid(f"{METADATA_MEMBER} names Keras version {_short(version)}, not 3.x")
        plans = _plan(_json(config_bytes, CONFIG_MEMBER))
        weights = _read_weights(weights_bytes, plans)
    except _Invalid as exc:
        raise PianoComposerError(f"{path}: refused model file: {exc}") from None
    except FileNotFoundError:
        raise PianoComposerError(f"{path}: model file missing") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise PianoComposerError(f"{path}: damaged model file, not a readable zip ({first_line(exc, 80)})") from None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, NotImplementedError) as exc:
        # h5py reports damaged HDF5 as OSError/ValueError/KeyError; zipfile reports some damage as the others.
        raise PianoComposerError(f"{path}: damaged model file ({type(exc).__name__}: {first_line(exc, 80)})") from None
    return [KerasLayer(p.name, p.class_name, p.config, w) for p, w in zip(plans, weights, strict=True)]


def read_layer_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weight arrays in layer.get_weights() order, as stored (float16 stays float16)."""
    return {layer.name: layer.weights for layer in read_keras_layers(path)}
