"""Activations: the layers ``Activation``, ``ReLU``, ``LeakyReLU``, ``Softmax``, and the ``keras.ops``
activations called in a functional graph (``keras.ops.gelu(x)``)."""
from __future__ import annotations

import importlib

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


_nn_ops = importlib.import_module("keras.src.ops.nn")  # keras.ops.relu(x) ... in a functional graph


def _elementwise_op(name: str):
    def convert(call: Call) -> Spec:
        call.require(len(call.inputs) == 1, f"expected one input, got {len(call.inputs)}")
        return Spec("Activation", (name,))
    convert.__name__ = f"ops_{name}"
    return convert


for _op, _name in (("Relu", "relu"), ("Relu6", "relu6"), ("Sigmoid", "sigmoid"), ("Silu", "silu"),
                   ("HardSigmoid", "hard_sigmoid"), ("HardSilu", "hard_silu"), ("Selu", "selu"),
                   ("Softplus", "softplus")):
    converts(getattr(_nn_ops, _op))(_elementwise_op(_name))


@converts(_nn_ops.Gelu)
def ops_gelu(call: Call) -> Spec:
    """``keras.ops.gelu``: the tanh approximation by default (``approximate=True``), unlike
    ``keras.activations.gelu`` (and so ``Activation('gelu')``), which is exact."""
    return Spec("Activation", ("gelu_tanh" if call.layer.approximate else "gelu",))


@converts(_nn_ops.Softmax)
def ops_softmax(call: Call) -> Spec:
    axis = call.layer.axis
    call.require(isinstance(axis, int), f"softmax over axes {axis} is not supported")
    dim = call.dim(axis)
    return Spec("Activation", ("softmax",), {"dim": dim} if dim != call.x.rank - 1 else {})
