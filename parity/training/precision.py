"""The float type a training check runs in, and how both frameworks are made to build in it.

Training checks run in float64 by default. In float32, rounding alone moves the training-mode gradients of a
randomly initialised ResNet-50 by up to 19% of a tensor's largest gradient (torch float32 against torch
float64, same weights, batch 2x3x64x64; 16% at batch 8): each training-mode BatchNorm divides by a batch
standard deviation, so every layer passes on the relative error of its input, amplified by up to
``|mean| / std`` of the channel, and the error grows along the depth (forward 4e-7 after the stem,
1.2e-4 after layer4). A wrong formula of 1e-3 hides under that; in float64 the same twins agree to 1e-12,
so a tolerance can be tight. ``dtype="float32"`` remains available, with tolerances that blocks meet and
deep BatchNorm stacks do not; it adds a float64 copy of the torch model that reports how far torch's own
float32 is from float64 at each step (:func:`parity.training.steps.rounding_floor`).
"""
from __future__ import annotations

import contextlib
import copy

import torch

from parity.errors import InvalidArgumentError
from tf_impl.backend import keras

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise InvalidArgumentError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


@contextlib.contextmanager
def building_in(dtype: str):
    """Within the block, new torch modules and Keras layers, inputs and optimizers are created in
    ``dtype`` (torch's default dtype, Keras's floatx and global dtype policy); all three are restored on exit."""
    saved = torch.get_default_dtype(), keras.config.floatx(), keras.config.dtype_policy()
    torch.set_default_dtype(DTYPES[dtype])
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved[0])
        keras.config.set_floatx(saved[1])
        keras.config.set_dtype_policy(saved[2])


def in_dtype(model, dtype: str):
    """A copy of a model object in ``dtype``: a torch module deep-copied and cast; a functional or sequential
    Keras model cloned with every layer's dtype set and its weights cast (a subclassed Keras model cannot be
    cloned: InvalidArgumentError). The caller's model is never changed."""
    if isinstance(model, torch.nn.Module):
        return copy.deepcopy(model).to(DTYPES[dtype])
    if not isinstance(model, keras.Model) or model.dtype == dtype:
        return model
    try:
        clone = keras.models.clone_model(
            model, clone_function=lambda layer: type(layer).from_config({**layer.get_config(), "dtype": dtype}))
    except Exception as exc:  # Keras raises several types for models it cannot clone
        raise InvalidArgumentError(f"cannot rebuild Keras model {model.name!r} in {dtype} ({type(exc).__name__}: {exc}); "
                          f"pass dtype='float32'") from None
    clone.set_weights([w.astype(dtype) for w in model.get_weights()])
    return clone
