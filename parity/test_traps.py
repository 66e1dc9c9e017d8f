"""The classic PyTorch -> Keras traps of issue 3, one test each. Every test builds the naive Keras variant
(what a straight translation writes) next to ours, runs both against torch on the same weights and inputs,
prints both errors, and asserts that the naive one is off by far more than the tolerance while ours is within
it, so that each test fails if its fix is removed. (VGG's flatten order is tested with VGG.)
"""
import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F
from torch import nn as tnn

import parity
from parity.errors import TransferError
from parity.randomize import randomize_torch
from parity.registry import FLOAT32_TOLERANCE as TOL
from tf_impl import nn as knn
from tf_impl.backend import keras
from tf_impl.keras_layers import ResizeLikeLayer
from torch_impl.resnet import ConvBN

FAR = 10 * TOL  # "differs by far more than the tolerance": an order of magnitude at least


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def rel(ref, out) -> float:
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    assert ref.shape == out.shape, f"shapes differ: {ref.shape} vs {out.shape}"
    return float(np.max(np.abs(ref - out)) / np.max(np.abs(ref)))


def nhwc(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 3, 1))


def nchw(a) -> np.ndarray:
    return np.asarray(a).transpose(0, 3, 1, 2)


def keras_model(layers, channels: int, name: str = "naive"):
    """A functional Keras model applying ``layers`` in order to an NHWC input of ``channels`` channels."""
    x = inp = keras.Input((None, None, channels))
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x, name=name)


def ours(torch_module: tnn.Module, facade_module, channels: int):
    """Our twin of ``Sequential(torch_module)``: the facade module built, the torch weights transferred."""
    model = knn.build_model(knn.Sequential(facade_module), (None, None, channels), "ours")
    parity.transfer(tnn.Sequential(torch_module), model)
    return model


def report(trap: str, naive: float, ours_: float) -> None:
    print(f"{trap}: naive relative error {naive:.3g}, ours {ours_:.3g} (tolerance {TOL:g})")
    assert naive > FAR, f"the naive variant should be off by > {FAR:g}, got {naive:.3g}"
    assert ours_ <= TOL, f"ours should be within {TOL:g}, got {ours_:.3g}"


# --- 'same' padding on stride 2: TF puts the odd pixel bottom/right, torch pads both sides ----------------

@pytest.mark.parametrize("k, p", [(7, 3), (3, 1)], ids=["stem-7x7", "bottleneck-3x3"])
def test_same_padding_on_stride2_conv(k, p):
    conv = randomize_torch(tnn.Conv2d(8, 16, k, stride=2, padding=p), seed=1).eval()
    x = torch.randn(2, 8, 32, 32)  # even size: TF's 'same' pads (k-2)//2 top/left and k//2 bottom/right
    with torch.no_grad():
        ref = conv(x).numpy()
    naive = keras.layers.Conv2D(16, k, strides=2, padding="same")
    naive_model = keras_model([naive], 8)
    naive.set_weights([conv.weight.detach().permute(2, 3, 1, 0).numpy(), conv.bias.detach().numpy()])
    ours_model = ours(conv, knn.Conv2d(8, 16, k, stride=2, padding=p), 8)
    report(f"stride-2 {k}x{k} conv, 'same' vs symmetric padding",
           rel(ref, nchw(naive_model(nhwc(x)))), rel(ref, nchw(ours_model(nhwc(x)))))


def test_same_padding_on_stride2_maxpool():
    pool = tnn.MaxPool2d(3, stride=2, padding=1)
    x = torch.rand(2, 8, 32, 32) + 1.0  # positive: only the window placement differs, not the pad value
    ref = pool(x).numpy()
    naive_model = keras_model([keras.layers.MaxPooling2D(3, strides=2, padding="same")], 8)
    ours_model = knn.build_model(knn.Sequential(knn.MaxPool2d(3, stride=2, padding=1)), (None, None, 8), "ours")
    report("stride-2 3x3 max-pool, 'same' vs symmetric padding",
           rel(ref, nchw(naive_model(nhwc(x)))), rel(ref, nchw(ours_model(nhwc(x)))))


# --- max-pool padding: torch pads with -inf; the article's stem has no ReLU, so its outputs are negative ---

def test_maxpool_pads_with_minus_inf_after_the_blog_stem():
    stem = randomize_torch(ConvBN(3, 64, 7, stride=2, padding=3), seed=2).eval()
    with torch.no_grad():
        s = stem(torch.randn(1, 3, 64, 64))  # what enters the article's max-pool
    assert (s < 0).float().mean() > 0.2, "the blog stem has no ReLU: many inputs of the pool are negative"
    ref = tnn.MaxPool2d(3, stride=2, padding=1)(s).numpy()
    naive_model = keras_model([keras.layers.ZeroPadding2D(1), keras.layers.MaxPooling2D(3, strides=2)], 64)
    ours_model = knn.build_model(knn.Sequential(knn.MaxPool2d(3, stride=2, padding=1)), (None, None, 64), "ours")
    report("max-pool after the blog stem, zero vs -inf padding",
           rel(ref, nchw(naive_model(nhwc(s)))), rel(ref, nchw(ours_model(nhwc(s)))))


