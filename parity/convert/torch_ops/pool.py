"""Pooling onto the facade: max and average pools (symmetric padding, -inf for max, ceil_mode, torch's
divisors), adaptive pools of any output size (torch's bins), as modules and as functions."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from parity.convert.torch_ops.table import function, module
from tf_impl import nn as knn


def _pool(ctx, make, x):
    return ctx.image(ctx.facade(make)(ctx.nhwc(x)))


@module(nn.MaxPool2d)
def max_pool_module(ctx, m, x):
    return _pool(ctx, lambda: knn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices,
                                            m.ceil_mode), x)


@function(F.max_pool2d)
def max_pool2d(ctx, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _pool(ctx, lambda: knn.MaxPool2d(kernel_size, stride or None, padding, dilation, return_indices,
                                            ceil_mode), x)


@module(nn.AvgPool2d)
def avg_pool_module(ctx, m, x):
    return _pool(ctx, lambda: knn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                                            m.divisor_override), x)


@function(F.avg_pool2d)
def avg_pool2d(ctx, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _pool(ctx, lambda: knn.AvgPool2d(kernel_size, stride or None, padding, ceil_mode, count_include_pad,
                                            divisor_override), x)


@module(nn.AdaptiveAvgPool2d)
def adaptive_avg_module(ctx, m, x):
    return _pool(ctx, lambda: knn.AdaptiveAvgPool2d(m.output_size), x)


@module(nn.AdaptiveMaxPool2d)
def adaptive_max_module(ctx, m, x):
    return _pool(ctx, lambda: knn.AdaptiveMaxPool2d(m.output_size, m.return_indices), x)


@function(F.adaptive_avg_pool2d)
def adaptive_avg_pool2d(ctx, x, output_size):
    return _pool(ctx, lambda: knn.AdaptiveAvgPool2d(output_size), x)


@function(F.adaptive_max_pool2d)
def adaptive_max_pool2d(ctx, x, output_size, return_indices=False):
    return _pool(ctx, lambda: knn.AdaptiveMaxPool2d(output_size, return_indices), x)
