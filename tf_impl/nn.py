"""A ``torch.nn``-shaped facade over Keras 3 layers, so that a twin reads like its torch original.

A :class:`Module` holds submodules as attributes, exactly as ``torch.nn.Module`` does, and
:func:`build_model` names every Keras layer after the torch module path of its leaf
(``layer1.0.conv1``, ``features.0``). That naming is the only rule the transfer layer needs. The automatic
twins (``parity.convert.from_torch``) build these same leaves from torch modules, so every numerics rule
lives here, once.

Layouts: tensors are NHWC; arguments follow torch (``Conv2d(in_channels, out_channels, kernel_size,
stride, padding, dilation, groups, bias)``), and every leaf accepts what its torch module accepts or raises
:class:`UnsupportedArgumentError` naming the argument. Each leaf spells out the numerics that differ between
the frameworks by default (padding side, pool pad value, BatchNorm eps and momentum, resize index rules),
and writes that note on the Keras layer it builds (``layer.torch_note``) for the emitted source.

A leaf that needs more than one Keras layer (explicit padding before a conv or pool) names the helper
layer ``<path>_pad`` and the layer that produces the module's output ``<path>``. A leaf called outside
:func:`build_model` (in eager code, or in a user's own functional model) works like any Keras layer and
takes an automatic unique name (``max_pool2d_1``).
"""
from __future__ import annotations

import re
from typing import Iterator

from tf_impl.backend import keras
from tf_impl.batch_norm import TorchBatchNormalization
from tf_impl.keras_layers import (AdaptivePool2D, AvgPool2D, ConstantPad2D, DilatedMaxPool2D, GELU as GeluLayer,
                                  TorchConv2D, Upsample2D)


class UnsupportedArgumentError(ValueError):
    """A value torch accepts that the facade does not implement; the message names the module, the
    argument, the value and where to add support."""


def _refuse(module: str, argument: str, value, supported: str):
    raise UnsupportedArgumentError(f"tf_impl.nn.{module}: {argument}={value!r} is not supported (supported: "
                                   f"{supported}); add it to {module} in tf_impl/nn.py")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _float32(module: str, dtype, device) -> None:
    """torch's ``device``/``dtype`` factory arguments: Keras places ops itself; float32 only."""
    if dtype is not None and str(dtype).replace("torch.", "") != "float32":
        _refuse(module, "dtype", dtype, "None or float32")


class Module:
    """Container with torch's attribute-based naming. Subclasses define ``forward`` on Keras tensors."""

    def __init__(self) -> None:
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "path", "")

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Yields ``(path, module)`` in definition order, like ``torch.nn.Module.named_modules``."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def __call__(self, *args):
        return self.forward(*args)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} defines no forward()")


class Leaf(Module):
    """A module that maps onto Keras layers, created lazily under its path on first call.

    A leaf called several times (a shared conv) reuses its layers, so its weights are shared as in torch.
    """

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_layers", None)

    def make_layers(self, name: str) -> list:
        """Returns the Keras layers of this leaf, applied in order; the last one is named ``name``."""
        raise NotImplementedError

    def layers(self) -> list:
        """The Keras layers, made on first use under the leaf's path, or under an automatic unique name
        (``conv2d_3``) for a leaf used outside :func:`build_model`."""
        if self._layers is None:
            name = self.path or auto_name(type(self).__name__)
            object.__setattr__(self, "_layers", self.make_layers(name))
        return self._layers

    def forward(self, x):
        for layer in self.layers():
            x = layer(x)
        return x


def auto_name(cls_name: str) -> str:
    """A unique layer name from a class name, as Keras makes its own: ``MaxPool2d`` -> ``max_pool2d_1``."""
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls_name).lower()
    return f"{base}_{keras.backend.get_uid(base)}"


def noted(layer, note: str):
    """``layer`` with the numerics note the emitted source writes beside it (``layer.torch_note``)."""
    layer.torch_note = note
    return layer


