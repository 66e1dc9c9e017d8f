"""Convolutions onto the facade's ``Conv2d`` (symmetric padding, grouped and depthwise convs)."""
from __future__ import annotations

from torch import nn

from parity.convert.torch_ops.table import module
from tf_impl import nn as knn


@module(nn.Conv2d)
def conv2d(ctx, m, x):
    leaf = ctx.facade(lambda: knn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                         m.dilation, m.groups, m.bias is not None, m.padding_mode))
    return ctx.image(leaf(ctx.nhwc(x)))