# --- BatchNorm: eps (torch 1e-5, Keras default 1e-3) and momentum (Keras = 1 - torch) ---------------------

def _torch_bn():
    return randomize_torch(tnn.BatchNorm2d(16), seed=3).eval()  # torch defaults: eps 1e-5, momentum 0.1


def test_batchnorm_eps_mismatch_is_refused_and_would_show():
    bn, x = _torch_bn(), torch.randn(4, 16, 9, 11)
    with torch.no_grad():
        ref = bn(x).numpy()
    naive_model = keras_model([keras.layers.BatchNormalization(name="0")], 16)  # Keras default eps 1e-3
    with pytest.raises(TransferError, match="eps"):
        parity.transfer(tnn.Sequential(bn), naive_model)
    parity.transfer(tnn.Sequential(bn), naive_model, allow_numerics_mismatch=True)
    ours_model = ours(bn, knn.BatchNorm2d(16), 16)
    report("BatchNorm eps 1e-3 (Keras default) vs 1e-5",
           rel(ref, nchw(naive_model(nhwc(x), training=False))), rel(ref, nchw(ours_model(nhwc(x), training=False))))


def test_batchnorm_momentum_mismatch_is_refused_and_would_show():
    """Momentum only acts in training: one training step must move the running mean the same way."""
    bn, x = _torch_bn(), torch.randn(8, 16, 9, 11)
    naive_model = keras_model([keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.1, name="0")], 16)
    with pytest.raises(TransferError, match="momentum"):
        parity.transfer(tnn.Sequential(bn), naive_model)
    parity.transfer(tnn.Sequential(bn), naive_model, allow_numerics_mismatch=True)
    ours_model = ours(bn, knn.BatchNorm2d(16), 16)
    bn.train()
    with torch.no_grad():
        bn(x)
    ref = bn.running_mean.numpy()  # (running_var differs anyway: torch stores the unbiased batch variance)
    naive_model(nhwc(x), training=True)
    ours_model(nhwc(x), training=True)
    moving_mean = lambda m: np.asarray(m.get_layer("0").moving_mean)  # noqa: E731
    report("BatchNorm momentum 0.1 copied as-is vs 1 - 0.1, running mean after one step",
           rel(ref, moving_mean(naive_model)), rel(ref, moving_mean(ours_model)))


# --- resizes at the FPN's odd sizes ------------------------------------------------------------------------

def _fpn_sizes_at_97x131():
    """C5, C4, C3, C2 sizes of the FPN at 97x131 (each stride-2 step maps s to ceil(s / 2))."""
    from torch_impl.resnet import resnet50

    with torch.no_grad():
        cs = resnet50(num_classes=None).eval().features(torch.zeros(1, 3, 97, 131))
    return [tuple(c.shape[-2:]) for c in reversed(cs)]


FPN_SIZES = ((4, 5), (7, 9), (13, 17), (25, 33))  # checked against the backbone below


def test_fpn_sizes_are_the_non_integer_scales_tested_here():
    assert _fpn_sizes_at_97x131() == list(FPN_SIZES)


def _resize_cases():
    return list(zip(FPN_SIZES[:-1], FPN_SIZES[1:]))


def _ref_size_tensor(size):
    return tf.zeros((1, *size, 1))


@pytest.mark.parametrize("src, dst", _resize_cases(), ids=lambda s: "x".join(map(str, s)))
def test_bilinear_align_corners_true_vs_half_pixel(src, dst):
    x = torch.randn(2, 8, *src)
    ref = F.interpolate(x, size=dst, mode="bilinear", align_corners=True).numpy()  # F.upsample_bilinear
    naive = nchw(tf.image.resize(nhwc(x), dst, method="bilinear"))  # TF2: half-pixel centres
    ours_ = nchw(ResizeLikeLayer("bilinear", align_corners=True)(nhwc(x), _ref_size_tensor(dst)))
    report(f"bilinear {src}->{dst}, half-pixel vs align_corners=True", rel(ref, naive), rel(ref, ours_))


@pytest.mark.parametrize("src, dst", _resize_cases(), ids=lambda s: "x".join(map(str, s)))
def test_nearest_index_rule_at_non_integer_scales(src, dst):
    x = torch.randn(2, 8, *src)
    ref = F.interpolate(x, size=dst, mode="nearest").numpy()  # source index floor(dst * in / out)
    doubled = keras.layers.UpSampling2D(2)(nhwc(x))  # the paper's "2x nearest" taken literally
    assert tuple(doubled.shape[1:3]) != dst, "2x upsampling cannot reach an odd lateral size"
    naive = nchw(tf.image.resize(nhwc(x), dst, method="nearest"))  # TF2: half-pixel centres
    ours_ = nchw(ResizeLikeLayer("nearest")(nhwc(x), _ref_size_tensor(dst)))
    report(f"nearest {src}->{dst}, TF half-pixel vs torch floor index", rel(ref, naive), rel(ref, ours_))
