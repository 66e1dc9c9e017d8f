"""A ``torch.nn``-shaped facade over Keras 3 layers, so that a twin reads like its torch original.

A :class:`Module` holds submodules as attributes, exactly as ``torch.nn.Module`` does, and
:func:`build_model` names every Keras layer after the torch module path of its leaf
(``layer1.0.conv1``, ``features.0``). That naming is the only rule the transfer layer needs.

Layouts: tensors are NHWC; arguments follow torch (``Conv2d(in_channels, out_channels, kernel_size,
stride, padding, dilation, groups, bias)``). Each leaf spells out the numerics that differ between the
frameworks by default (padding side, pool pad value, BatchNorm eps and momentum).

A leaf that needs more than one Keras layer (explicit padding before a conv or pool) names the helper
layer ``<path>_pad`` and the layer that produces the module's output ``<path>``.
"""
from __future__ import annotations

from typing import Iterator

from tf_impl.backend import keras
from tf_impl.batch_norm import TorchBatchNormalization


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


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

    def forward(self, x):
        if self._layers is None:
            if not self.path:
                raise RuntimeError(f"{type(self).__name__} was called before build_model() named it")
            object.__setattr__(self, "_layers", self.make_layers(self.path))
        for layer in self._layers:
            x = layer(x)
        return x


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
    """torch ``Conv2d`` (OIHW) as Keras ``Conv2D`` (HWIO) or, when ``groups == in_channels``,
    ``DepthwiseConv2D`` (kernel ``(kh, kw, in, out // in)``).

    Padding is torch's symmetric zero padding: Keras ``'same'`` is used only where it is identical
    (stride 1 and ``2 * padding == dilation * (kernel - 1)``); otherwise an explicit ``ZeroPadding2D``
    precedes a ``'valid'`` conv, because TF's ``'same'`` puts the odd pixel bottom/right on stride 2.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.groups, self.bias = groups, bias
        if groups not in (1, in_channels) or out_channels % groups:
            raise ValueError(f"Conv2d supports groups=1 or groups=in_channels (depthwise), got groups={groups} "
                             f"with in_channels={in_channels}, out_channels={out_channels}")

    def make_layers(self, name):
        same = self.stride == (1, 1) and all(
            2 * p == d * (k - 1) for p, d, k in zip(self.padding, self.dilation, self.kernel_size))
        layers = []
        if self.padding != (0, 0) and not same:
            layers.append(keras.layers.ZeroPadding2D(self.padding, name=f"{name}_pad"))
        common = dict(kernel_size=self.kernel_size, strides=self.stride, dilation_rate=self.dilation,
                      padding="same" if same and self.padding != (0, 0) else "valid",
                      use_bias=self.bias, name=name)
        if self.groups == 1:
            layers.append(keras.layers.Conv2D(self.out_channels, **common))
        else:
            layers.append(keras.layers.DepthwiseConv2D(depth_multiplier=self.out_channels // self.in_channels,
                                                       **common))
        return layers


class BatchNorm2d(Leaf):
    """torch ``BatchNorm2d`` as Keras ``BatchNormalization`` on the channel axis.

    Defaults are torch's: eps 1e-5 (Keras defaults to 1e-3) and momentum 0.1, which Keras writes as
    ``1 - 0.1 = 0.9`` (torch weighs the new batch, Keras the running value). In training mode the moving
    variance takes torch's unbiased batch variance (``tf_impl.batch_norm``; Keras's own takes the biased one).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum

    def make_layers(self, name):
        return [TorchBatchNormalization(axis=-1, epsilon=self.eps, momentum=1.0 - self.momentum, name=name)]


class ReLU(Leaf):
    def make_layers(self, name):
        return [keras.layers.Activation("relu", name=name)]


class Dropout(Leaf):
    """torch's default rate is 0.5; inference (``training=False``) makes it the identity on both sides."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def make_layers(self, name):
        return [keras.layers.Dropout(self.p, name=name)]


class Linear(Leaf):
    """torch ``Linear`` (weight ``(out, in)``) as Keras ``Dense`` (kernel ``(in, out)``)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features, self.bias = in_features, out_features, bias

    def make_layers(self, name):
        return [keras.layers.Dense(self.out_features, use_bias=self.bias, name=name)]


class _Pool2d(Leaf):
    """torch's pooling arguments: stride defaults to the kernel size, padding is symmetric."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)


class MaxPool2d(_Pool2d):
    """torch ``MaxPool2d``: padding is -inf (a zero pad would win the max wherever the inputs are negative)."""

    def make_layers(self, name):
        from tf_impl.layers import ConstantPad2D
        layers = []
        if self.padding != (0, 0):
            layers.append(ConstantPad2D(self.padding, value=float("-inf"), name=f"{name}_pad"))
        layers.append(keras.layers.MaxPooling2D(self.kernel_size, self.stride, padding="valid", name=name))
        return layers


class AvgPool2d(_Pool2d):
    """torch ``AvgPool2d``: zero padding is counted in the mean (torch's ``count_include_pad=True``), hence
    an explicit zero pad before a ``'valid'`` pool."""

    def make_layers(self, name):
        layers = []
        if self.padding != (0, 0):
            layers.append(keras.layers.ZeroPadding2D(self.padding, name=f"{name}_pad"))
        layers.append(keras.layers.AveragePooling2D(self.kernel_size, self.stride, padding="valid", name=name))
        return layers


class AdaptiveAvgPool2d(Leaf):
    """``AdaptiveAvgPool2d(1)`` only: global average pooling, then a reshape to ``(N, 1, 1, C)``."""

    def __init__(self, output_size=1):
        super().__init__()
        if _pair(output_size) != (1, 1):
            raise ValueError(f"AdaptiveAvgPool2d supports output_size=1 only, got {output_size!r}")
        self.output_size = output_size

    def make_layers(self, name):
        return [keras.layers.GlobalAveragePooling2D(name=f"{name}_gap"),
                keras.layers.Reshape((1, 1, -1), name=name)]


class Flatten(Leaf):
    """Flattens NHWC in H, W, C order. torch flattens NCHW in C, H, W order; the transfer layer reorders
    the next ``Dense`` kernel's rows, so no transpose runs at inference."""

    def make_layers(self, name):
        return [keras.layers.Flatten(name=name)]


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
