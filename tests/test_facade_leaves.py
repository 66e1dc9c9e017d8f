"""Every facade leaf (``tf_impl.nn``, ``tf_impl.layers``) on its own: built with torch's own arguments, called
in eager code and inside a user's functional model like any Keras layer (with an automatic unique name),
and refusing what it does not implement with an error that names the argument and where to add it.
Weightless leaves are compared with their torch module on the same input."""
import inspect

import numpy as np
import pytest
import torch
from torch import nn as tnn

import tf_impl.layers as klayers
from parity.compare import pair_error
from parity.registry import FLOAT32_TOLERANCE as TOL
from tf_impl import nn as knn
from tf_impl.backend import keras
from tf_impl.nn import UnsupportedArgumentError

# leaf: (facade arguments, torch module with the same arguments or None when it holds weights)
LEAVES = {
    "Conv2d": ((4, 6, 3), dict(stride=2, padding=1, bias=False, padding_mode="zeros", device=None, dtype=None), None),
    "BatchNorm2d": ((4,), dict(eps=1e-3, momentum=0.01, affine=False, track_running_stats=True), None),
    "ReLU": ((), dict(inplace=True), tnn.ReLU(inplace=False)),
    "ReLU6": ((), dict(inplace=True), tnn.ReLU6()),
    "SiLU": ((), dict(inplace=True), tnn.SiLU()),
    "Hardswish": ((), dict(inplace=True), tnn.Hardswish()),
    "Hardsigmoid": ((), dict(inplace=True), tnn.Hardsigmoid()),
    "Sigmoid": ((), {}, tnn.Sigmoid()),
    "Tanh": ((), {}, tnn.Tanh()),
    "GELU": ((), dict(approximate="tanh"), tnn.GELU(approximate="tanh")),
    "Identity": ((54,), dict(unused_argument="ignored"), tnn.Identity(54, unused_argument="ignored")),
    "Dropout": ((0.2,), dict(inplace=True), tnn.Dropout(0.2).eval()),
    "Linear": ((4, 3), dict(bias=False, device=None, dtype=None), None),
    "LayerNorm": ((4,), dict(eps=1e-6, elementwise_affine=True, bias=False), None),
    "MaxPool2d": ((3,), dict(stride=2, padding=1, dilation=1, ceil_mode=True), tnn.MaxPool2d(3, 2, 1, ceil_mode=True)),
    "AvgPool2d": ((3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                  tnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
    "AdaptiveAvgPool2d": (((2, 3),), {}, tnn.AdaptiveAvgPool2d((2, 3))),
    "AdaptiveMaxPool2d": ((1,), dict(return_indices=False), tnn.AdaptiveMaxPool2d(1)),
    "Flatten": ((1,), dict(end_dim=-1), None),  # NHWC order by design: the transfer reorders the next Dense
    "Upsample": ((), dict(scale_factor=2, mode="bilinear", align_corners=False),
                 tnn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
    "UpsamplingNearest2d": ((), dict(size=(7, 9)), tnn.UpsamplingNearest2d(size=(7, 9))),
    "UpsamplingBilinear2d": ((), dict(scale_factor=1.5), tnn.UpsamplingBilinear2d(scale_factor=1.5)),
    "LocalResponseNorm": ((3,), dict(alpha=1e-2, beta=0.75, k=2.0), tnn.LocalResponseNorm(3, 1e-2, 0.75, 2.0)),
}
TWO_INPUTS = {"ResizeLike"}  # forward(x, ref)


def leaf_classes() -> dict:
    found = {}
    for mod in (knn, klayers):
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, knn.Leaf) and obj.__module__ == mod.__name__ \
                    and not name.startswith("_") and obj is not knn.Leaf:
                found[name] = obj
    return found


def test_every_leaf_is_covered_here():
    assert set(leaf_classes()) - TWO_INPUTS == set(LEAVES), "add the new leaf to LEAVES"


def _x(channels=4, seed=0):
    return np.random.default_rng(seed).standard_normal((2, 5, 7, channels)).astype(np.float32)


@pytest.mark.parametrize("name", list(LEAVES))
def test_leaf_works_eagerly_and_in_a_users_functional_model(name):
    args, kwargs, torch_module = LEAVES[name]
    cls = leaf_classes()[name]
    x = _x()
    eager = cls(*args, **kwargs)(x)  # no build_model, no path: an automatic unique name
    layers = cls(*args, **kwargs).layers()
    assert all(layer.name and "." not in layer.name for layer in layers)
    inp = keras.Input((None, None, 4)) if name not in ("Linear", "Flatten") else keras.Input((5, 7, 4))
    a, b = cls(*args, **kwargs), cls(*args, **kwargs)
    model = keras.Model(inp, b(a(inp)) if name not in ("Flatten", "Linear", "AdaptiveAvgPool2d") else a(inp))
    names = [layer.name for layer in model.layers[1:]]
    assert len(set(names)) == len(names), f"automatic names must be unique: {names}"
    out = model(x)
    assert np.all(np.isfinite(np.asarray(out))) and np.all(np.isfinite(np.asarray(eager)))
    if torch_module is not None:
        with torch.no_grad():
            ref = torch_module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
        err = pair_error([ref], [np.asarray(eager).transpose(0, 3, 1, 2)])
        print(f"{name}: eager leaf against torch, relative error {err.rel:.2e}")
        assert err.within(TOL), err


def test_resize_like_works_eagerly():
    x, ref = _x(), np.zeros((1, 9, 11, 1), np.float32)
    out = klayers.ResizeLike("bilinear", align_corners=True)(x, ref)
    assert tuple(out.shape) == (2, 9, 11, 4)


def test_a_leaf_in_a_twin_keeps_its_torch_path():
    seq = knn.Sequential(knn.Conv2d(3, 4, 3, padding=1), knn.ReLU(inplace=True))
    model = knn.build_model(seq, (None, None, 3), "m")
    assert [layer.name for layer in model.layers[1:]] == ["0", "1"]


@pytest.mark.parametrize("make, argument", [
    (lambda: knn.Conv2d(3, 3, 3, padding_mode="reflect"), "padding_mode='reflect'"),
    (lambda: knn.Conv2d(3, 3, 3, dtype="float64"), "dtype='float64'"),
    (lambda: knn.BatchNorm2d(3, track_running_stats=False), "track_running_stats=False"),
    (lambda: knn.BatchNorm2d(3, momentum=None), "momentum=None"),
    (lambda: knn.MaxPool2d(2, return_indices=True), "return_indices=True"),
    (lambda: knn.AdaptiveMaxPool2d(1, return_indices=True), "return_indices=True"),
    (lambda: knn.Flatten(2), "(start_dim, end_dim)=(2, -1)"),
    (lambda: knn.LayerNorm((4, 5)), "normalized_shape=(4, 5)"),
    (lambda: knn.GELU("sigmoid"), "approximate='sigmoid'"),
    (lambda: knn.Upsample(scale_factor=2, mode="bicubic"), "mode='bicubic'"),
])
def test_unsupported_torch_arguments_are_named(make, argument):
    with pytest.raises(UnsupportedArgumentError) as info:
        make()
    print(info.value)
    assert argument in str(info.value) and "tf_impl/nn.py" in str(info.value)


def test_torch_rejects_what_the_facade_rejects_for_invalid_values():
    with pytest.raises(RuntimeError):
        tnn.MaxPool2d(3, padding=2)(torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="at most half the kernel size"):
        knn.MaxPool2d(3, padding=2)
