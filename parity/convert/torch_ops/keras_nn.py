"""The Keras -> torch facade (``torch_impl/keras_nn.py``) back onto the Keras layers it mirrors, so that the
automatic torch twin of a Keras model converts back (the round trip Keras -> torch -> Keras).

Each ``keras_nn`` module keeps Keras's own arguments, so each converter rebuilds the one Keras layer the
module twins, with those arguments, named like the original Keras layer (the torch twin's ``KERAS_NAMES``,
else its module path): ``parity.transfer`` then pairs them by the same rule and layout table as the first
hop. These modules are fx leaves (they compute TF's 'same' padding from the input size, which fx cannot
trace). A value reaches a Keras layer in Keras's own axis order: NHWC for a 4-D map (torch NCHW), torch's order
otherwise; where a module works along one torch dim (``dim``: Dense, softmax, BatchNormalization's
channels, Rescaling lists, Normalization, LayerNormalization, LayerScale), that dim becomes the Keras axis
the layer works on.
"""
from __future__ import annotations

from parity import layout as L
from parity.convert.torch_ops.context import reshape
from parity.convert.torch_ops.table import Tensor, module
from parity.weight_transfer import keras_names
from tf_impl.backend import keras
from torch_impl import keras_nn as K

KL = keras.layers


def _layer(ctx, make):
    """The Keras layer of this module, made by ``make(name)`` once per module path (a module called twice
    shares its layer), named like the Keras layer its torch twin came from, built with zero initializers
    (the transfer writes every weight). A Keras layer that refuses the arguments is an unsupported op."""
    layer = ctx.build.leaves.get(ctx.path)
    if layer is None:
        name = keras_names(ctx.build.module).get(ctx.path, ctx.path)
        try:
            layer = make(name)
        except (ValueError, TypeError) as exc:
            raise ctx.unsupported(f"Keras refuses the layer: {exc}") from None
        ctx.build.names.add(name)
        ctx.build.zero_initialized([layer])
        ctx.build.leaves[ctx.path] = layer
    return layer


def _keras_order(rank: int) -> tuple:
    """The layout of a value in Keras's own axis order: NHWC for a 4-D map, torch's order otherwise."""
    return L.TO_NHWC if rank == 4 else L.identity(rank)


def _keras_view(ctx, x):
    """``(Keras tensor, layout)`` of ``x`` in Keras's own axis order."""
    t = ctx.tensor(x)
    layout = _keras_order(t.rank)
    return ctx.in_layout(t, layout), layout


def _along(ctx, x, dim):
    """``(Keras tensor, layout)`` of ``x`` with torch dim ``dim`` as the Keras last axis, the other axes in
    Keras's own order (a 4-D map along its channels: NHWC)."""
    t = ctx.tensor(x)
    d = dim % t.rank
    if d == 0:
        raise ctx.unsupported("a layer along the batch axis")
    layout = tuple(a for a in _keras_order(t.rank) if a != d) + (d,)
    return ctx.in_layout(t, layout), layout


def _padding(m) -> str:
    """Keras's ``padding`` of a keras_nn conv or pool: 'same' padded at run time, or as torch's static
    symmetric padding (TF's 'same' at stride 1 with an odd window); else 'valid' (a 1x1 'same' pads nothing)."""
    return "same" if m.pad_same or any(m.padding) else "valid"


# --- activations ------------------------------------------------------------------------------------------

@module(K.Activation)
def activation(ctx, m, x):
    if m.activation not in K.ALONG_AXIS and m.activation not in K.ELEMENTWISE or m.activation == "gelu_tanh":
        raise ctx.unsupported(f"activation {m.activation!r} has no Keras activation name")
    if m.activation in K.ALONG_AXIS:  # Keras's softmax runs along its last axis
        k, layout = _along(ctx, x, m.dim)
    else:
        t = ctx.tensor(x)
        k, layout = t.k, t.layout
    return ctx.out(_layer(ctx, lambda n: KL.Activation(m.activation, name=n))(k), layout)


@module(K.ReLU)
def relu(ctx, m, x):
    t = ctx.tensor(x)
    layer = _layer(ctx, lambda n: KL.ReLU(m.max_value, m.negative_slope, m.threshold, name=n))
    return ctx.out(layer(t.k), t.layout)


