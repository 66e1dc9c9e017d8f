"""Randomises every weight and every BatchNorm statistic, so that a swapped mean/variance, a wrong eps or a
transposed kernel cannot hide behind default values (zeros, ones).

Conv and dense weights: normal with He scale ``sqrt(2 / fan_in)``, so deep ReLU stacks keep their range.
Biases and BatchNorm beta / running mean: normal, std 0.1. BatchNorm gamma and running variance:
uniform in [0.5, 1.5] (positive; distinct from 1 so that eps and variance errors show).

Deep models need calibrated statistics (``randomize_torch(calibrate=...)``, :func:`calibrate_keras`; the
registry's ``calibrate_batchnorm``): random statistics do not normalise, so activations grow block after block
(torchvision's lraspp_mobilenet_v3_large reaches 2e3 at its output), and a sigmoid fed 1e3-sized values turns
float32's rounding into a 1e-3 relative error: torch float32 against torch float64 differs by 1.2e-3 there,
so no float32 twin could pass 1e-5. With ``calibrate`` every BatchNorm's statistics are scaled to its own
input on a random sample (:func:`_calibrate_batchnorm`): still random and distinct per channel, but each
layer's output stays O(1), as in a trained network.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from parity.errors import InvalidArgumentError

_NORM_SCALE = {"weight", "running_var", "gamma", "moving_variance", "variance"}  # names of positive tensors


def check_seed(seed) -> int:
    """``seed`` as an int; :class:`InvalidArgumentError` unless it is an integer >= 0 (numpy's generators
    take no negative seed, and a float or a bool would be a typo, not a seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _sample(rng: np.random.Generator, name: str, shape: tuple, is_norm: bool, fan_in: int) -> np.ndarray:
    if is_norm and name in _NORM_SCALE:
        return rng.uniform(0.5, 1.5, shape)
    if is_norm or len(shape) <= 1:
        return rng.normal(0.0, 0.1, shape)
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


# samples in the calibration batch, at least: one image's batch statistics are noisy where maps are small
# (efficientnet_v2_s's last stage sees 7 x 7 positions per channel at 224 x 224); a check input then meets
# channels calibrated on near-zero samples and amplifies them, and float32 rounding with them: torch float32
# against float64 measured 6.1e-6 (logits up to 22) calibrated on one image, 3.8e-6 (logits up to 3.3) on four
CALIBRATION_BATCH = 4


def randomize_torch(module: nn.Module, seed: int = 0, calibrate: tuple | None = None) -> nn.Module:
    """Fills every parameter and floating buffer of ``module`` in place; returns it. ``calibrate``: an
    input shape (N, C, H, W); BatchNorm statistics are then drawn around the batch statistics of random
    inputs of that shape, at least :data:`CALIBRATION_BATCH` of them (see the module docstring)."""
    rng = np.random.default_rng(check_seed(seed))
    with torch.no_grad():
        for m in module.modules():
            is_norm = isinstance(m, nn.modules.batchnorm._NormBase)
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                if t is None or not t.is_floating_point():
                    continue
                fan_in = int(np.prod(t.shape[1:])) if t.dim() > 1 else 1
                t.copy_(torch.from_numpy(_sample(rng, name, tuple(t.shape), is_norm, fan_in)))
    if calibrate is not None:
        dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
        batch = (max(calibrate[0], CALIBRATION_BATCH), *calibrate[1:])
        _calibrate_batchnorm(module, torch.from_numpy(rng.standard_normal(batch)).to(dtype), rng)
    return module


GATES = (nn.Sigmoid, nn.Hardsigmoid)  # squeeze-excitation gates: saturate once activations grow


def has_gates(module: nn.Module) -> bool:
    """Whether ``module`` has sigmoid gates (squeeze-excitation, LR-ASPP's scale): the models that need
    ``calibrate``. Deep models without them are better conditioned with fully random statistics:
    calibrated, fcn_resnet50's float32 output moves 2e-5 from torch's (chaotic: every layer normalised),
    against 4e-6 uncalibrated."""
    return any(isinstance(m, GATES) for m in module.modules())


def rescales_input(model) -> bool:
    """Whether a Keras model rescales its own input: the first layer its input feeds is a ``Rescaling`` or a
    ``Normalization`` (keras.applications' MobileNetV3, EfficientNet, EfficientNetV2, ConvNeXt). Such a model
    is checked on pixel inputs with calibrated statistics (:func:`calibrate_keras`): a standard-normal input
    divided by 255 is a nearly constant image, and random statistics do not normalise what is left."""
    from tf_impl.backend import keras

    first = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)][:1]
    return bool(first) and isinstance(first[0], (keras.layers.Rescaling, keras.layers.Normalization))


