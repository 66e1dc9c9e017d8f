"""BatchNorm in training mode: torch's ``BatchNorm2d`` (the reference) against our
``TorchBatchNormalization`` and against plain ``keras.layers.BatchNormalization`` (the naive twin).

torch updates ``running_var`` with the unbiased batch variance (n / (n - 1), n = N*H*W values per channel);
Keras updates ``moving_variance`` with the biased one. Both normalise with the biased one. The formula is
shown in float64 (rounding out of the way, every n from 2 to 1e5); the issue's float32 case on the
registry's ``resnet_conv_bn`` pair.
"""
import numpy as np
import pytest
import torch
from torch import nn as tnn

import parity
from parity.compare import pair_error
from parity.engine import Harness
from parity.errors import TransferError
from parity.registry import FLOAT32_TOLERANCE
from parity.training.precision import building_in
from tf_impl import nn as knn
from tf_impl.backend import keras
from tf_impl.batch_norm import TorchBatchNormalization

FLOAT64_TOLERANCE = 1e-12  # measured: <= 6.6e-15 on the running statistics, 1.0e-14 on the outputs (n = 1e5)
C = 8
SIZES = [(2, 1, 1), (1, 3, 1), (2, 2, 2), (2, 4, 4), (2, 32, 32), (4, 50, 50), (10, 100, 100)]  # n = 2 .. 1e5


def rel(ref, other) -> float:
    err = pair_error([ref], [other], labels=("torch", "keras"))
    assert not err.problems, err.problems
    return err.rel


def torch_bn(x: np.ndarray, rng, momentum=0.1, eps=1e-5, num_batches_tracked=0):
    """A randomised torch BatchNorm2d after one training-mode forward of NCHW ``x`` (and its output)."""
    bn = tnn.BatchNorm2d(C, eps=eps, momentum=momentum).to(torch.from_numpy(x).dtype)
    with torch.no_grad():
        for t, v in ((bn.weight, rng.uniform(0.5, 1.5, C)), (bn.bias, rng.normal(0, 0.1, C)),
                     (bn.running_mean, rng.normal(0, 0.1, C)), (bn.running_var, rng.uniform(0.5, 1.5, C))):
            t.copy_(torch.from_numpy(v))
        bn.num_batches_tracked.fill_(num_batches_tracked)
    start = [t.detach().numpy().copy() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
    y = bn.train()(torch.from_numpy(x)).detach().numpy()
    return bn, start, y


def keras_bn(layer, x: np.ndarray, start):
    """``layer`` with torch's start values, after one training-mode call on ``x`` (NCHW), and its output."""
    layer.build((None, x.shape[2], x.shape[3], C))
    layer.set_weights(start)
    y = np.asarray(layer(x.transpose(0, 2, 3, 1), training=True)).transpose(0, 3, 1, 2)
    return layer, y


def batch(shape, dtype="float64"):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape) * 2 + 0.5).astype(dtype), rng  # variance 4 against running ~1


@pytest.mark.parametrize("n_h_w", SIZES, ids=[f"n={n * h * w}" for n, h, w in SIZES])
def test_running_variance_is_torchs_unbiased_update(n_h_w):
    n, h, w = n_h_w
    x, rng = batch((n, C, h, w))
    bn, start, ref = torch_bn(x, rng)
    with building_in("float64"):
        naive, y_naive = keras_bn(keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9), x, start)
        ours, y_ours = keras_bn(TorchBatchNormalization(epsilon=1e-5, momentum=0.9), x, start)
    var = bn.running_var.numpy()
    errors = {"naive": rel(var, np.asarray(naive.moving_variance)), "ours": rel(var, np.asarray(ours.moving_variance))}
    bias = 0.1 * np.max(x.var(axis=(0, 2, 3))) / (n * h * w - 1) / np.max(var)  # the missing n/(n-1) part
    print(f"n = {n * h * w}: running_var relative error naive {errors['naive']:.2e} (expected ~{bias:.1e}), ours "
          f"{errors['ours']:.2e}; running_mean ours {rel(bn.running_mean.numpy(), np.asarray(ours.moving_mean)):.1e}, "
          f"output ours {rel(ref, y_ours):.1e} (naive {rel(ref, y_naive):.1e}: same biased normalisation)")
    assert errors["naive"] > 0.5 * bias and errors["naive"] > 1e3 * FLOAT64_TOLERANCE
    assert errors["ours"] <= FLOAT64_TOLERANCE
    assert rel(bn.running_mean.numpy(), np.asarray(ours.moving_mean)) <= FLOAT64_TOLERANCE
    assert rel(ref, y_ours) <= FLOAT64_TOLERANCE