@module(K.LeakyReLU)
def leaky_relu(ctx, m, x):
    t = ctx.tensor(x)
    return ctx.out(_layer(ctx, lambda n: KL.LeakyReLU(m.negative_slope, name=n))(t.k), t.layout)


# --- convolutions and Dense -------------------------------------------------------------------------------

@module(K.Conv2D)
def conv2d(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.Conv2D(m.out_channels, m.kernel_size, m.stride, _padding(m),
                                            dilation_rate=m.dilation, groups=m.groups, activation=m.activation,
                                            use_bias=m.bias is not None, name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.DepthwiseConv2D)
def depthwise_conv2d(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.DepthwiseConv2D(m.kernel_size, m.stride, _padding(m),
                                                     depth_multiplier=m.out_channels // m.in_channels,
                                                     dilation_rate=m.dilation, activation=m.activation,
                                                     use_bias=m.bias is not None, name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.SeparableConv2D)
def separable_conv2d(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.SeparableConv2D(m.out_channels, m.kernel_size, m.stride, _padding(m),
                                                     dilation_rate=m.dilation, depth_multiplier=m.depth_multiplier,
                                                     activation=m.activation, use_bias=m.bias is not None, name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.Dense)
def dense(ctx, m, x):
    k, layout = _along(ctx, x, m.dim)
    if k.shape[-1] is None:
        ctx.static(f"a Dense reads {m.in_features} features made of free sizes")
    layer = _layer(ctx, lambda n: KL.Dense(m.out_features, m.activation, m.bias is not None, name=n))
    return ctx.out(layer(k), layout)


# --- normalisations ---------------------------------------------------------------------------------------

@module(K.BatchNormalization)
def batch_norm(ctx, m, x):
    """Keras's own BatchNormalization: ``keras_nn.BatchNormalization`` trains like Keras (the biased batch
    variance in the moving statistics), so the plain Keras layer is its faithful twin; Keras's momentum is
    1 - torch's."""
    k, layout = _along(ctx, x, 1)
    layer = _layer(ctx, lambda n: KL.BatchNormalization(-1, 1.0 - m.momentum, m.eps, center=m.bias is not None,
                                                        scale=m.weight is not None, name=n))
    return ctx.out(layer(k), layout)


@module(K.LayerNormalization)
def layer_norm(ctx, m, x):
    if len(m.dims) != 1:
        raise ctx.unsupported(f"LayerNormalization over dims {m.dims}: only one axis is supported")
    k, layout = _along(ctx, x, m.dims[0])
    layer = _layer(ctx, lambda n: KL.LayerNormalization(-1, m.eps, center=m.bias is not None,
                                                        scale=m.weight is not None, name=n))
    return ctx.out(layer(k), layout)


@module(K.Rescaling)
def rescaling(ctx, m, x):
    if isinstance(m.scale, (list, tuple)) or isinstance(m.offset, (list, tuple)):
        k, layout = _along(ctx, x, m.dim)  # a list scales Keras's last axis
    else:
        t = ctx.tensor(x)
        k, layout = t.k, t.layout
    return ctx.out(_layer(ctx, lambda n: KL.Rescaling(m.scale, m.offset, name=n))(k), layout)


@module(K.Normalization)
def normalization(ctx, m, x):
    """Keras's floor on the standard deviation is ``keras.config.epsilon()``: another ``epsilon`` has no
    Keras layer. Constants stay constants; adapted statistics are the layer's ``mean`` and ``variance``."""
    if m.epsilon != keras.config.epsilon():
        raise ctx.unsupported(f"Normalization with epsilon {m.epsilon} (Keras's is keras.config.epsilon() = "
                              f"{keras.config.epsilon()})")
    k, layout = _along(ctx, x, m.dim)
    consts = {"mean": m.mean_value, "variance": m.variance_value} if m.constants else {}
    layer = _layer(ctx, lambda n: KL.Normalization(-1, invert=m.invert, name=n, **consts))
    return ctx.out(layer(k), layout)


@module(K.LayerScale)
def layer_scale(ctx, m, x):
    from keras.src.applications.convnext import LayerScale  # ConvNeXt's layer: not in keras.layers

    k, layout = _along(ctx, x, m.dim)
    # init_values only fills gamma before the transfer overwrites it; the torch module does not keep it
    layer = _layer(ctx, lambda n: LayerScale(0.0, m.gamma.numel(), name=n))
    return ctx.out(layer(k), layout)


@module(K.Dropout)
def dropout(ctx, m, x):
    """The identity at inference; ``noise_shape`` (torch's dim order, -1 = the input's size) in the order
    of the Keras tensor it is applied to."""
    t = ctx.tensor(x)
    noise = None if m.noise_shape is None else tuple(None if m.noise_shape[a] == -1 else m.noise_shape[a]
                                                     for a in t.layout)
    return ctx.out(_layer(ctx, lambda n: KL.Dropout(m.rate, noise, name=n))(t.k), t.layout)


@module(K.Identity)
def identity(ctx, m, x):
    t = ctx.tensor(x)
    return ctx.out(_layer(ctx, lambda n: KL.Identity(name=n))(t.k), t.layout)


# --- pooling, padding, resizing ---------------------------------------------------------------------------

@module(K.MaxPooling2D)
def max_pool(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.MaxPooling2D(m.pool_size, m.strides, _padding(m), name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.AveragePooling2D)
def avg_pool(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.AveragePooling2D(m.pool_size, m.strides, _padding(m), name=n))
    return ctx.image(layer(ctx.nhwc(x)))


def _global_pool(ctx, m, x, cls):
    k = _layer(ctx, lambda n: cls(keepdims=m.keepdims, name=n))(ctx.nhwc(x))
    return ctx.image(k) if m.keepdims else ctx.out(k, L.identity(2))


@module(K.GlobalAveragePooling2D)
def global_avg_pool(ctx, m, x):
    return _global_pool(ctx, m, x, KL.GlobalAveragePooling2D)


@module(K.GlobalMaxPooling2D)
def global_max_pool(ctx, m, x):
    return _global_pool(ctx, m, x, KL.GlobalMaxPooling2D)


@module(K.ZeroPadding2D)
def zero_padding(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.ZeroPadding2D(((m.top, m.bottom), (m.left, m.right)), name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.Cropping2D)
def cropping(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.Cropping2D(((m.top, m.bottom), (m.left, m.right)), name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.UpSampling2D)
def up_sampling(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.UpSampling2D(m.size, interpolation=m.interpolation, name=n))
    return ctx.image(layer(ctx.nhwc(x)))


@module(K.Resize)
def resize(ctx, m, x):
    layer = _layer(ctx, lambda n: KL.Resizing(*m.size, interpolation=m.interpolation, name=n))
    return ctx.image(layer(ctx.nhwc(x)))


# --- moving values ----------------------------------------------------------------------------------------

def _feeds_dense(node, gm) -> bool:
    """Whether every use of ``node`` is a ``keras_nn.Dense`` on the last dim, through Dropouts only."""
    users = list(node.users)
    if not users:
        return False
    for user in users:
        mod = gm.get_submodule(user.target) if user.op == "call_module" else None
        if type(mod) is K.Dense and mod.dim in (-1, 1):
            continue
        if type(mod) is not K.Dropout or not _feeds_dense(user, gm):
            return False
    return True


@module(K.Flatten)
def flatten(ctx, m, x):
    """``order=None`` on a map whose readers are all Dense: torch flattens C, H, W and its Dense rows are in
    that order; Keras's ``Flatten`` of the NHWC map reads H, W, C, and the transfer reorders that Dense's rows
    (``parity.weight_transfer.flatten_hwc``), as on the first hop. Otherwise the values are flattened in
    torch's order (after ``order``), a reshape that moves only what it must."""
    t = ctx.tensor(x)
    if m.order is None and t.rank == 4 and _feeds_dense(ctx.node, ctx.build.gm):
        k = ctx.nhwc(t)
        if None in tuple(k.shape)[1:3]:
            ctx.static("a Flatten of a map of free size feeds a Dense")
        return ctx.out(_layer(ctx, lambda n: KL.Flatten(name=n))(k), L.identity(2))
    if m.order is not None:
        t = Tensor(t.k, L.after_permute(t.layout, m.order), tuple(t.shape[d] for d in m.order))
    return reshape(ctx, t, ctx.out_shape, keras_names(ctx.build.module).get(ctx.path, ctx.path))


@module(K.Reshape)
def reshape_module(ctx, m, x):
    """``pre`` and ``post`` are permutations of the torch value: layout changes, no data moved."""
    t = ctx.tensor(x)
    if m.pre is not None:
        t = Tensor(t.k, L.after_permute(t.layout, m.pre), tuple(t.shape[d] for d in m.pre))
    shape = ctx.out_shape if m.post is None else tuple(ctx.out_shape[d] for d in L.inverse(m.post))
    t = reshape(ctx, t, shape, keras_names(ctx.build.module).get(ctx.path, ctx.path))
    if m.post is None:
        return t
    return Tensor(t.k, L.after_permute(t.layout, m.post), ctx.out_shape)


@module(K.Permute)
def permute(ctx, m, x):
    t = ctx.tensor(x)
    return Tensor(t.k, L.after_permute(t.layout, m.dims), ctx.out_shape)


# --- merges -----------------------------------------------------------------------------------------------

def _merge_inputs(ctx, xs):
    """The Keras tensors of ``xs`` in the first one's layout, and that layout (Keras's merges broadcast size-1
    axes of tensors of one rank, as an SE block's scale)."""
    ts = [ctx.tensor(v) for v in xs]
    if len({t.rank for t in ts}) > 1:
        raise ctx.unsupported(f"a merge of tensors of ranks {[t.rank for t in ts]}")
    layout = ts[0].layout
    return [t.k if t.layout == layout else ctx.in_layout(t, layout, f"transpose{i}") for i, t in enumerate(ts)], layout


def _merge(ctx, xs, cls, op, constant=None):
    """``cls`` (a Keras merge layer) over two or more inputs, then ``op(value, constant)`` (``keras.ops``,
    what a Keras model's ``x + 3.0`` is) with a number."""
    ks, layout = _merge_inputs(ctx, xs)
    k = _layer(ctx, lambda n: cls(name=n))(ks) if len(ks) > 1 else ks[0]
    if constant is not None:
        k = op(k, constant)
    return ctx.out(k, layout)


@module(K.Add)
def add(ctx, m, *xs):
    return _merge(ctx, xs, KL.Add, keras.ops.add, m.constant)


@module(K.Multiply)
def multiply(ctx, m, *xs):
    return _merge(ctx, xs, KL.Multiply, keras.ops.multiply, m.constant)


@module(K.Maximum)
def maximum(ctx, m, *xs):
    return _merge(ctx, xs, KL.Maximum, keras.ops.maximum, m.constant)


@module(K.Minimum)
def minimum(ctx, m, *xs):
    return _merge(ctx, xs, KL.Minimum, keras.ops.minimum, m.constant)


@module(K.Average)
def average(ctx, m, *xs):
    return _merge(ctx, xs, KL.Average, None)


def _with_constant(ctx, m, xs, op):
    """``a op b``, or ``x op constant`` / ``constant op x``, as ``keras.ops`` (Keras has no Divide layer)."""
    ks, layout = _merge_inputs(ctx, xs)
    if m.constant is None:
        return ctx.out(op(*ks), layout)
    return ctx.out(op(m.constant, ks[0]) if m.constant_first else op(ks[0], m.constant), layout)


@module(K.Subtract)
def subtract(ctx, m, *xs):
    if m.constant is None:
        ks, layout = _merge_inputs(ctx, xs)
        return ctx.out(_layer(ctx, lambda n: KL.Subtract(name=n))(ks), layout)
    return _with_constant(ctx, m, xs, keras.ops.subtract)


@module(K.Divide)
def divide(ctx, m, *xs):
    return _with_constant(ctx, m, xs, keras.ops.divide)


@module(K.Concatenate)
def concatenate(ctx, m, *xs):
    ks, layout = _merge_inputs(ctx, xs)
    return ctx.out(_layer(ctx, lambda n: KL.Concatenate(L.dst_axis(layout, m.dim), name=n))(ks), layout)