def _calibrate_batchnorm(module: nn.Module, x: torch.Tensor, rng: np.random.Generator) -> None:
    """One eval-mode forward of ``x``; just before each BatchNorm runs, its statistics are set from its
    input's per-channel mean square ``s`` (not the centred variance): running mean N(0, 0.1) * sqrt(s),
    running variance s * U(0.5, 1.5), at least 1e-3. The output is then O(1) without subtracting a large
    mean from nearly equal values: centring on the true mean cancelled digits (post-ReLU sums with mean >>
    std) and moved fcn_resnet50's float32 output by 8e-5 from float64; this way it stays at 1e-6."""
    def pre_hook(m, inputs):
        t = inputs[0].detach().double()
        dims = [d for d in range(t.dim()) if d != 1]
        square = (t * t).mean(dims)
        c = square.numel()
        m.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.1, c)) * square.sqrt())
        m.running_var.copy_(torch.clamp(square * torch.from_numpy(rng.uniform(0.5, 1.5, c)), min=1e-3))

    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.running_mean is not None]
    hooks = [m.register_forward_pre_hook(pre_hook) for m in norms]
    training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.training = flag


def randomize_keras(model, seed: int = 0):
    """Fills every weight of ``model`` (trainable and BatchNorm moving statistics) in place; returns it."""
    from parity.weight_transfer import keras_layers, refresh_keras_state
    from tf_impl.backend import keras  # here: randomising a torch model loads no TensorFlow

    rng = np.random.default_rng(check_seed(seed))
    for layer in keras_layers(model).values():
        is_norm = isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Normalization))
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        for v in layer.weights:
            if "float" not in str(v.dtype):  # an integer counter (Normalization's count) is no weight
                continue
            shape = tuple(v.shape)
            fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1])) if len(shape) > 1 else 1
            v.assign(_sample(rng, v.name, shape, is_norm, fan_in).astype(v.dtype))
    refresh_keras_state(model)  # Normalization reads its statistics only through finalize_state()
    return model


def calibrate_keras(model, x: np.ndarray, seed: int = 0):
    """Sets the moving statistics of every Keras ``BatchNormalization`` of ``model`` near the statistics its
    input has when ``x`` (NHWC, a few samples) goes through the randomised model; returns the model.

    Why: with random weights *and* random statistics no BatchNorm normalises, activations grow layer after
    layer, and the gates (SE sigmoids, ReLU6) see inputs thousands of times their working range, where a
    rounding difference of 1e-7 decides the output. Measured at 224x224 on random weights: EfficientNetV2B0's
    Keras model and its own ONNX export differ by 0.18 relative; MobileNetV2 (include_top=False, 161x193) by
    1.2e-4. Statistics near those of the data keep every layer in its working range, as trained ones are,
    and they stay random: the mean is shifted by N(0, 0.05) standard deviations and the variance scaled by
    U(0.8, 1.25), so a swapped mean and variance, a wrong epsilon or a momentum error still shows.
    One forward pass in training mode with momentum 0 (each BatchNorm normalises by its batch, so the next
    one sees what it will see at inference); Dropout is off during it, so the pass is deterministic.
    The engine calls it for specs that ask (``ModelSpec.calibrate_batchnorm``: models that rescale their own
    inputs); elsewhere random statistics keep the networks well conditioned (ResNet50: 1.2e-6 with them,
    1.7e-5 calibrated)."""
    from parity.weight_transfer import keras_layers
    from tf_impl.backend import keras

    layers = list(keras_layers(model).values())
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return model
    drops = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Dropout)]
    momenta, rates = [n.momentum for n in norms], [d.rate for d in drops]
    try:
        for n in norms:
            n.momentum = 0.0
        for d in drops:
            d.rate = 0.0
        model(x, training=True)
    finally:
        for n, m in zip(norms, momenta):
            n.momentum = m
        for d, r in zip(drops, rates):
            d.rate = r
    rng = np.random.default_rng(seed)
    for n in norms:
        var = np.asarray(n.moving_variance.numpy(), np.float64)
        shift = rng.normal(0.0, 0.05, var.shape) * np.sqrt(var)
        n.moving_mean.assign((n.moving_mean.numpy() + shift).astype("float32"))
        n.moving_variance.assign((var * rng.uniform(0.8, 1.25, var.shape)).astype("float32"))
    return model


def _all_layers(model) -> list:
    """Every layer of ``model``, nested models opened."""
    out, stack = [], list(model.layers)
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(getattr(layer, "layers", None) or [])
    return out
