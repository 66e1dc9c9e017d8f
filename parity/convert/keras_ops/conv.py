"""Convolutions and Dense: ``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D``, ``Dense``."""
from __future__ import annotations

from parity.convert.keras_ops.base import Call, Spec, converts
from tf_impl.backend import keras

SAME_AT_STRIDE = "TF 'same' at stride > 1: padded from the input size, the odd pixel bottom/right"


def _geometry(call: Call) -> tuple[dict, str | None]:
    """The keyword arguments shared by the convolutions (those that differ from Keras's defaults, and
    ``padding`` always), and the comment a 'same' padding at stride > 1 earns."""
    c = call.config
    strides, dilation = tuple(c["strides"]), tuple(c["dilation_rate"])
    kwargs = {"strides": strides} if strides != (1, 1) else {}
    kwargs["padding"] = c["padding"]
    if dilation != (1, 1):
        kwargs["dilation_rate"] = dilation
    call.require(c["padding"] in ("valid", "same"), f"padding={c['padding']!r} is not supported")
    comment = SAME_AT_STRIDE if c["padding"] == "same" and strides != (1, 1) else None
    return kwargs, comment


def _tail(call: Call) -> dict:
    """``use_bias`` and ``activation`` where they differ from Keras's defaults."""
    c = call.config
    kwargs = {} if c["use_bias"] else {"use_bias": False}
    if call.activation(c["activation"]) != "linear":
        kwargs["activation"] = c["activation"]
    return kwargs


@converts(keras.layers.Conv2D)
def conv2d(call: Call) -> Spec:
    call.channels_last()
    x, c = call.image(), call.config
    kwargs, comment = _geometry(call)
    if c["groups"] != 1:
        kwargs["groups"] = c["groups"]
    return Spec("Conv2D", (x.shape[-1], c["filters"], tuple(c["kernel_size"])), kwargs | _tail(call), comment)


@converts(keras.layers.DepthwiseConv2D)
def depthwise_conv2d(call: Call) -> Spec:
    call.channels_last()
    x, c = call.image(), call.config
    kwargs, comment = _geometry(call)
    if c["depth_multiplier"] != 1:
        kwargs["depth_multiplier"] = c["depth_multiplier"]
    return Spec("DepthwiseConv2D", (x.shape[-1], tuple(c["kernel_size"])), kwargs | _tail(call), comment)


@converts(keras.layers.SeparableConv2D)
def separable_conv2d(call: Call) -> Spec:
    call.channels_last()
    x, c = call.image(), call.config
    kwargs, comment = _geometry(call)
    if c["depth_multiplier"] != 1:
        kwargs["depth_multiplier"] = c["depth_multiplier"]
    return Spec("SeparableConv2D", (x.shape[-1], c["filters"], tuple(c["kernel_size"])), kwargs | _tail(call),
                comment)


@converts(keras.layers.Dense)
def dense(call: Call) -> Spec:
    x, c = call.x, call.config
    call.require(x.shape[-1] is not None, f"expected a known last axis, got input shape {x.shape}")
    call.require(c.get("quantization_config") is None, "a quantized Dense is not supported")
    dim = call.dim(-1)
    kwargs = _tail(call)
    if dim != x.rank - 1:
        kwargs["dim"] = dim
    comment = "Keras's last axis is channels: a 1x1 conv on the NCHW map" if dim != x.rank - 1 else None
    return Spec("Dense", (x.shape[-1], c["units"]), kwargs, comment)
