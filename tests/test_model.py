"""The network and its NumPy step model: the same probabilities, step by step, for every cell and stored dtype."""

import numpy as np
import pytest

from pianocomposer.composing.compose import prime
from pianocomposer.config import PRESETS
from pianocomposer.learning.bundle import load_bundle
from pianocomposer.learning.model import build_model
from pianocomposer.learning.train import train

KINDS = [("lstm", False), ("lstm", True), ("gru", False), ("gru", True)]


@pytest.fixture(scope="module")
def folders(data_dir, tmp_path_factory):
    """A bundle trained for one epoch for every cell and stored dtype."""
    made = {}
    for cell, float16 in KINDS:
        made[cell, float16] = tmp_path_factory.mktemp(f"{cell}{int(float16)}")
        train(data_dir, made[cell, float16], preset="quick", epochs=1, cell=cell, rnn_layers=3, float16=float16,
              progress=False)
    return made


@pytest.fixture(scope="module", params=KINDS, ids=["lstm-float32", "lstm-float16", "gru-float32", "gru-float16"])
def bundle(request, folders):
    """The bundle of one cell and stored dtype, loaded with Keras; request.param says which was asked for."""
    loaded = load_bundle(folders[request.param])
    loaded.meta["asked_float16"] = request.param[1]
    return loaded


def test_stored_dtype_is_the_one_asked_for(bundle):
    asked = "float16" if bundle.meta["asked_float16"] else "float32"
    assert {w.dtype.name for w in bundle.model.get_weights()} == {asked}
    assert bundle.meta["weights_dtype"] == asked


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float16_halves_the_model_file(folders, cell):
    half, full = ((folders[cell, f16] / "model.keras").stat().st_size for f16 in (True, False))
    assert 0.45 < half / full < 0.6, (half, full)


def test_step_model_equals_keras_step_by_step_with_ragged_primers(bundle):
    # Keras in float32 on the stored weights, as generation runs them.
    keras_model = build_model(bundle.config, len(bundle.vocabulary))
    keras_model.set_weights([w.astype(np.float32) for w in bundle.model.get_weights()])
    rng = np.random.default_rng(0)
    vocab = len(bundle.vocabulary)
    primers = [rng.integers(0, vocab, n).astype(np.int32) for n in (1, 7, 23)]
    continuation = rng.integers(0, vocab, (len(primers), 10)).astype(np.int32)
    # the network is causal: its output at each position of the whole sequence is what it says after that prefix
    whole = [np.asarray(keras_model(np.concatenate([primer, continuation[row]])[None], training=False))[0]
             for row, primer in enumerate(primers)]
    net = bundle.step_model()
    probs, state = prime(net, primers)
    for t in range(continuation.shape[1] + 1):
        for row, primer in enumerate(primers):
            expected = whole[row][len(primer) - 1 + t]
            np.testing.assert_allclose(probs[row], expected, rtol=1e-4, atol=1e-6)
            assert probs[row].sum() == pytest.approx(1.0, abs=1e-5)
        if t < continuation.shape[1]:
            probs, state = net.step(continuation[:, t], state)


def test_gru_layers_are_the_cudnn_form():
    import keras

    model = build_model(PRESETS["quick"].__class__(cell="gru", rnn_units=8, rnn_layers=2), 12)
    grus = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    assert [g.name for g in grus] == ["gru_1", "gru_2"]
    assert all(g.cell.reset_after and g.cell.recurrent_dropout == 0 for g in grus)
