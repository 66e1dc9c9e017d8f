"""Layout rules, in one place for both directions: which axis is channels, and how the axes of a value in
one framework map onto the axes of its twin in the other.

A value's *layout* is a permutation ``p`` of its source axes: the destination tensor is the source tensor
transposed by ``p`` (``dst.shape[i] == src.shape[p[i]]``, numpy's ``transpose`` convention). An image map
is NCHW in torch and NHWC in Keras, so torch -> Keras carries it with ``TO_NHWC`` and Keras -> torch with
``TO_NCHW``; every other value starts with the identity.

Converters track one layout per value and change it instead of moving data where they can:

- a source ``permute``/``transpose`` changes only the layout (:func:`after_permute`): ConvNeXt's
  channels-last LayerNorm costs nothing in Keras;
- a source ``reshape``/``view``/``flatten`` runs as a destination reshape when every group of merged or
  split axes is contiguous and in order in the destination; otherwise the fewest axes are moved first
  (:func:`plan_reshape`): ShuffleNet's channel shuffle becomes reshape, transpose of the last two axes,
  reshape;
- a source reduction, concatenation or split names source dims; :func:`dst_axis` says which destination
  axis holds them;
- an op that needs a given layout (a conv needs ``TO_NHWC`` in Keras) gets the transpose from
  :func:`transpose_between`.

The flatten-order rule: a flatten of an image map that feeds a ``Linear``/``Dense`` is not transposed at
run time; Keras flattens H, W, C and the weight transfer reorders that layer's rows
(``parity.weight_transfer``: C, H, W <-> H, W, C). Elsewhere a flatten is exact by :func:`plan_reshape`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TO_NHWC = (0, 2, 3, 1)  # torch NCHW -> Keras NHWC: channels move from axis 1 to the last axis
TO_NCHW = (0, 3, 1, 2)  # Keras NHWC -> torch NCHW


def to_nhwc(a: np.ndarray) -> np.ndarray:
    """An NCHW array as NHWC (contiguous); arrays of another rank are returned as they are."""
    return np.ascontiguousarray(a.transpose(TO_NHWC)) if a.ndim == 4 else a


def to_nchw(a: np.ndarray) -> np.ndarray:
    """An NHWC array as NCHW (a view); arrays of another rank are returned as they are."""
    return a.transpose(TO_NCHW) if a.ndim == 4 else a


def identity(rank: int) -> tuple:
    return tuple(range(rank))


def inverse(p) -> tuple:
    inv = [0] * len(p)
    for i, a in enumerate(p):
        inv[a] = i
    return tuple(inv)


def _dim(dim: int, rank: int) -> int:
    if not -rank <= dim < rank:
        raise ValueError(f"dim {dim} is out of range for a rank-{rank} tensor")
    return dim % rank


def dst_axis(p, src_dim: int) -> int:
    """The destination axis that holds source dim ``src_dim`` (negative dims count from the end)."""
    return tuple(p).index(_dim(src_dim, len(p)))


def after_permute(p, perm) -> tuple:
    """The layout of ``out = x.permute(perm)`` (source op) when the destination tensor of ``x`` (layout
    ``p``) is reused as it is: no data moves."""
    inv = inverse(tuple(_dim(d, len(perm)) for d in perm))
    return tuple(inv[a] for a in p)


def transpose_between(p_from, p_to) -> tuple:
    """The destination transpose that turns a tensor of layout ``p_from`` into layout ``p_to``."""
    inv = inverse(p_from)
    return tuple(inv[a] for a in p_to)


def expand_rank(p, rank: int) -> tuple:
    """The layout of a value of layout ``p`` seen as a ``rank``-D tensor with leading size-1 axes, as
    broadcasting sees it (a ``(C, 1, 1)`` scale against an NCHW map)."""
    extra = rank - len(p)
    if extra < 0:
        raise ValueError(f"cannot see a rank-{len(p)} tensor as rank {rank}")
    return tuple(range(extra)) + tuple(a + extra for a in p)


@dataclass(frozen=True)
class ReshapePlan:
    """A source reshape carried out on the destination tensor: transpose by ``pre`` (None: no data moves),
    then reshape to ``shape``; the result has layout ``layout``. ``copies[i]`` is the axis of the
    (transposed) input that destination output axis ``i`` copies one to one, or None for a merged, split or
    new axis: a converter may read copied sizes at run time (a free H or W) and must fix the others."""

    pre: tuple | None
    shape: tuple
    layout: tuple
    copies: tuple


def _groups(src_in: tuple, src_out: tuple) -> list[tuple[list, list]]:
    """Groups of consecutive source axes ``(in axes, out axes)`` with equal products: what a reshape merges
    or splits. Size-1 axes join the group before them (the first group when none is before)."""
    big_in = [a for a, s in enumerate(src_in) if s != 1]
    big_out = [a for a, s in enumerate(src_out) if s != 1]
    groups, i, j = [], 0, 0
    while i < len(big_in) or j < len(big_out):
        gin, gout, pin, pout = [], [], 1, 1
        while True:
            if pin <= pout and i < len(big_in):
                gin.append(big_in[i]); pin *= src_in[big_in[i]]; i += 1  # noqa: E702
            elif j < len(big_out):
                gout.append(big_out[j]); pout *= src_out[big_out[j]]; j += 1  # noqa: E702
            else:
                break
            if pin == pout and gin and gout:
                break
        if pin != pout:
            raise ValueError(f"cannot reshape {src_in} to {src_out}")
        groups.append((gin, gout))
    if not groups:  # every axis has size 1
        groups.append(([], []))
    for axes, shape, side in ((src_in, src_in, 0), (src_out, src_out, 1)):
        for a, s in enumerate(shape):
            if s == 1:
                owner = next((g for g in reversed(groups) if g[side] and g[side][0] < a), groups[0])
                owner[side].append(a)
    for g in groups:
        g[0].sort()
        g[1].sort()
    return groups


def plan_reshape(p, src_in: tuple, src_out: tuple) -> ReshapePlan:
    """How to run source ``x.reshape(src_out)`` (``x`` of shape ``src_in``, layout ``p``) on the destination
    tensor: see :class:`ReshapePlan`. Size-1 axes never force a transpose."""
    src_in, src_out, p = tuple(src_in), tuple(src_out), tuple(p)
    if int(np.prod(src_in)) != int(np.prod(src_out)):
        raise ValueError(f"cannot reshape {src_in} to {src_out}")
    groups = _groups(src_in, src_out)
    group_of = {a: k for k, (gin, _) in enumerate(groups) for a in gin}
    big = [a for a in p if src_in[a] != 1]
    order = list(dict.fromkeys(group_of[a] for a in big)) or [0]  # groups by first appearance in p
    order += [k for k in range(len(groups)) if k not in order]
    wanted = [a for k in order for a in groups[k][0] if src_in[a] != 1]
    pre = None
    if big != wanted:
        target = tuple(a for k in order for a in groups[k][0])
        pre = transpose_between(p, target)
        p = target
    layout = tuple(a for k in order for a in groups[k][1])
    dst_in_shape = [src_in[a] for a in p]
    copies = []
    for k in order:
        gin, gout = groups[k]
        one_to_one = len([a for a in gin if src_in[a] != 1]) == 1 and len(gout) == 1 and len(gin) == 1
        for a in gout:
            copies.append(p.index(gin[0]) if one_to_one else None)
    assert all(c is None or dst_in_shape[c] == src_out[layout[i]] for i, c in enumerate(copies))
    return ReshapePlan(pre, tuple(src_out[a] for a in layout), layout, tuple(copies))