def test_the_issues_case_in_float32_on_resnet_conv_bn():
    """One training-mode forward of the registry pair at 2x3x32x32: 2.9e-4 with the naive layer (the issue's
    figure), within float32's tolerance with ours; the mean and the output were never the problem."""
    with Harness("resnet_conv_bn", onnx=False) as h:
        x = h.inputs((2, 3, 32, 32))
        naive = keras.models.clone_model(h.keras_model, clone_function=lambda layer: (
            keras.layers.BatchNormalization.from_config(layer.get_config())
            if isinstance(layer, TorchBatchNormalization) else type(layer).from_config(layer.get_config())))
        naive.set_weights(h.keras_model.get_weights())
        torch_bn_ = h.torch_model.conv[1]
        with torch.no_grad():
            ref = h.torch_model.train()(torch.from_numpy(x)).numpy()
        errors = {}
        for label, model in (("naive", naive), ("ours", h.keras_model)):
            y = np.asarray(model(x.transpose(0, 2, 3, 1), training=True)).transpose(0, 3, 1, 2)
            layer = model.get_layer("conv.1")
            errors[label] = (rel(torch_bn_.running_var.numpy(), np.asarray(layer.moving_variance)),
                             rel(torch_bn_.running_mean.numpy(), np.asarray(layer.moving_mean)), rel(ref, y))
    for label, (var, mean, out) in errors.items():
        print(f"resnet_conv_bn, one training forward, {label}: running_var {var:.2e}, running_mean {mean:.1e}, "
              f"output {out:.1e} (tolerance {FLOAT32_TOLERANCE:g})")
    assert errors["naive"][0] > 10 * FLOAT32_TOLERANCE
    assert max(errors["ours"]) <= FLOAT32_TOLERANCE


def test_num_batches_tracked_is_irrelevant_with_a_momentum():
    """With a momentum (every BatchNorm here) torch never reads ``num_batches_tracked``; with
    ``momentum=None`` (a cumulative average) it does, and the transfer refuses that BatchNorm."""
    x, _ = batch((2, C, 4, 4))
    stats = {}
    for tracked in (0, 12345):
        bn, _, _ = torch_bn(x, np.random.default_rng(1), num_batches_tracked=tracked)
        stats[tracked] = (bn.running_mean.numpy(), bn.running_var.numpy())
    cumulative = {t: torch_bn(x, np.random.default_rng(1), momentum=None, num_batches_tracked=t)[0].running_var.numpy()
                  for t in (0, 12345)}
    moved = rel(cumulative[0], cumulative[12345])
    print(f"num_batches_tracked 0 vs 12345: running statistics identical with momentum 0.1; with momentum=None "
          f"running_var moves by {moved:.2e}")
    assert all(np.array_equal(a, b) for a, b in zip(stats[0], stats[12345]))
    assert moved > 1e-3
    model = knn.build_model(knn.Sequential(knn.BatchNorm2d(C)), (None, None, C), "bn")
    with pytest.raises(TransferError, match="momentum"):
        parity.transfer(tnn.Sequential(tnn.BatchNorm2d(C, momentum=None)), model)


def test_one_value_per_channel_cannot_train_in_either_framework():
    x, rng = batch((1, C, 1, 1), "float32")
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch_bn(x, rng)
    layer = TorchBatchNormalization()
    layer.build((None, 1, 1, C))
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        layer(x.transpose(0, 2, 3, 1), training=True)


def test_inference_is_keras_own_and_frozen_means_inference():
    """Inference (and ``trainable=False``, Keras's frozen BatchNorm) runs the base class's code: the outputs
    equal plain BatchNormalization's bit for bit, and nothing moves."""
    x, rng = batch((2, C, 5, 7), "float32")
    _, start, _ = torch_bn(x.astype("float64"), rng)
    start = [s.astype("float32") for s in start]
    plain, _ = keras_bn(keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9), x, start)
    ours, _ = keras_bn(TorchBatchNormalization(epsilon=1e-5, momentum=0.9), x, start)
    plain.set_weights(start)
    ours.set_weights(start)
    ours.trainable = False
    x_nhwc = x.transpose(0, 2, 3, 1)
    assert np.array_equal(np.asarray(plain(x_nhwc, training=False)), np.asarray(ours(x_nhwc, training=False)))
    assert np.array_equal(np.asarray(plain(x_nhwc, training=False)), np.asarray(ours(x_nhwc, training=True)))
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), start))


def test_a_saved_model_keeps_the_layer(tmp_path):
    """Registered serializable: a ``.keras`` file loads in safe mode with the layer (and its update) intact."""
    model = knn.build_model(knn.Sequential(knn.BatchNorm2d(C)), (None, None, C), "bn")
    model.save(tmp_path / "bn.keras")
    loaded = keras.saving.load_model(tmp_path / "bn.keras", safe_mode=True)
    assert type(loaded.get_layer("0")) is TorchBatchNormalization
    assert loaded.get_layer("0").get_config() == model.get_layer("0").get_config()


def test_renorm_and_synchronized_are_refused():
    for kwargs in ({"renorm": True}, {"synchronized": True}):
        with pytest.raises(ValueError, match="neither renorm nor synchronized"):
            TorchBatchNormalization(**kwargs)
