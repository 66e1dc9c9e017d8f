"""Layout-sensitive ops: flatten, view/reshape, permute/transpose, cat, chunk/split, sizes, and the ops that
are the identity at inference (``contiguous``, ``Dropout``, ``Identity``, torchvision's stochastic depth).

A ``permute``/``transpose`` moves no data: it changes the layout the value carries
(:func:`parity.layout.after_permute`). A reshape is planned by :func:`parity.layout.plan_reshape`. A flatten
of an image map that feeds a ``Linear`` is a Keras ``Flatten``: the transfer reorders that ``Dense``'s rows
(torch's C, H, W order to Keras's H, W, C), so nothing moves at inference.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from parity import layout as L
from parity.convert.torch_ops.context import reshape
from parity.convert.torch_ops.table import Held, SizeOf, Tensor, function, method, module
from tf_impl import keras_layers as KL
from tf_impl import nn as knn
from tf_impl.backend import keras

_PASS_THROUGH = (nn.Dropout, nn.Identity)  # between a Flatten and its Linear


def _feeds_linear(node, gm) -> bool:
    """Whether every use of ``node`` reaches an ``nn.Linear`` through Dropouts and Identities only."""
    users = list(node.users)
    if not users:
        return False
    for user in users:
        if user.op != "call_module":
            return False
        mod = gm.get_submodule(user.target)
        if type(mod) is nn.Linear:
            continue
        if type(mod) not in _PASS_THROUGH or not _feeds_linear(user, gm):
            return False
    return True


def _flatten(ctx, x, start_dim, end_dim, leaf_ok: bool):
    t = ctx.tensor(x)
    start, end = start_dim % max(t.rank, 1), end_dim % max(t.rank, 1)
    if leaf_ok and t.rank == 4 and (start, end) == (1, 3) and _feeds_linear(ctx.node, ctx.build.gm):
        k = ctx.nhwc(t)
        if None in tuple(k.shape)[1:3]:
            ctx.static("a Flatten of a map of free size feeds a Linear")
        return ctx.out(ctx.facade(knn.Flatten)(k), L.identity(2))
    shape = t.shape[:start] + (int(torch.Size(t.shape[start:end + 1]).numel()),) + t.shape[end + 1:]
    return reshape(ctx, t, shape)


@module(nn.Flatten)
def flatten_module(ctx, m, x):
    return _flatten(ctx, x, m.start_dim, m.end_dim, leaf_ok=True)


@function(torch.flatten)
@method("flatten")
def flatten(ctx, x, start_dim=0, end_dim=-1):
    return _flatten(ctx, x, start_dim, end_dim, leaf_ok=True)


@method("view", "reshape")
def view(ctx, x, *shape):
    """The target is the traced output shape: the arguments may be sizes read at trace time, and
    :func:`reshape` decides which sizes stay free."""
    return reshape(ctx, ctx.tensor(x), ctx.out_shape)


@function(torch.reshape)
def torch_reshape(ctx, x, shape):
    return reshape(ctx, ctx.tensor(x), ctx.out_shape)


@method("permute")
def permute_method(ctx, x, *dims):
    return _permute(ctx, x, tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)


@function(torch.permute)
def permute(ctx, x, dims):
    return _permute(ctx, x, tuple(dims))


def _permute(ctx, x, dims):
    t = ctx.tensor(x)
    return Tensor(t.k, L.after_permute(t.layout, dims), ctx.out_shape)


@function(torch.transpose)
@method("transpose")
def transpose(ctx, x, dim0, dim1):
    t = ctx.tensor(x)
    dims = list(range(t.rank))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return _permute(ctx, t, dims)


@method("contiguous")
def contiguous(ctx, x, memory_format=None):
    return ctx.tensor(x)


@module(nn.Identity, nn.Dropout)
def identity_module(ctx, m, x):
    """Dropout is the identity at inference in both frameworks; kept as a layer (a checkpoint holds no
    weights for it, but the module path stays visible in the Keras model and the trace)."""
    t = ctx.tensor(x)
    leaf = ctx.facade(knn.Identity if type(m) is nn.Identity else (lambda: knn.Dropout(m.p, m.inplace)))
    return ctx.out(leaf(t.k), t.layout)


@function(F.dropout)
def dropout(ctx, x, p=0.5, training=True, inplace=False):
    if training:
        raise ctx.unsupported("F.dropout with training=True is random; trace the model in eval mode")
    return ctx.tensor(x)


@function("torchvision.ops.stochastic_depth.stochastic_depth")  # by name: importing torchvision here would
def stochastic_depth(ctx, x, p, mode, training=True):  # load it for every conversion (and it needs the shim)
    """torchvision's stochastic depth (``StochasticDepth`` calls it; fx keeps it as one node): the identity at
    inference (``training=False``)."""
    if training and p > 0:
        raise ctx.unsupported("stochastic_depth with training=True is random; trace the model in eval mode")
    return ctx.tensor(x)


@method("size")
def size(ctx, x, dim=None):
    t = ctx.tensor(x)
    sizes = SizeOf(t.shape, t, range(t.rank))
    return sizes if dim is None else sizes[dim % t.rank]


@method("dim")
def dim(ctx, x):
    return ctx.tensor(x).rank


@function(getattr)
def get_attribute(ctx, obj, name, *default):
    if isinstance(obj, (Tensor, Held)) and name == "shape":
        t = ctx.tensor(obj)
        return SizeOf(t.shape, t, range(t.rank))
    if isinstance(obj, (Tensor, Held)) and name == "ndim":
        return obj.rank
    raise ctx.unsupported(f"getattr(tensor, {name!r}): only .shape and .ndim are supported")


@function(operator.getitem)
def getitem(ctx, obj, index):
    if isinstance(obj, (SizeOf, tuple, list)):
        return obj[index]
    raise ctx.unsupported(f"indexing a {type(obj).__name__} with {index!r}: tensor indexing and slicing are not "
                          f"supported")


@function(torch.cat, torch.concat, torch.concatenate)
def cat(ctx, tensors, dim=0):
    ts = [ctx.tensor(t) for t in tensors]
    layout = ts[0].layout
    ks = [t.k if t.layout == layout else ctx.in_layout(t, layout, f"transpose{i}") for i, t in enumerate(ts)]
    return ctx.out(keras.layers.Concatenate(axis=L.dst_axis(layout, dim), name=ctx.name)(ks), layout)


def _split(ctx, x, sizes, dim):
    t = ctx.tensor(x)
    axis = L.dst_axis(t.layout, dim)
    outs = KL.Split(sizes, axis, name=ctx.name)(t.k)
    shapes = []
    for s in sizes:
        shape = list(t.shape)
        shape[dim % t.rank] = s
        shapes.append(tuple(shape))
    return tuple(Tensor(k, t.layout, s) for k, s in zip(outs, shapes))


@function(torch.chunk)
@method("chunk")
def chunk(ctx, x, chunks, dim=0):
    t = ctx.tensor(x)
    n = t.shape[dim % t.rank]
    step = -(-n // chunks)
    return _split(ctx, t, [min(step, n - i) for i in range(0, n, step)], dim)


@function(torch.split)
@method("split")
def split(ctx, x, split_size_or_sections, dim=0):
    t = ctx.tensor(x)
    n = t.shape[dim % t.rank]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        sizes = [min(s, n - i) for i in range(0, n, s)]
    else:
        sizes = list(split_size_or_sections)
    return _split(ctx, t, sizes, dim)

