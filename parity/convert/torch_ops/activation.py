"""Elementwise activations: torch modules, functions and methods onto the facade's activation leaves. They
work on any layout (elementwise), so the output keeps the input's."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from parity.convert.torch_ops.table import function, method, module
from tf_impl import nn as knn

_LEAVES = {nn.ReLU: knn.ReLU, nn.ReLU6: knn.ReLU6, nn.SiLU: knn.SiLU, nn.Sigmoid: knn.Sigmoid, nn.Tanh: knn.Tanh,
           nn.Hardswish: knn.Hardswish, nn.Hardsigmoid: knn.Hardsigmoid}


def _apply(ctx, leaf, x):
    t = ctx.tensor(x)
    return ctx.out(leaf(t.k), t.layout)


@module(*_LEAVES)
def activation_module(ctx, m, x):
    inplace = {"inplace": m.inplace} if hasattr(m, "inplace") else {}
    return _apply(ctx, ctx.facade(lambda: _LEAVES[type(m)](**inplace)), x)


@module(nn.GELU)
def gelu_module(ctx, m, x):
    return _apply(ctx, ctx.facade(lambda: knn.GELU(m.approximate)), x)


@function(F.relu, torch.relu, torch.relu_, F.relu_)
@method("relu", "relu_")
def relu(ctx, x, inplace=False):
    return _apply(ctx, ctx.facade(knn.ReLU), x)


@function(F.relu6)
def relu6(ctx, x, inplace=False):
    return _apply(ctx, ctx.facade(knn.ReLU6), x)


@function(F.silu)
def silu(ctx, x, inplace=False):
    return _apply(ctx, ctx.facade(knn.SiLU), x)


@function(F.hardswish)
def hardswish(ctx, x, inplace=False):
    return _apply(ctx, ctx.facade(knn.Hardswish), x)


@function(F.hardsigmoid)
def hardsigmoid(ctx, x, inplace=False):
    return _apply(ctx, ctx.facade(knn.Hardsigmoid), x)


@function(torch.sigmoid, F.sigmoid)
@method("sigmoid")
def sigmoid(ctx, x):
    return _apply(ctx, ctx.facade(knn.Sigmoid), x)


@function(torch.tanh, F.tanh)
@method("tanh")
def tanh(ctx, x):
    return _apply(ctx, ctx.facade(knn.Tanh), x)


@function(F.gelu)
def gelu(ctx, x, approximate="none"):
    return _apply(ctx, ctx.facade(lambda: knn.GELU(approximate)), x)
