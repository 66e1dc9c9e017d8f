"""Normalisations onto the facade: ``BatchNorm2d`` (torch's eps and momentum), ``LayerNorm`` over the last
axis (ConvNeXt's channels-last blocks; ``F.layer_norm`` with a ``LayerNorm`` subclass's own weight and bias,
as torchvision's ``LayerNorm2d``), ``LocalResponseNorm``."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from parity import layout as L
from parity.convert.torch_ops.table import Held, function, module
from tf_impl import nn as knn
from tf_impl.layers import LocalResponseNorm


@module(nn.BatchNorm2d)
def batch_norm(ctx, m, x):
    leaf = ctx.facade(lambda: knn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats))
    return ctx.image(leaf(ctx.nhwc(x)))


def _layer_norm(ctx, leaf, x):
    k, layout = ctx.last_axis_last(x)
    return ctx.out(leaf(k), layout)


@module(nn.LayerNorm)
def layer_norm_module(ctx, m, x):
    return _layer_norm(ctx, ctx.facade(lambda: knn.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine,
                                                             m.bias is not None)), x)


@function(F.layer_norm)
def layer_norm(ctx, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Maps onto a ``LayerNorm`` leaf named after the module whose own ``weight`` and ``bias`` these are
    (torchvision's ``LayerNorm2d(nn.LayerNorm)`` permutes to channels-last and calls ``F.layer_norm``), so
    the transfer's ``LayerNorm`` row applies; other weights are refused."""
    held = [w for w in (weight, bias) if w is not None]
    owners = {h.owner for h in held if isinstance(h, Held)}
    if len(held) != sum(isinstance(h, Held) for h in held) or len(owners) > 1 or (
            held and not isinstance(ctx.build.module.get_submodule(next(iter(owners))), nn.LayerNorm)) or any(
            h.name != n for h, n in zip((weight, bias), ("weight", "bias")) if h is not None):
        raise ctx.unsupported("F.layer_norm converts only with the weight and bias of the nn.LayerNorm "
                              "(or subclass) that calls it")
    if held:
        ctx.path = next(iter(owners))  # the Keras layer is named after the module that holds the weights
        if ctx.path in ctx.build.leaves or ctx.path in ctx.build.held:
            raise ctx.unsupported(f"the weights of {ctx.path!r} are used twice")
        ctx.build.names.add(ctx.path)
    leaf = ctx.facade(lambda: knn.LayerNorm(tuple(normalized_shape), eps, weight is not None,
                                            bias is not None))
    return _layer_norm(ctx, leaf, x)


@module(nn.LocalResponseNorm)
def local_response_norm(ctx, m, x):
    leaf = ctx.facade(lambda: LocalResponseNorm(m.size, m.alpha, m.beta, m.k))
    return ctx.out(leaf(ctx.nhwc(x)), L.TO_NHWC)