class Sequential(Module):
    """Children are named ``0``, ``1``, ... as in ``torch.nn.Sequential``."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """Children are named ``0``, ``1``, ... as in ``torch.nn.ModuleList``."""

    def __init__(self, modules=()) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)


class Conv2d(Leaf):
    """torch ``Conv2d`` (OIHW) as Keras ``Conv2D`` (HWIO), or, when ``groups == in_channels``,
    ``DepthwiseConv2D`` (kernel ``(kh, kw, in, out // in)``), or for other groups and for a stride with a
    dilation :class:`tf_impl.keras_layers.TorchConv2D` (Keras's ``Conv2D`` kernel and config).

    Padding is torch's symmetric zero padding: Keras ``'same'`` is used only where it is identical
    (stride 1 and ``2 * padding == dilation * (kernel - 1)``); otherwise an explicit ``ZeroPadding2D``
    precedes a ``'valid'`` conv, because TF's ``'same'`` puts the odd pixel bottom/right on stride 2.
    torch's ``padding='same'`` (stride 1 only) is Keras's ``'same'``: both put an odd total's extra pixel
    bottom/right.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _float32("Conv2d", dtype, device)
        if padding_mode != "zeros":
            _refuse("Conv2d", "padding_mode", padding_mode, "'zeros'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.groups, self.bias = groups, bias
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions (torch's rule)")
        elif isinstance(padding, str):
            _refuse("Conv2d", "padding", padding, "an int, a pair, 'valid' or 'same'")
        self.padding = padding if padding == "same" else _pair(padding)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups}), as in torch")

    def make_layers(self, name):
        if self.padding == "same":
            same, note = True, "torch's padding='same': Keras 'same' at stride 1 pads the same pixels"
        else:
            same = self.stride == (1, 1) and all(
                2 * p == d * (k - 1) for p, d, k in zip(self.padding, self.dilation, self.kernel_size))
            note = (f"'same' is torch's symmetric padding {self.padding} here (stride 1)" if same else
                    "torch pads both sides; TF's 'same' would put the odd pixel bottom/right")
        layers = []
        explicit = not same and self.padding != (0, 0)
        if explicit:
            layers.append(noted(keras.layers.ZeroPadding2D(self.padding, name=f"{name}_pad"), note))
        common = dict(kernel_size=self.kernel_size, strides=self.stride, dilation_rate=self.dilation,
                      padding="same" if same and self.padding != (0, 0) else "valid",
                      use_bias=self.bias, name=name)
        strided_dilated = max(self.stride) > 1 and max(self.dilation) > 1  # Keras's Conv2D refuses the pair
        if self.groups == self.in_channels and self.groups > 1:
            conv = keras.layers.DepthwiseConv2D(depth_multiplier=self.out_channels // self.in_channels, **common)
        elif self.groups == 1 and not strided_dilated:
            conv = keras.layers.Conv2D(self.out_channels, **common)
        else:  # other groups (Keras's run through XLA, which tf2onnx cannot read), or stride with dilation
            conv = TorchConv2D(self.out_channels, groups=self.groups, **common)
        layers.append(noted(conv, note) if common["padding"] == "same" else conv)
        return layers


class BatchNorm2d(Leaf):
    """torch ``BatchNorm2d`` as Keras ``BatchNormalization`` on the channel axis.

    Defaults are torch's: eps 1e-5 (Keras defaults to 1e-3) and momentum 0.1, which Keras writes as
    ``1 - 0.1 = 0.9`` (torch weighs the new batch, Keras the running value). In training mode the moving
    variance takes torch's unbiased batch variance (``tf_impl.batch_norm``; Keras's own takes the biased one).
    ``affine=False``: no gamma and beta (Keras ``center=scale=False``).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        _float32("BatchNorm2d", dtype, device)
        if momentum is None:
            _refuse("BatchNorm2d", "momentum", None, "a float (Keras has no cumulative moving average)")
        if not track_running_stats:
            _refuse("BatchNorm2d", "track_running_stats", False, "True (Keras always keeps moving statistics)")
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine

    def make_layers(self, name):
        return [noted(TorchBatchNormalization(axis=-1, epsilon=self.eps, momentum=1.0 - self.momentum,
                                              center=self.affine, scale=self.affine, name=name),
                      f"torch's eps {self.eps:g} (Keras default 1e-3); momentum = 1 - torch's {self.momentum:g}; "
                      f"unbiased variance in training, as torch")]


class _Activation(Leaf):
    """An elementwise torch activation as one Keras layer; ``inplace`` is accepted and changes nothing."""

    keras_activation = ""
    note = ""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def make_layers(self, name):
        layer = keras.layers.Activation(self.keras_activation, name=name)
        return [noted(layer, self.note) if self.note else layer]


class ReLU(_Activation):
    keras_activation = "relu"


class ReLU6(_Activation):
    keras_activation = "relu6"  # min(max(x, 0), 6), as torch


class SiLU(_Activation):
    keras_activation = "silu"  # x * sigmoid(x), as torch


class Hardswish(_Activation):
    keras_activation = "hard_silu"
    note = "Keras 3's hard_silu is torch's x * relu6(x + 3) / 6 (Keras 2's hard_sigmoid was 0.2x + 0.5)"


class Hardsigmoid(_Activation):
    keras_activation = "hard_sigmoid"
    note = "Keras 3's hard_sigmoid is torch's relu6(x + 3) / 6 (Keras 2's was 0.2x + 0.5)"


class Sigmoid(_Activation):
    keras_activation = "sigmoid"

    def __init__(self):
        super().__init__()


class Tanh(_Activation):
    keras_activation = "tanh"

    def __init__(self):
        super().__init__()


class GELU(Leaf):
    """torch ``GELU(approximate='none'|'tanh')`` as :class:`tf_impl.keras_layers.GELU`: the exact form is torch's
    own ``erf`` formula (Keras's ``Activation("gelu")`` runs TensorFlow's ``erfc`` form, which tf2onnx cannot
    export), the tanh form is ``keras.ops.gelu``'s (whose default it is)."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            _refuse("GELU", "approximate", approximate, "'none' or 'tanh'")
        self.approximate = approximate

    def make_layers(self, name):
        form = "tanh form" if self.approximate == "tanh" else "exact: x * 0.5 * (1 + erf(x / sqrt(2))), torch's formula"
        return [noted(GeluLayer(approximate=self.approximate == "tanh", name=name), f"GELU, {form}")]


class Identity(Leaf):
    """torch ``Identity``: any arguments, ignored, as in torch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def make_layers(self, name):
        return [keras.layers.Identity(name=name)]


class Dropout(Leaf):
    """torch's default rate is 0.5; inference (``training=False``) makes it the identity on both sides."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p, self.inplace = p, inplace

    def make_layers(self, name):
        return [keras.layers.Dropout(self.p, name=name)]


class Linear(Leaf):
    """torch ``Linear`` (weight ``(out, in)``) as Keras ``Dense`` (kernel ``(in, out)``), on the last axis of a
    tensor of any rank, as torch."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _float32("Linear", dtype, device)
        self.in_features, self.out_features, self.bias = in_features, out_features, bias

    def make_layers(self, name):
        return [keras.layers.Dense(self.out_features, use_bias=self.bias, name=name)]


class LayerNorm(Leaf):
    """torch ``LayerNorm`` over the last axis as Keras ``LayerNormalization``: torch's eps 1e-5 (Keras
    default 1e-3); ``elementwise_affine``/``bias`` as Keras ``scale``/``center``. On channels-last maps
    (ConvNeXt) the last axis is the channels."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        _float32("LayerNorm", dtype, device)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if len(shape) != 1:
            _refuse("LayerNorm", "normalized_shape", normalized_shape, "one dimension (the last axis)")
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine, self.bias = elementwise_affine, bias

    def make_layers(self, name):
        return [noted(keras.layers.LayerNormalization(axis=-1, epsilon=self.eps, scale=self.elementwise_affine,
                                                      center=self.elementwise_affine and self.bias, name=name),
                      f"torch's eps {self.eps:g} (Keras default 1e-3)")]


class _Pool2d(Leaf):
    """torch's pooling arguments: stride defaults to the kernel size, padding is symmetric."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding, self.ceil_mode = _pair(padding), ceil_mode
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{type(self).__name__}: padding {self.padding} must be at most half the kernel "
                             f"size {self.kernel_size}, as in torch")


class MaxPool2d(_Pool2d):
    """torch ``MaxPool2d``: padding is -inf (a zero pad would win the max wherever the inputs are negative).
    ``ceil_mode=True`` pads -inf bottom/right as far as torch's last window reads (computed from the input
    size at run time); ``dilation > 1`` is :class:`tf_impl.keras_layers.DilatedMaxPool2D` (Keras's pooling
    has no dilation)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if return_indices:
            _refuse("MaxPool2d", "return_indices", True, "False")
        self.dilation = _pair(dilation)

    def make_layers(self, name):
        layers = []
        if self.padding != (0, 0) or self.ceil_mode:
            ceil = (self.kernel_size, self.stride, self.dilation) if self.ceil_mode else None
            note = "-inf padding, as torch" + (" (and ceil_mode's overhang bottom/right)" if ceil else "")
            layers.append(noted(ConstantPad2D(self.padding, value=float("-inf"), ceil_pool=ceil,
                                              name=f"{name}_pad"), note))
        if self.dilation != (1, 1):
            layers.append(DilatedMaxPool2D(self.kernel_size, self.stride, self.dilation, name=name))
        else:
            layers.append(keras.layers.MaxPooling2D(self.kernel_size, self.stride, padding="valid", name=name))
        return layers


class AvgPool2d(_Pool2d):
    """torch ``AvgPool2d``: zero padding is counted in the mean (torch's ``count_include_pad=True``), hence
    an explicit zero pad before a ``'valid'`` pool. ``count_include_pad=False`` with padding, ``ceil_mode``
    and ``divisor_override`` divide as torch does (:class:`tf_impl.keras_layers.AvgPool2D`)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def make_layers(self, name):
        exact = not self.ceil_mode and self.divisor_override is None and (
            self.count_include_pad or self.padding == (0, 0))
        if not exact:
            note = ("torch's divisor: " + ("the window inside the padded input" if self.count_include_pad
                                           else "the window inside the input"))
            return [noted(AvgPool2D(self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                    self.count_include_pad, self.divisor_override, name=name), note)]
        layers = []
        if self.padding != (0, 0):
            layers.append(noted(keras.layers.ZeroPadding2D(self.padding, name=f"{name}_pad"),
                                "zeros counted in the mean (torch's count_include_pad=True)"))
        layers.append(keras.layers.AveragePooling2D(self.kernel_size, self.stride, padding="valid", name=name))
        return layers


class _AdaptivePool2d(Leaf):
    """torch's adaptive pooling: ``output_size`` an int, a pair, ``None`` keeping an axis. Output 1 x 1 is
    Keras's global pooling (helper ``<path>_gap``) and a reshape to ``(N, 1, 1, C)``; any other size is
    :class:`tf_impl.keras_layers.AdaptivePool2D` (torch's overlapping bins)."""

    mode = ""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = (output_size, output_size) if output_size is None or isinstance(output_size, int) \
            else tuple(output_size)

    def make_layers(self, name):
        if self.output_size == (1, 1):  # global pooling, then (N, 1, 1, C) as torch's output (and article B's)
            cls = keras.layers.GlobalAveragePooling2D if self.mode == "avg" else keras.layers.GlobalMaxPooling2D
            return [cls(name=f"{name}_gap"), keras.layers.Reshape((1, 1, -1), name=name)]
        return [noted(AdaptivePool2D(self.output_size, self.mode, name=name),
                      "torch's bins: floor(i * in / out) to ceil((i + 1) * in / out)")]


class AdaptiveAvgPool2d(_AdaptivePool2d):
    mode = "avg"


class AdaptiveMaxPool2d(_AdaptivePool2d):
    mode = "max"

    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        if return_indices:
            _refuse("AdaptiveMaxPool2d", "return_indices", True, "False")


class Flatten(Leaf):
    """Flattens NHWC in H, W, C order. torch flattens NCHW in C, H, W order; the transfer layer reorders
    the next ``Dense`` kernel's rows, so no transpose runs at inference. torch's arguments
    ``(start_dim=1, end_dim=-1)``; other dims have no NHWC meaning here (the automatic twins map them with
    ``parity.layout``)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        if (start_dim, end_dim) != (1, -1):
            _refuse("Flatten", "(start_dim, end_dim)", (start_dim, end_dim), "(1, -1) on an NHWC map")
        self.start_dim, self.end_dim = start_dim, end_dim

    def make_layers(self, name):
        return [noted(keras.layers.Flatten(name=name),
                      "H, W, C order; the transfer reorders the next Dense's rows from torch's C, H, W")]


class Upsample(Leaf):
    """torch ``Upsample(size, scale_factor, mode, align_corners)`` with torch's index rules
    (:class:`tf_impl.keras_layers.Upsample2D`): ``nearest`` reads ``floor(dst * scale)`` (TF2's resize is
    half-pixel), bilinear honours ``align_corners``. Modes: nearest, nearest-exact, bilinear."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        if mode not in Upsample2D.MODES:
            _refuse(type(self).__name__, "mode", mode, ", ".join(Upsample2D.MODES))
        self.size = None if size is None else _pair(size)
        if scale_factor is not None and not isinstance(scale_factor, (tuple, list)):
            scale_factor = (scale_factor, scale_factor)
        self.scale_factor = None if scale_factor is None else tuple(float(f) for f in scale_factor)
        self.mode, self.align_corners = mode, bool(align_corners)
        self.recompute_scale_factor = bool(recompute_scale_factor)

    def make_layers(self, name):
        rule = (f"bilinear, align_corners={self.align_corners}" if self.mode == "bilinear"
                else f"{self.mode} with torch's source index")
        return [noted(Upsample2D(self.size, self.scale_factor, self.mode, self.align_corners,
                                 self.recompute_scale_factor, name=name), rule)]


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """torch's ``UpsamplingBilinear2d`` is bilinear with ``align_corners=True``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


def build_model(module: Module, input_shape: tuple, name: str) -> keras.Model:
    """Names every module after its torch path, traces ``module.forward`` on an NHWC ``keras.Input`` of
    ``input_shape`` (``(H, W, C)``, ``None`` for a free dimension) and returns the ``keras.Model``.

    A forward that returns a tuple gives a model with a list of outputs, in the same order.
    """
    for path, m in module.named_modules():
        object.__setattr__(m, "path", path or name)  # a lone leaf (a registered layer) takes the model's name
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    outputs = module(inputs)
    if isinstance(outputs, tuple):
        outputs = list(outputs)
    return keras.Model(inputs, outputs, name=name)
