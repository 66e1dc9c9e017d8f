"""Keras layers that core Keras lacks, each the exact twin of a torch op, written with ``keras.ops`` only.

Every class here is plain Keras 3 (it uses ``keras`` and ``keras.ops``, nothing of TensorFlow and nothing of
this package), so ``parity convert`` copies its source into an emitted ``<name>_keras.py`` as it is, and that
file also runs on Keras's torch backend. Every layer is registered as serializable, so a ``.keras`` file
that uses it loads in Keras safe mode. Their facade modules (torch's arguments, layer names after torch
paths) live in ``tf_impl/nn.py`` and ``tf_impl/layers.py``.

Sizes are read with ``keras.ops.shape``: a static dimension stays a Python int (and the output shape
static), a free one (H, W of a model built with ``None``) is computed at run time.
"""
from __future__ import annotations

from tf_impl.backend import keras

PACKAGE = "backbone_parity"  # the registration package of every layer here (``backbone_parity>ConstantPad2D``)


def _ge(a, b):
    """``1 if a >= b else 0``, as a Python int for static sizes and a tensor for run-time ones."""
    if isinstance(a, int) and isinstance(b, int):
        return int(a >= b)
    return keras.ops.cast(keras.ops.greater_equal(a, b), "int32")


def _ceil_pool_extra(size, kernel, stride, dilation, padding):
    """Rows to add after ``size + 2 * padding`` so that a 'valid' pool gives torch's ``ceil_mode=True`` count:
    ``ceil((size + 2p - d(k-1) - 1) / s) + 1``, less one when the last window would start in the right padding
    (torch drops it). Never negative."""
    span = dilation * (kernel - 1) + 1
    # ceil division written for non-negative operands only: tf2onnx turns an integer // into ONNX's Div,
    # which truncates (a negative numerator would round the other way)
    out = (size + 2 * padding - span + stride - 1) // stride + 1
    out = out - _ge((out - 1) * stride, size + padding)
    extra = (out - 1) * stride + span - (size + 2 * padding)
    return max(extra, 0) if isinstance(extra, int) else keras.ops.maximum(extra, 0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConstantPad2D(keras.layers.Layer):
    """Pads H and W of an NHWC tensor with ``value``: ``padding = (ph, pw)`` on both sides (torch
    ``F.pad(..., value=value)``). With ``ceil_pool = (kernel, stride, dilation)`` (pairs), bottom and right get
    the rows that torch's ``ceil_mode=True`` pooling reads beyond the input, computed from the input size
    at run time."""

    def __init__(self, padding, value=0.0, ceil_pool=None, **kwargs):
        super().__init__(**kwargs)
        self.padding, self.value = tuple(padding), float(value)
        self.ceil_pool = None if ceil_pool is None else tuple(tuple(v) for v in ceil_pool)

    def call(self, x):
        shape = keras.ops.shape(x)
        widths = [[0, 0], [0, 0], [0, 0], [0, 0]]
        for i, p in enumerate(self.padding):
            extra = 0
            if self.ceil_pool is not None:
                (k, s, d) = (v[i] for v in self.ceil_pool)
                extra = _ceil_pool_extra(shape[1 + i], k, s, d, p)
            widths[1 + i] = [p, p + extra]
        return keras.ops.pad(x, widths, constant_values=self.value)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "value": self.value, "ceil_pool": self.ceil_pool}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AvgPool2D(keras.layers.Layer):
    """torch ``AvgPool2d`` where Keras's ``AveragePooling2D`` cannot follow: ``count_include_pad=False`` with
    padding, ``ceil_mode=True`` (torch divides a window that overhangs the padded input by the part inside
    it), or ``divisor_override``. The input is zero-padded like torch, pooled 'valid', and divided by the
    pooled mask of the positions torch counts (the input, or the input and its padding)."""

    def __init__(self, kernel_size, strides, padding=(0, 0), ceil_mode=False, count_include_pad=True,
                 divisor_override=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides, self.padding = tuple(kernel_size), tuple(strides), tuple(padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def call(self, x):
        shape = keras.ops.shape(x)
        ends = []  # (before, after) per spatial axis: torch's padding, plus the ceil-mode overhang after
        for i, (k, s, p) in enumerate(zip(self.kernel_size, self.strides, self.padding)):
            ends.append((p, p + (_ceil_pool_extra(shape[1 + i], k, s, 1, p) if self.ceil_mode else 0)))
        padded = keras.ops.pad(x, [[0, 0], list(ends[0]), list(ends[1]), [0, 0]])
        pooled = keras.ops.average_pool(padded, self.kernel_size, self.strides, "valid")
        if self.divisor_override is not None:
            return pooled * (float(self.kernel_size[0] * self.kernel_size[1]) / float(self.divisor_override))
        if self.count_include_pad:  # the input and torch's padding count; the ceil-mode overhang does not
            (ph, pw) = self.padding
            ones = keras.ops.ones((1, shape[1] + 2 * ph, shape[2] + 2 * pw, 1), dtype=x.dtype)
            mask = keras.ops.pad(ones, [[0, 0], [0, ends[0][1] - ph], [0, ends[1][1] - pw], [0, 0]])
        else:
            ones = keras.ops.ones((1, shape[1], shape[2], 1), dtype=x.dtype)
            mask = keras.ops.pad(ones, [[0, 0], list(ends[0]), list(ends[1]), [0, 0]])
        return pooled / keras.ops.average_pool(mask, self.kernel_size, self.strides, "valid")

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "ceil_mode": self.ceil_mode, "count_include_pad": self.count_include_pad,
                "divisor_override": self.divisor_override}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TorchConv2D(keras.layers.Conv2D):
    """Keras ``Conv2D`` (same kernel, same config) for the two convs Keras's own does not run as torch does:

    - ``groups`` other than 1: run as ``groups`` convolutions of ``in / groups`` channels, concatenated.
      Keras's TensorFlow backend compiles a grouped conv with XLA ("broken on CPU without XLA"), which
      tf2onnx cannot convert; each group's sum is the plain conv's, as in torch's grouped conv.
    - ``strides > 1`` with ``dilation_rate > 1``, which Keras refuses: run at stride 1, then every stride-th
      output kept (the sums torch's strided conv computes).
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), **kwargs):
        super().__init__(filters, kernel_size, strides=1, **kwargs)
        self.strides = (strides, strides) if isinstance(strides, int) else tuple(strides)

    def convolution_op(self, inputs, kernel):
        subsample = max(self.strides) > 1 and max(self.dilation_rate) > 1
        pieces = keras.ops.split(inputs, self.groups, axis=-1) if self.groups > 1 else [inputs]
        kernels = keras.ops.split(kernel, self.groups, axis=-1) if self.groups > 1 else [kernel]
        outs = [keras.ops.conv(x, k, strides=1 if subsample else list(self.strides), padding=self.padding,
                               dilation_rate=self.dilation_rate, data_format=self.data_format)
                for x, k in zip(pieces, kernels)]
        out = outs[0] if len(outs) == 1 else keras.ops.concatenate(outs, axis=-1)
        return out[:, ::self.strides[0], ::self.strides[1], :] if subsample else out


@keras.saving.register_keras_serializable(package=PACKAGE)
class DilatedMaxPool2D(keras.layers.Layer):
    """torch ``MaxPool2d`` with ``dilation > 1`` on an already padded NHWC tensor ('valid'): the maximum of
    the ``kh * kw`` strided slices that a dilated window reads. Keras's pooling has no dilation."""

    def __init__(self, kernel_size, strides, dilation, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides, self.dilation = tuple(kernel_size), tuple(strides), tuple(dilation)

    def call(self, x):
        shape = keras.ops.shape(x)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation
        rows = (shape[1] - dh * (kh - 1) - 1) // sh * sh + 1  # the span of the window starts, plus one
        cols = (shape[2] - dw * (kw - 1) - 1) // sw * sw + 1
        out = None
        for i in range(kh):
            for j in range(kw):
                # keras.ops.slice for the run-time bounds (tf2onnx writes a dynamic x[a:b] with float clamp
                # constants), then a static stride
                piece = keras.ops.slice(x, [0, i * dh, j * dw, 0], [shape[0], rows, cols, shape[3]])[:, ::sh, ::sw, :]
                out = piece if out is None else keras.ops.maximum(out, piece)
        return out

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "dilation": self.dilation}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AdaptivePool2D(keras.layers.Layer):
    """torch ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` on NHWC, any output size: output cell ``i`` of
    ``out`` along an axis of ``size`` pools input rows ``floor(i * size / out)`` to ``ceil((i + 1) * size / out)``
    (torch's bins, which overlap when ``size`` is not a multiple of ``out``). Both reductions are separable
    over the rectangle, so H is pooled first, then W. ``None`` in ``output_size`` keeps that axis."""

    def __init__(self, output_size, mode="avg", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("avg", "max"):
            raise ValueError(f"AdaptivePool2D mode must be 'avg' or 'max', got {mode!r}")
        self.output_size, self.mode = tuple(output_size), mode

    def call(self, x):
        reduce = keras.ops.mean if self.mode == "avg" else keras.ops.max
        for axis, out in ((1, self.output_size[0]), (2, self.output_size[1])):
            if out is None:
                continue
            size, pieces = keras.ops.shape(x)[axis], []
            for i in range(out):
                start, end = (i * size) // out, ((i + 1) * size + out - 1) // out  # non-negative: see above
                begin, length = [0, 0, 0, 0], list(keras.ops.shape(x))  # no -1: the torch backend reads it as 0
                begin[axis], length[axis] = start, end - start
                # keras.ops.slice, not x[a:b]: tf2onnx writes a dynamic StridedSlice with float clamp constants
                pieces.append(reduce(keras.ops.slice(x, begin, length), axis=axis, keepdims=True))
            x = pieces[0] if out == 1 else keras.ops.concatenate(pieces, axis=axis)
        return x

    def compute_output_shape(self, shape):
        return (shape[0], self.output_size[0] or shape[1], self.output_size[1] or shape[2], shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size, "mode": self.mode}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TorchResize(keras.layers.Layer):
    """Base of the resize layers: torch ``F.interpolate``'s index rules on NHWC, by gathering rows and columns.

    - ``nearest``: source index ``min(floor(dst * scale), in - 1)``, torch's legacy rule (TF2's is half-pixel);
      ``nearest-exact``: ``floor((dst + 0.5) * scale)``;
    - ``bilinear``, ``align_corners=False``: source ``max(scale * (dst + 0.5) - 0.5, 0)`` (half-pixel centres);
    - ``bilinear``, ``align_corners=True``: source ``dst * (in - 1) / (out - 1)`` (``F.upsample_bilinear``).

    ``scale`` is ``in / out`` unless torch was given a scale factor (then ``1 / scale_factor``, as torch uses
    it unless ``recompute_scale_factor=True``). Index arithmetic in the input's float type, as torch's CPU kernels
    (float32 for float32 maps, float64 for the float64 training checks); no antialiasing.
    """

    MODES = ("nearest", "nearest-exact", "bilinear")

    def __init__(self, mode="bilinear", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES or (mode != "bilinear" and align_corners):
            raise ValueError(f"{type(self).__name__} supports mode 'bilinear' (align_corners True/False), "
                             f"'nearest' or 'nearest-exact', got mode={mode!r}, align_corners={align_corners!r}")
        self.mode, self.align_corners = mode, bool(align_corners)

    def resize_axis(self, x, axis, out, scale_factor=None):
        """``x`` resized along ``axis`` to ``out`` (an int, or a tensor at run time)."""
        size = keras.ops.shape(x)[axis]
        dtype = keras.backend.standardize_dtype(x.dtype)  # the index arithmetic in the input's float type, as torch
        dst = keras.ops.arange(out, dtype=dtype)
        size_f, out_f = keras.ops.cast(size, dtype), keras.ops.cast(out, dtype)
        # divide_no_nan, not /: the divisor is never 0, but with a fixed ``out`` and a free ``size``, TensorFlow's
        # graph optimizer (tf2onnx's export runs it) folds ``dst * (size / out)`` into a table ``dst * (1 / out)``
        # times ``size``, which rounds differently: nearest 25 -> 25 then reads column 4 for column 5, as
        # 5 * (1 / 25) = 0.19999999 and 0.19999999 * 25 = 4.9999995; divide_no_nan is an op it does not fold
        if self.align_corners:
            scale = keras.ops.divide_no_nan(size_f - 1.0, keras.ops.maximum(out_f - 1.0, 1.0))  # out == 1: index 0
        elif scale_factor is not None:
            scale = keras.ops.cast(1.0 / scale_factor, dtype)
        else:
            scale = keras.ops.divide_no_nan(size_f, out_f)
        last = size - 1
        if self.mode == "nearest":
            index = keras.ops.minimum(keras.ops.cast(keras.ops.floor(dst * scale), "int32"), last)
            return keras.ops.take(x, index, axis=axis)
        if self.mode == "nearest-exact":
            index = keras.ops.minimum(keras.ops.cast(keras.ops.floor((dst + 0.5) * scale), "int32"), last)
            return keras.ops.take(x, index, axis=axis)
        src = dst * scale if self.align_corners else keras.ops.maximum(scale * (dst + 0.5) - 0.5, 0.0)
        low = keras.ops.minimum(keras.ops.cast(keras.ops.floor(src), "int32"), last)
        high = keras.ops.minimum(low + 1, last)
        weight = keras.ops.clip(src - keras.ops.cast(low, dtype), 0.0, 1.0)
        weight = keras.ops.reshape(weight, (-1, 1) if axis == 2 else (-1, 1, 1))
        a, b = keras.ops.take(x, low, axis=axis), keras.ops.take(x, high, axis=axis)
        return a * (1.0 - weight) + b * weight

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "align_corners": self.align_corners}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeLikeLayer(TorchResize):
    """Resizes ``x`` (NHWC) to the spatial size of ``ref`` (``F.interpolate(x, size=ref.shape[-2:])``); the
    index rules are :class:`TorchResize`'s. ``ref_axes``: the axes of ``ref`` that hold torch's H and W."""

    def __init__(self, mode="bilinear", align_corners=False, ref_axes=(1, 2), **kwargs):
        super().__init__(mode, align_corners, **kwargs)
        self.ref_axes = tuple(ref_axes)

    def call(self, x, ref):
        shape = keras.ops.shape(ref)
        x = self.resize_axis(x, 1, shape[self.ref_axes[0]])
        return self.resize_axis(x, 2, shape[self.ref_axes[1]])

    def compute_output_shape(self, x_shape, ref_shape):
        return (x_shape[0], ref_shape[self.ref_axes[0]], ref_shape[self.ref_axes[1]], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "ref_axes": self.ref_axes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Upsample2D(TorchResize):
    """torch ``nn.Upsample`` / ``F.interpolate`` with a fixed ``size`` or a ``scale_factor`` on NHWC. With a
    scale factor the output is ``floor(in * scale_factor)`` and the source index uses ``1 / scale_factor``
    (torch's rule unless ``recompute_scale_factor=True``, which uses ``in / out``)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=False,
                 recompute_scale_factor=False, **kwargs):
        super().__init__(mode, align_corners, **kwargs)
        if (size is None) == (scale_factor is None):
            raise ValueError(f"Upsample2D needs exactly one of size and scale_factor, got size={size!r}, "
                             f"scale_factor={scale_factor!r}")
        self.size = None if size is None else tuple(int(s) for s in size)
        self.scale_factor = None if scale_factor is None else tuple(float(s) for s in scale_factor)
        self.recompute_scale_factor = bool(recompute_scale_factor)

    def call(self, x):
        shape = keras.ops.shape(x)
        for axis in (1, 2):
            if self.size is not None:
                x = self.resize_axis(x, axis, self.size[axis - 1])
                continue
            factor = self.scale_factor[axis - 1]
            size = shape[axis]
            out = (int(size * factor) if isinstance(size, int)
                   else keras.ops.cast(keras.ops.floor(keras.ops.cast(size, "float64") * factor), "int32"))
            x = self.resize_axis(x, axis, out, None if self.recompute_scale_factor else factor)
        return x

    def get_config(self):
        return {**super().get_config(), "size": self.size, "scale_factor": self.scale_factor,
                "recompute_scale_factor": self.recompute_scale_factor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNormLayer(keras.layers.Layer):
    """torch ``LocalResponseNorm`` on an NHWC tensor, channel window and all:

    ``y = x / (k + alpha / size * sum(x_j ** 2)) ** beta`` over channels ``j`` in
    ``[c - size // 2, c + (size - 1) // 2]``, zeros beyond the edges (torch pads, then averages, so alpha is
    divided by ``size`` even where the window is clipped). For an even ``size`` the window is asymmetric:
    one more channel before ``c`` than after. ``tf.nn.local_response_normalization`` takes a half-width,
    does not divide alpha and has no asymmetric window, hence this layer. It mirrors torch's ops (square,
    zero pad, average pool, ``* alpha + k``, power, divide), so tf2onnx writes Pad + AveragePool, not ONNX's
    ``LRN`` (which centres an even window the other way).
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        if int(size) != size or size < 1:
            raise ValueError(f"LocalResponseNorm size must be a positive integer, got {size!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def call(self, x):
        before, after = self.size // 2, (self.size - 1) // 2
        sq = keras.ops.pad(keras.ops.square(x), [[0, 0], [0, 0], [0, 0], [before, after]])
        # the channel axis becomes the last spatial axis of a 5-D NDHWC tensor with one channel
        mean = keras.ops.average_pool(sq[..., None], (1, 1, self.size), 1, "valid")[..., 0]
        return x / keras.ops.power(mean * self.alpha + self.k, self.beta)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GELU(keras.layers.Layer):
    """torch ``GELU``: exact ``x * 0.5 * (1 + erf(x / sqrt(2)))``, torch's own formula (TensorFlow's exact gelu
    is written with ``erfc``, which tf2onnx cannot export), or with ``approximate`` the tanh form
    ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`` (``keras.ops.gelu``'s default, hence the flag)."""

    def __init__(self, approximate=False, **kwargs):
        super().__init__(**kwargs)
        self.approximate = bool(approximate)

    def call(self, x):
        if self.approximate:
            return keras.ops.gelu(x, approximate=True)
        return x * 0.5 * (1.0 + keras.ops.erf(x * 0.7071067811865476))

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Reduce(keras.layers.Layer):
    """``x.mean(dims)``, ``x.sum(dims)``, ``x.amax(dims)`` over Keras ``axis`` (torch's dims, mapped)."""

    OPS = ("mean", "sum", "max", "min")

    def __init__(self, op, axis, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if op not in self.OPS:
            raise ValueError(f"Reduce op must be one of {self.OPS}, got {op!r}")
        self.op, self.axis, self.keepdims = op, tuple(axis), bool(keepdims)

    def call(self, x):
        return getattr(keras.ops, self.op)(x, axis=self.axis, keepdims=self.keepdims)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "axis": self.axis, "keepdims": self.keepdims}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TorchReshape(keras.layers.Layer):
    """A reshape whose target names every axis, batch included: ``shape[i]`` is a fixed size (or -1), and
    where ``copies[i]`` is an input axis, output axis ``i`` takes that axis's size at run time (a free batch,
    H or W). Keras's ``Reshape`` keeps the batch and allows one unknown; a torch ``view`` of a map with free
    H and W (ShuffleNet's channel shuffle) needs several."""

    def __init__(self, shape, copies, **kwargs):
        super().__init__(**kwargs)
        if len(shape) != len(copies):
            raise ValueError(f"TorchReshape needs one copy entry per axis, got shape {shape}, copies {copies}")
        self.shape, self.copies = tuple(shape), tuple(copies)

    def call(self, x):
        size = keras.ops.shape(x)
        return keras.ops.reshape(x, [s if c is None else size[c] for s, c in zip(self.shape, self.copies)])

    def get_config(self):
        return {**super().get_config(), "shape": self.shape, "copies": self.copies}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Transpose(keras.layers.Layer):
    """``keras.ops.transpose(x, perm)`` over every axis, batch included (Keras's ``Permute`` keeps the batch
    first)."""

    def __init__(self, perm, **kwargs):
        super().__init__(**kwargs)
        self.perm = tuple(perm)

    def call(self, x):
        return keras.ops.transpose(x, self.perm)

    def get_config(self):
        return {**super().get_config(), "perm": self.perm}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Binary(keras.layers.Layer):
    """``a <op> b`` with torch's (numpy's) broadcasting, the batch axis included: Keras's ``Add`` and
    ``Multiply`` take the first axis of every input for a batch and would give a ``(1, H, W, C)`` tensor (a
    held weight) the batch size 1 statically; Keras has no divide layer at all."""

    OPS = ("add", "subtract", "multiply", "divide")

    def __init__(self, op, **kwargs):
        super().__init__(**kwargs)
        if op not in self.OPS:
            raise ValueError(f"Binary op must be one of {self.OPS}, got {op!r}")
        self.op = op

    def call(self, a, b):
        return getattr(keras.ops, self.op)(a, b)

    def compute_output_shape(self, a_shape, b_shape):
        rank = max(len(a_shape), len(b_shape))
        a, b = (1,) * (rank - len(a_shape)) + tuple(a_shape), (1,) * (rank - len(b_shape)) + tuple(b_shape)
        return tuple(y if x == 1 else x if y == 1 else None if None in (x, y) else x for x, y in zip(a, b))

    def get_config(self):
        return {**super().get_config(), "op": self.op}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TorchTensors(keras.layers.Layer):
    """Tensors that a torch module uses in its own forward rather than through a submodule (ConvNeXt's
    ``layer_scale``): one variable per tensor, named like it, in the Keras layout (``spec["shape"]``). Called
    on any tensor (the model input), it returns the tensors as a list. ``spec["torch_shape"]`` and
    ``spec["perm"]`` say how the torch tensor maps onto the variable: seen with leading size-1 axes at the
    rank of ``perm``, transposed by ``perm``, reshaped to ``shape``; the weight transfer reads them."""

    def __init__(self, tensors, **kwargs):
        super().__init__(**kwargs)
        self.tensors = {n: {"shape": tuple(s["shape"]), "torch_shape": tuple(s["torch_shape"]),
                            "perm": tuple(s["perm"]), "trainable": bool(s["trainable"])}
                        for n, s in tensors.items()}
        self.held = [self.add_weight(shape=s["shape"], initializer="zeros", trainable=s["trainable"], name=n)
                     for n, s in self.tensors.items()]

    def call(self, x):
        return [keras.ops.cast(v, self.compute_dtype) for v in self.held]

    def compute_output_shape(self, shape):
        return [s["shape"] for s in self.tensors.values()]

    def get_config(self):
        return {**super().get_config(), "tensors": self.tensors}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Split(keras.layers.Layer):
    """``torch.split(x, sizes, dim)`` / ``x.chunk(n, dim)`` along Keras ``axis``: a list of tensors."""

    def __init__(self, sizes, axis, **kwargs):
        super().__init__(**kwargs)
        self.sizes, self.axis = tuple(int(s) for s in sizes), int(axis)

    def call(self, x):
        bounds = [sum(self.sizes[:i]) for i in range(1, len(self.sizes))]
        return keras.ops.split(x, bounds, axis=self.axis)

    def compute_output_shape(self, shape):
        return [tuple(s if i == self.axis % len(shape) else d for i, d in enumerate(shape)) for s in self.sizes]

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes, "axis": self.axis}
