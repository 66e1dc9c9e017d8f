"""Inception checks the registry cannot express: odd input sizes of the fixed-size models (their Keras twin
is built at that size), and the per-axis padding of the factorised 1 x n / n x 1 convs against Keras's
'same', which a stride of 2 breaks."""
import importlib

import numpy as np
import pytest
import torch

from parity.compare import pair_error
from parity.errors import TransferError
from parity.randomize import randomize_torch
from parity.registry import FLOAT32_TOLERANCE, build, get
from parity.weight_transfer import transfer
from tf_impl import nn as tnn
from tf_impl.backend import keras
from tf_impl.nn import build_model


def _outputs(torch_model, keras_model, x):
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x))
    ref = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
    out = keras_model(x.transpose(0, 2, 3, 1), training=False)
    return ref, [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


@pytest.mark.parametrize("name, size", [
    ("inception_v1_blog", 97),  # the smallest input its Linear(4096) takes: a 7 x 7 map at 4a, 2 x 2 at the end
    ("inception_v1_blog", 113),
    ("inception_v1_blog_train", 115),  # the aux heads' 2x2/2 pool needs 8 x 8 at 4a: 113-128 px
    ("inception_v1", 201),  # the 7x7 average pool leaves 1 x 1 for 193-224 px
])
def test_odd_input_sizes(name, size):
    spec = get(name)
    module, attr = spec.keras.split(":")
    keras_model = build_model(getattr(importlib.import_module(module), attr)(**spec.kwargs), (size, size, 3), name)
    torch_model = randomize_torch(build(name, "torch"), seed=0)
    transfer(torch_model, keras_model)
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    err = pair_error(*_outputs(torch_model, keras_model, x))
    print(f"{name} at {size} x {size}: torch ~ keras relative error {err.rel:.2e}")
    assert err.within(spec.tolerance), err


def test_factorised_conv_padding_is_torchs_where_same_is_not():
    """A 1 x 7 conv with padding (0, 3) at stride 2 on an even width: TF's 'same' pads 2 left and 3 right,
    torch 3 and 3. The facade's Conv2d pads explicitly there and matches; a naive 'same' does not."""
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 10)).astype(np.float32)
    conv = randomize_torch(torch.nn.Sequential(torch.nn.Conv2d(4, 5, (1, 7), stride=2, padding=(0, 3))), seed=0)
    with torch.no_grad():
        ref = conv(torch.from_numpy(x)).numpy()
    ours = build_model(tnn.Sequential(tnn.Conv2d(4, 5, (1, 7), stride=2, padding=(0, 3))), (None, None, 4), "c")
    inp = keras.Input((None, None, 4))
    naive = keras.Model(inp, keras.layers.Conv2D(5, (1, 7), strides=2, padding="same", name="0")(inp))
    errors = {}
    for label, model in (("facade", ours), ("naive 'same'", naive)):
        if model is naive:  # the naive layer is named "0" too; the transfer's settings check refuses it
            with pytest.raises(TransferError, match=r"0: expected padding .* \(0, 0, 3, 3\), received padding 'same'"):
                transfer(conv, model)
        transfer(conv, model, allow_numerics_mismatch=model is naive)
        out = np.asarray(model(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
        assert out.shape == ref.shape
        errors[label] = pair_error([ref], [out]).rel
    print(f"1x7 conv, stride 2, padding (0, 3): relative error {errors}")
    assert errors["facade"] <= FLOAT32_TOLERANCE
    assert errors["naive 'same'"] > 1e-3
