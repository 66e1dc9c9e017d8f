"""Randomises every weight and every BatchNorm statistic, so that a swapped mean/variance, a wrong eps or a
transposed kernel cannot hide behind default values (zeros, ones).

Conv and dense weights: normal with He scale ``sqrt(2 / fan_in)``, so deep ReLU stacks keep their range.
Biases and BatchNorm beta / running mean: normal, std 0.1. BatchNorm gamma and running variance:
uniform in [0.5, 1.5] (positive; distinct from 1 so that eps and variance errors show).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tf_impl.backend import keras

_NORM_SCALE = {"weight", "running_var", "gamma", "moving_variance", "variance"}  # names of positive tensors


def _sample(rng: np.random.Generator, name: str, shape: tuple, is_norm: bool, fan_in: int) -> np.ndarray:
    if is_norm and name in _NORM_SCALE:
        return rng.uniform(0.5, 1.5, shape)
    if is_norm or len(shape) <= 1:
        return rng.normal(0.0, 0.1, shape)
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def randomize_torch(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fills every parameter and floating buffer of ``module`` in place; returns it."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in module.modules():
            is_norm = isinstance(m, nn.modules.batchnorm._NormBase)
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                if t is None or not t.is_floating_point():
                    continue
                fan_in = int(np.prod(t.shape[1:])) if t.dim() > 1 else 1
                t.copy_(torch.from_numpy(_sample(rng, name, tuple(t.shape), is_norm, fan_in)))
    return module


def randomize_keras(model, seed: int = 0):
    """Fills every weight of ``model`` (trainable and BatchNorm moving statistics) in place; returns it."""
    from parity.weight_transfer import keras_layers, refresh_keras_state

    rng = np.random.default_rng(seed)
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
