"""Arithmetic: ``+ - * /`` between tensors (torch's broadcasting, layouts aligned first), with Python
numbers (a ``Rescaling`` layer: ``x * scale + offset``), and on sizes (plain Python, traced values)."""
from __future__ import annotations

import operator

import torch

from parity import layout as L
from parity.convert.torch_ops.context import broadcast_to_layout
from parity.convert.torch_ops.table import Held, Tensor, function, method
from tf_impl import keras_layers as KL
from tf_impl.backend import keras

_PYTHON = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
_LAYERS = {"add": keras.layers.Add, "sub": keras.layers.Subtract, "mul": keras.layers.Multiply}
_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide"}


def _is_tensor(v) -> bool:
    return isinstance(v, (Tensor, Held))


def _align(ctx, a, b):
    """Both operands as Keras tensors that broadcast as torch's do, and the layout of the result: the
    higher-rank tensor's (the first's on a tie); a held tensor is stored in that layout, another tensor of
    lower rank is seen with leading size-1 axes, one of equal rank and another layout is transposed."""
    ta = a if isinstance(a, Tensor) else None
    tb = b if isinstance(b, Tensor) else None
    ref = max((t for t in (ta, tb) if t is not None), key=lambda t: t.rank, default=None)
    if ref is None:  # two held tensors: torch's layout
        ref = ctx.tensor(a)
    out = []
    for v in (a, b):
        if isinstance(v, Held):
            t = ctx.materialize(v, L.expand_rank(ref.layout, ref.rank) if v.rank <= ref.rank else
                                L.identity(v.rank))
            if v.rank > ref.rank:
                raise ctx.unsupported(f"a held tensor of rank {v.rank} against a tensor of rank {ref.rank}")
        elif v.rank < ref.rank:
            t = broadcast_to_layout(ctx, v, ref.layout)
        elif v.layout != ref.layout:
            t = Tensor(ctx.in_layout(v, ref.layout), ref.layout, v.shape)
        else:
            t = v
        out.append(t.k)
    return out, ref.layout


def _scalar_layer(ctx, op, t, c, tensor_first: bool):
    """``t op c`` (or ``c op t``) with a Python number ``c``: ``Rescaling(scale, offset)`` computes
    ``x * scale + offset``. ``x / c`` becomes ``x * (1 / c)`` (one rounding apart, 1e-7 relative)."""
    scale, offset = {"add": (1.0, c), "mul": (c, 0.0),
                     "sub": (1.0, -c) if tensor_first else (-1.0, c)}.get(op, (None, None))
    if op == "div":
        if not tensor_first:
            raise ctx.unsupported("a number divided by a tensor")
        scale, offset = 1.0 / c, 0.0
    layer = keras.layers.Rescaling(float(scale), float(offset), name=ctx.name)
    return ctx.out(layer(t.k), t.layout)


def _binary(ctx, op, a, b):
    if not _is_tensor(a) and not _is_tensor(b):  # sizes: plain Python, as torch computed them at trace time
        return _PYTHON[op](a, b)
    if not _is_tensor(b) or not _is_tensor(a):
        t, c = (ctx.tensor(a), b) if _is_tensor(a) else (ctx.tensor(b), a)
        if not isinstance(c, (int, float)) or isinstance(c, bool):
            raise ctx.unsupported(f"{op} of a tensor and a {type(c).__name__}")
        return _scalar_layer(ctx, op, t, c, _is_tensor(a))
    ks, layout = _align(ctx, a, b)
    sa, sb = (tuple(k.shape) for k in ks)
    if op in _LAYERS and len(sa) == len(sb) and (sa[0] is None) == (sb[0] is None):
        return ctx.out(_LAYERS[op](name=ctx.name)(ks), layout)
    return ctx.out(KL.Binary(_BINARY[op], name=ctx.name)(*ks), layout)  # a held tensor, or a division


def _alpha(ctx, other, alpha):
    if alpha != 1:
        raise ctx.unsupported(f"alpha={alpha!r} (only 1)")
    return other


@function(operator.add, operator.iadd)
def add(ctx, a, b):
    return _binary(ctx, "add", a, b)


@function(torch.add)
@method("add", "add_")
def torch_add(ctx, a, b, alpha=1):
    return _binary(ctx, "add", a, _alpha(ctx, b, alpha))


@function(operator.sub, operator.isub)
def sub(ctx, a, b):
    return _binary(ctx, "sub", a, b)


@function(torch.sub)
@method("sub", "sub_")
def torch_sub(ctx, a, b, alpha=1):
    return _binary(ctx, "sub", a, _alpha(ctx, b, alpha))


@function(operator.mul, operator.imul, torch.mul)
@method("mul", "mul_")
def mul(ctx, a, b):
    return _binary(ctx, "mul", a, b)


@function(operator.truediv, operator.itruediv, torch.div)
@method("div", "div_")
def div(ctx, a, b, rounding_mode=None):
    if rounding_mode is not None:
        raise ctx.unsupported(f"rounding_mode={rounding_mode!r}")
    return _binary(ctx, "div", a, b)


@function(operator.floordiv)
def floordiv(ctx, a, b):
    if _is_tensor(a) or _is_tensor(b):
        raise ctx.unsupported("floor division of tensors")
    return a // b
