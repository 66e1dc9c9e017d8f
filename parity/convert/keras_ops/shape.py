"""Layers that move, merge or select values: ``Flatten``, ``Reshape``, ``Permute``, ``Concatenate``, the
elementwise merges, ``Dropout``, ``Identity``. Their Keras axes become torch dims through
:mod:`parity.layout`."""
from __future__ import annotations

from parity.convert.keras_ops.base import Call, Spec, Value, converts, torch_layout
from parity.layout import after_permute, identity, plan_reshape, transpose_between
from parity.weight_transfer import flatten_hwc
from tf_impl.backend import keras


def _dense_readers(call: Call, tensor) -> list[bool]:
    """For each final reader of ``tensor`` (Dropouts looked through): whether it is a Dense whose weight
    rows the transfer reorders from torch's C, H, W flatten to Keras's H, W, C."""
    out = []
    for node in call.readers(tensor):
        op = node.operation
        if isinstance(op, keras.layers.Dropout):
            out += _dense_readers(call, node.outputs[0])
        else:
            out.append(isinstance(op, keras.layers.Dense) and flatten_hwc(op) is not None)
    return out


@converts(keras.layers.Flatten)
def flatten(call: Call) -> Spec:
    x = call.x
    call.channels_last()
    layout = torch_layout(x.rank)
    if layout == identity(x.rank) or all(s == 1 for s in x.shape[1:3]):
        return Spec("Flatten")  # torch's order is Keras's
    dense = _dense_readers(call, call.node.outputs[0])
    if dense and all(dense):
        return Spec("Flatten", (), {}, "torch's C, H, W order: the next Dense's weight rows are reordered for it")
    call.require(not any(dense), "the flattened map feeds a Dense and another layer: the Dense expects torch's "
                                 "C, H, W order, the other Keras's H, W, C")
    return Spec("Flatten", (transpose_between(layout, identity(x.rank)),), {}, "Keras's H, W, C order")


_BATCH, _FREE = 10039, (10007, 10009, 10037, 10061, 10067)  # stand-in sizes for None: distinct primes


def _sizes(value: Value) -> list[int]:
    free = iter(_FREE)
    return [_BATCH] + [s if s is not None else next(free) for s in value.shape[1:]]


@converts(keras.layers.Reshape)
def reshape(call: Call) -> Spec:
    """Keras's reshape on Keras's axis order, planned on the torch layout (``plan_reshape``): the fewest axes
    moved first, then the reshape, then the result put in its torch layout; a move of size-1 axes only is a
    reshape too."""
    x, out = call.x, call.outputs[0]
    src_in = _sizes(x)
    free = [i for i, s in enumerate(out.shape) if s is None and i > 0]
    call.require(len(free) <= 1, f"output shape {out.shape} has more than one size known only at run time")
    known = 1
    for s in out.shape[1:]:
        known *= s or 1
    rest = 1
    for s in src_in[1:]:
        rest *= s
    src_out = [_BATCH] + [s if s is not None else rest // known for s in out.shape[1:]]
    plan = plan_reshape(torch_layout(x.rank), src_in, src_out)
    call.require(plan.layout[0] == 0, f"cannot reshape {x.shape} to {out.shape} keeping the batch axis first")
    target = torch_layout(out.rank)
    big = lambda layout: [a for a in layout if src_out[a] != 1]  # noqa: E731
    layout, post = plan.layout, None
    if layout != target:
        if big(layout) == big(target):
            layout = target  # only size-1 axes differ: the same bytes, reshaped
        else:
            post = transpose_between(layout, target)
    shape = tuple(-1 if out.shape[a] is None else src_out[a] for a in layout[1:])
    kwargs = {k: v for k, v in (("pre", plan.pre), ("post", post)) if v is not None}
    return Spec("Reshape", (shape,), kwargs)


@converts(keras.layers.Permute)
def permute(call: Call) -> Spec:
    x = call.x
    perm = (0, *call.config["dims"])
    moved = transpose_between(after_permute(torch_layout(x.rank), perm), torch_layout(x.rank))
    return Spec("Identity") if moved == identity(x.rank) else Spec("Permute", (moved,))


def _same_rank(call: Call) -> Value:
    ranks = {v.rank for v in call.inputs}
    call.require(len(ranks) == 1, f"inputs of different ranks {[v.shape for v in call.inputs]} are not supported")
    return call.inputs[0]


@converts(keras.layers.Concatenate)
def concatenate(call: Call) -> Spec:
    first = _same_rank(call)
    dim = call.dim(call.config["axis"], first)
    return Spec("Concatenate", (), {"dim": dim} if dim != 1 else {})


def _merge(cls: str):
    def convert(call: Call) -> Spec:
        _same_rank(call)
        return Spec(cls)
    convert.__name__ = cls.lower()
    return convert


for _name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
    converts(getattr(keras.layers, _name))(_merge(_name))


@converts(keras.layers.Dropout)
def dropout(call: Call) -> Spec:
    x, c = call.x, call.config
    if c["noise_shape"] is None:
        return Spec("Dropout", (c["rate"],))
    call.require(len(c["noise_shape"]) == x.rank, f"noise_shape {c['noise_shape']} does not fit shape {x.shape}")
    noise = tuple(-1 if c["noise_shape"][a] is None else c["noise_shape"][a] for a in torch_layout(x.rank))
    return Spec("Dropout", (c["rate"], noise))


@converts(keras.layers.Identity)
def identity_layer(call: Call) -> Spec:
    return Spec("Identity")
