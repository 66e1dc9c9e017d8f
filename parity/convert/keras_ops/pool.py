"""Pooling, padding, cropping and resizing of NHWC maps (NCHW in torch)."""
from __future__ import annotations

import importlib

from parity.convert.keras_ops.base import Call, Spec, converts
from tf_impl.backend import keras

Resize = importlib.import_module("keras.src.ops.image").Resize  # keras.ops.image.resize in a functional graph


def _pool(call: Call, cls: str, same_comment: str) -> Spec:
    call.channels_last()
    call.image()
    c = call.config
    pool, strides = tuple(c["pool_size"]), tuple(c["strides"] or c["pool_size"])
    call.require(c["padding"] in ("valid", "same"), f"padding={c['padding']!r} is not supported")
    kwargs = {"strides": strides} if strides != pool else {}
    kwargs["padding"] = c["padding"]
    return Spec(cls, (pool,), kwargs, same_comment if c["padding"] == "same" else None)


@converts(keras.layers.MaxPooling2D)
def max_pooling2d(call: Call) -> Spec:
    return _pool(call, "MaxPooling2D", "TF 'same': padded with -inf, the odd pixel bottom/right")


@converts(keras.layers.AveragePooling2D)
def average_pooling2d(call: Call) -> Spec:
    return _pool(call, "AveragePooling2D", "Keras 'same': the padded zeros are not counted in the mean")


def _global(call: Call, cls: str) -> Spec:
    call.channels_last()
    call.image()
    return Spec(cls, (), {"keepdims": True} if call.config["keepdims"] else {})


@converts(keras.layers.GlobalAveragePooling2D)
def global_average_pooling2d(call: Call) -> Spec:
    return _global(call, "GlobalAveragePooling2D")


@converts(keras.layers.GlobalMaxPooling2D)
def global_max_pooling2d(call: Call) -> Spec:
    return _global(call, "GlobalMaxPooling2D")


def _amounts(value) -> tuple:
    return tuple(tuple(int(a) for a in pair) for pair in value)


@converts(keras.layers.ZeroPadding2D)
def zero_padding2d(call: Call) -> Spec:
    call.channels_last()
    call.image()
    return Spec("ZeroPadding2D", (_amounts(call.config["padding"]),))


@converts(keras.layers.Cropping2D)
def cropping2d(call: Call) -> Spec:
    call.channels_last()
    call.image()
    return Spec("Cropping2D", (_amounts(call.config["cropping"]),))


@converts(keras.layers.UpSampling2D)
def up_sampling2d(call: Call) -> Spec:
    call.channels_last()
    call.image()
    c = call.config
    call.require(c["interpolation"] in ("nearest", "bilinear"),
                 f"interpolation={c['interpolation']!r} is not supported (expected 'nearest' or 'bilinear')")
    return Spec("UpSampling2D", (tuple(c["size"]),), {"interpolation": c["interpolation"]})


def _resize(call: Call, size, interpolation, antialias, crop, pad) -> Spec:
    call.image()
    call.require(interpolation in ("nearest", "bilinear"),
                 f"interpolation={interpolation!r} is not supported (expected 'nearest' or 'bilinear')")
    call.require(not (antialias or crop or pad), "antialias, crop_to_aspect_ratio and pad_to_aspect_ratio are "
                                                 "not supported")
    return Spec("Resize", (tuple(int(s) for s in size),), {"interpolation": interpolation})


@converts(keras.layers.Resizing)
def resizing(call: Call) -> Spec:
    call.channels_last()
    c = call.config
    return _resize(call, (c["height"], c["width"]), c["interpolation"], c.get("antialias", False),
                   c["crop_to_aspect_ratio"], c["pad_to_aspect_ratio"])


@converts(Resize)
def resize(call: Call) -> Spec:
    op = call.layer
    call.require(op.data_format == "channels_last", f"data_format={op.data_format!r} is not supported")
    return _resize(call, op.size, op.interpolation, op.antialias, op.crop_to_aspect_ratio, op.pad_to_aspect_ratio)
