"""Activations as layers: ``Activation``, ``ReLU``, ``LeakyReLU``, ``Softmax``."""
from __future__ import annotations

from parity.convert.keras_ops.base import Call, Spec, converts
from tf_impl.backend import keras


@converts(keras.layers.Activation)
def activation(call: Call) -> Spec:
    name = call.activation(call.config["activation"])
    dim = call.dim(-1)
    along = name in ("softmax", "log_softmax") and dim != call.x.rank - 1  # softmax on an NCHW map: dim 1
    return Spec("Activation", (name,), {"dim": dim} if along else {})


@converts(keras.layers.ReLU)
def relu(call: Call) -> Spec:
    c = call.config
    kwargs = {k: c[k] for k, default in (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0))
              if c[k] != default}
    return Spec("ReLU", (), kwargs)


@converts(keras.layers.LeakyReLU)
def leaky_relu(call: Call) -> Spec:
    return Spec("LeakyReLU", (call.config["negative_slope"],))


@converts(keras.layers.Softmax)
def softmax(call: Call) -> Spec:
    axes = call.config["axis"]
    axes = [axes] if isinstance(axes, int) else list(axes)
    call.require(len(axes) == 1, f"softmax over several axes {axes} is not supported")
    dim = call.dim(axes[0])
    return Spec("Activation", ("softmax",), {"dim": dim} if dim != call.x.rank - 1 else {})
