"""Inception checks the registry cannot express: odd input sizes of the fixed-size models (their Keras twin
is built at that size, ``build(name, "keras", input_size=(H, W))``), and the per-axis padding of the
factorised 1 x n / n x 1 convs against Keras's 'same', which a stride of 2 breaks."""
import numpy as np
import pytest
import torch

from parity.compare import pair_error
from parity.engine import check
from parity.errors import InputShapeError, TransferError
from parity.randomize import randomize_torch
from parity.registry import FLOAT32_TOLERANCE, build, get
from parity.sizes import check_entry
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
    ("inception_v1_blog", (97, 113)),  # 97: the smallest input its Linear(4096) takes (2 x 2 at the end)
    ("inception_v1_blog", (112, 112)),
    ("inception_v1_blog_train", (115, 127)),  # the aux heads' 2x2/2 pool needs 8 x 8 at 4a: 113-128 px
    ("inception_v1", (201, 217)),  # the 7x7 average pool leaves 1 x 1 for 193-224 px
    ("inception_v1_train", (209, 217)),  # the aux heads' 5x5/3 pool needs 14 x 14 at 4a: 209-224 px
])
def test_odd_input_sizes(name, size):
    """``build(name, "keras", input_size=...)`` gives the fixed-size twin at a size the torch model accepts."""
    keras_model = build(name, "keras", input_size=size)
    torch_model = randomize_torch(build(name, "torch"), seed=0)
    transfer(torch_model, keras_model)
    x = np.random.default_rng(1).standard_normal((2, 3, *size), dtype=np.float32)
    err = pair_error(*_outputs(torch_model, keras_model, x))
    print(f"{name} at {size[0]} x {size[1]}: torch ~ keras relative error {err.rel:.2e}")
    assert err.within(get(name).tolerance), err


@pytest.mark.zoo
@pytest.mark.parametrize("name, shape", [("inception_v1_blog", (1, 3, 112, 112)), ("inception_v1_blog", (1, 3, 97, 113)),
                                         ("inception_v1", (1, 3, 201, 217))])
def test_check_at_other_sizes_in_all_four_runtimes(name, shape):
    """``parity.check`` at a size other than the default: Keras twin and Keras ONNX file built at that size."""
    report = check(name, input_shape=shape)
    print(f"{name} at {'x'.join(map(str, shape))}: " + ", ".join(f"{p} {e.rel:.2e}" for p, e in report.errors.items()))
    assert report.ok and len(report.errors) == 6, report.problems


def test_sizes_outside_the_torch_range_name_it():
    with pytest.raises(InputShapeError, match=r"'inception_v1_train' does not run at 1x3x201x217 in torch .* the "
                                              r"smallest input is 1x3x209x209; it runs at H 209\.\.224"):
        check_entry("inception_v1_train", (1, 3, 201, 217))
    with pytest.raises(InputShapeError, match=r"it runs at H 97\.\.128 with W = 128, and W 97\.\.128"):
        check_entry("inception_v1_blog", (1, 3, 129, 128))


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
