"""Resizing onto the facade, torch's index rules: ``F.interpolate`` to another tensor's size (the
segmentation heads' ``x.shape[-2:]``: a ``ResizeLike`` that reads that tensor's size at run time), to a
fixed size or by a scale factor (``Upsample``), and the ``nn.Upsample`` modules."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from parity import layout as L
from parity.convert.torch_ops.table import Derived, Dim, SizeOf, function, module
from tf_impl import nn as knn
from tf_impl.keras_layers import TorchResize
from tf_impl.layers import ResizeLike


def _check_mode(ctx, mode, antialias=False):
    if mode not in TorchResize.MODES:
        raise ctx.unsupported(f"mode={mode!r} (supported: {', '.join(TorchResize.MODES)})")
    if antialias:
        raise ctx.unsupported("antialias=True")


@function(F.interpolate, F.upsample)
def interpolate(ctx, x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    _check_mode(ctx, mode, antialias)
    k = ctx.nhwc(x)
    sizes = None if size is None else (size,) if isinstance(size, int) else tuple(size)
    if isinstance(size, SizeOf):
        source, dims = size.source, size.dims
    elif sizes and all(isinstance(s, Dim) for s in sizes) and len({id(s.source) for s in sizes}) == 1:
        source, dims = sizes[0].source, tuple(s.dim for s in sizes)  # (x.size(2), x.size(3))
    else:
        source = dims = None
    if source is not None and len(dims) == 2 and source.rank == 4:
        axes = tuple(L.dst_axis(source.layout, d) for d in dims)
        leaf = ctx.facade(lambda: ResizeLike(mode, bool(align_corners), axes))
        return ctx.image(leaf(k, source.k))
    if source is not None or any(isinstance(s, (Dim, Derived)) for s in sizes or ()):
        ctx.static(f"size={tuple(sizes)} is computed from tensor sizes: right at the traced size only")
        size = tuple(int(s) for s in sizes)
    leaf = ctx.facade(lambda: knn.Upsample(size, scale_factor, mode, align_corners, recompute_scale_factor))
    return ctx.image(leaf(k))


@module(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample(ctx, m, x):
    _check_mode(ctx, m.mode)
    leaf = ctx.facade(lambda: knn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners,
                                           m.recompute_scale_factor))
    return ctx.image(leaf(ctx.nhwc(x)))
