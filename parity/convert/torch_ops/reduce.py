"""Reductions over torch dims mapped onto Keras axes: ``x.mean((2, 3))`` of an image map is Keras's global
average pooling; any other ``mean``/``sum``/``amax``/``amin`` is a ``Reduce`` layer."""
from __future__ import annotations

import torch

from parity import layout as L
from parity.convert.torch_ops.table import function, method
from tf_impl import keras_layers as KL
from tf_impl.backend import keras


def _reduce(ctx, op, x, dim, keepdim):
    t = ctx.tensor(x)
    dims = tuple(range(t.rank)) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    dims = tuple(sorted(d % t.rank for d in dims))
    axes = tuple(sorted(L.dst_axis(t.layout, d) for d in dims))
    if keepdim:
        layout = t.layout
    else:
        kept = [a for a in range(t.rank) if a not in dims]
        layout = tuple(kept.index(a) for a in t.layout if a not in dims)
    if op == "mean" and t.layout == L.TO_NHWC and dims == (2, 3):
        k = keras.layers.GlobalAveragePooling2D(keepdims=keepdim, name=ctx.name)(t.k)
    else:
        k = KL.Reduce(op, axes, keepdim, name=ctx.name)(t.k)
    return ctx.out(k, layout)


@function(torch.mean)
@method("mean")
def mean(ctx, x, dim=None, keepdim=False, dtype=None):
    return _reduce(ctx, "mean", x, dim, keepdim)


@function(torch.sum)
@method("sum")
def sum_(ctx, x, dim=None, keepdim=False, dtype=None):
    return _reduce(ctx, "sum", x, dim, keepdim)


@function(torch.amax)
@method("amax")
def amax(ctx, x, dim=(), keepdim=False):
    return _reduce(ctx, "max", x, dim or None, keepdim)


@function(torch.amin)
@method("amin")
def amin(ctx, x, dim=(), keepdim=False):
    return _reduce(ctx, "min", x, dim or None, keepdim)
