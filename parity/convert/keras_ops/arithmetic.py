"""Keras ops in a functional graph, on tensors or a tensor and a number: ``x + 3.0``, ``x * (1.0 / 6.0)``
(MobileNetV3's hard sigmoid), ``inputs + x`` (ConvNeXt's residual)."""
from __future__ import annotations

import importlib
import numbers

import numpy as np

from parity.convert.keras_ops.base import Call, Spec, converts
from tf_impl.backend import keras

_numpy_ops = importlib.import_module("keras.src.ops.numpy")  # after the backend pin


def _binary(cls: str, ordered: bool):
    """A converter for a two-operand op: tensors of one rank, or a tensor and a number (a float32 constant
    in both frameworks); ``ordered``: whether a number first (``3 - x``) must be said."""
    def convert(call: Call) -> Spec:
        args, kwargs = call.node.arguments.args, call.node.arguments.kwargs
        call.require(len(args) == 2 and not kwargs, f"expected two operands, got {len(args)} and {kwargs}")
        tensors = [isinstance(a, keras.KerasTensor) for a in args]
        if all(tensors):
            call.require(args[0].ndim == args[1].ndim, f"operands of ranks {args[0].ndim} and {args[1].ndim} are "
                                                       f"not supported")
            return Spec(cls)
        constant = args[tensors.index(False)]
        if isinstance(constant, np.ndarray) and constant.ndim == 0:
            constant = constant.item()
        call.require(isinstance(constant, numbers.Real) and not isinstance(constant, bool),
                     f"an operand that is not a tensor must be a number, got {type(constant).__name__}")
        kwargs = {"constant": float(constant)}
        if ordered and not tensors[0]:
            kwargs["constant_first"] = True
        return Spec(cls, (), kwargs)
    convert.__name__ = f"ops_{cls.lower()}"
    return convert


for _op, _cls, _ordered in (("Add", "Add", False), ("Multiply", "Multiply", False), ("Subtract", "Subtract", True),
                            ("Divide", "Divide", True), ("TrueDivide", "Divide", True),
                            ("Maximum", "Maximum", False), ("Minimum", "Minimum", False)):
    converts(getattr(_numpy_ops, _op))(_binary(_cls, _ordered))
