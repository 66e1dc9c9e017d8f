"""``nn.Linear`` onto the facade's ``Linear`` (Keras ``Dense``), on torch's last dim of a tensor of any rank
(ConvNeXt's channels-last MLP included)."""
from __future__ import annotations

from torch import nn

from parity.convert.torch_ops.table import module
from tf_impl import nn as knn


@module(nn.Linear)
def linear(ctx, m, x):
    k, layout = ctx.last_axis_last(x)
    if k.shape[-1] is None:  # the features merge free H and W (a view of a map): Dense needs their number
        ctx.static(f"a Linear reads {m.in_features} features made of free sizes")
    leaf = ctx.facade(lambda: knn.Linear(m.in_features, m.out_features, m.bias is not None))
    return ctx.out(leaf(k), layout)
