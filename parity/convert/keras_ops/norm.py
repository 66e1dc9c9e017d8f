"""Normalisation and scaling: ``BatchNormalization``, ``LayerNormalization``, ``Normalization``,
``Rescaling`` and ConvNeXt's ``LayerScale``."""
from __future__ import annotations

import importlib

from parity.convert.keras_ops.base import Call, Spec, converts
from tf_impl.backend import keras

LayerScale = importlib.import_module("keras.src.applications.convnext").LayerScale  # after the backend pin


def _axes(call: Call, axis) -> list[int]:
    """Keras ``axis`` (an int or a list) as non-negative axes of the single input."""
    rank = call.x.rank
    axes = [axis] if isinstance(axis, int) else list(axis)
    call.require(all(-rank <= a < rank for a in axes), f"axis {axis} is out of range for input shape {call.x.shape}")
    return sorted(a % rank for a in axes)


@converts(keras.layers.BatchNormalization)
def batch_normalization(call: Call) -> Spec:
    x, c = call.x, call.config
    axes = _axes(call, c["axis"])
    call.require(len(axes) == 1 and x.rank in (2, 4) and call.dim(axes[0]) == 1,
                 f"expected BatchNormalization over the channels of a 2-D or 4-D input, got axis {c['axis']} "
                 f"on shape {x.shape}")
    call.require(not c["renorm"], "renorm=True is not supported")
    kwargs = {"epsilon": c["epsilon"], "momentum": c["momentum"]}  # always spelled out: both differ from torch's
    kwargs |= {k: False for k in ("center", "scale") if not c[k]}
    return Spec("BatchNormalization", (x.shape[axes[0]],), kwargs)


@converts(keras.layers.LayerNormalization)
def layer_normalization(call: Call) -> Spec:
    x, c = call.x, call.config
    axes = _axes(call, c["axis"])
    dims = [call.dim(a) for a in axes]
    call.require(dims == sorted(dims), f"axis {c['axis']} maps to torch dims {dims} out of order")
    call.require(all(x.shape[a] is not None for a in axes), f"expected known sizes on axis {c['axis']}, got {x.shape}")
    call.require(not c["rms_scaling"], "rms_scaling=True is not supported")
    kwargs = {"dims": tuple(dims), "epsilon": c["epsilon"]}
    kwargs |= {k: False for k in ("center", "scale") if not c[k]}
    return Spec("LayerNormalization", (tuple(x.shape[a] for a in axes),), kwargs)


@converts(keras.layers.Normalization)
def normalization(call: Call) -> Spec:
    x, c, layer = call.x, call.config, call.layer
    axes = _axes(call, c["axis"] if c["axis"] is not None else [])
    call.require(len(axes) == 1, f"expected one kept axis, got axis={c['axis']}")
    kwargs = {"epsilon": keras.config.epsilon()}  # Keras's floor on the standard deviation
    if c["invert"]:
        kwargs["invert"] = True
    dim = call.dim(axes[0])
    if dim != 1:
        kwargs["dim"] = dim
    if layer.input_mean is None:  # adapted: the statistics are weights
        return Spec("Normalization", (), {"num_features": x.shape[axes[0]]} | kwargs,
                    "divides by max(sqrt(variance), epsilon), as Keras does")
    return Spec("Normalization", (c["mean"], c["variance"]), kwargs,
                "divides by max(sqrt(variance), epsilon), as Keras does")


@converts(keras.layers.Rescaling)
def rescaling(call: Call) -> Spec:
    c = call.config
    kwargs = {"offset": c["offset"]} if c["offset"] != 0 else {}
    if isinstance(c["scale"], (list, tuple)) or isinstance(c["offset"], (list, tuple)):
        kwargs["dim"] = call.dim(-1)
    return Spec("Rescaling", (c["scale"],), kwargs)


@converts(LayerScale)
def layer_scale(call: Call) -> Spec:
    c = call.config
    return Spec("LayerScale", (c["init_values"], c["projection_dim"]), {"dim": call.dim(-1)})
