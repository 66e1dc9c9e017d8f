"""Keras layers as torch modules: a ``keras.layers``-shaped facade over torch, on NCHW tensors.

The mirror of ``tf_impl/nn.py``. Each class takes Keras's own arguments (plus the input size Keras infers
and torch needs: ``in_channels``, ``in_features``) and computes what the Keras layer computes, on the torch
layout of the same value: an NHWC Keras map is NCHW here, and ``dim`` (where a class takes one) is the torch
dim that holds the Keras axis the layer works on. Every place where Keras and torch differ by default is
spelled out below, with its reason. Classes that hold weights subclass ``nn.Conv2d``, ``nn.Linear``,
``nn.BatchNorm2d`` or ``nn.LayerNorm``, or have an entry in ``parity.weight_transfer.LAYOUTS``.

This module imports only torch: ``parity convert`` copies the classes a model needs into the standalone
``<name>_torch.py`` it writes (``inspect.getsource``), so every definition here is the single one.
"""
import torch
import torch.nn.functional as F
from torch import nn


def pair(value):
    """Keras accepts an int or a pair for kernel sizes, strides, dilations."""
    return (value, value) if isinstance(value, int) else tuple(value)


def same_padding(size, kernel, stride, dilation):
    """TF's 'same' padding of one spatial dim, ``(before, after)``: the total is
    ``max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)`` and the odd pixel goes
    after (bottom/right), where torch's ``padding=k//2`` pads both sides alike. The total depends on the size
    at stride > 1, so it is computed here at run time; integer ops only, so that a size traced by
    ``torch.onnx`` stays a graph value and H, W stay free in the export."""
    total = (kernel - 1) * dilation - (size - 1) % stride
    total = (total + abs(total)) // 2  # max(total, 0), spelled so that a traced size stays traced
    return total // 2, total - total // 2


def same_pads(x, kernel, stride, dilation):
    """``F.pad`` amounts (left, right, top, bottom) of TF's 'same' for an NCHW tensor."""
    top, bottom = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    return [left, right, top, bottom]


def static_same(kernel, stride, dilation):
    """Torch's own symmetric ``padding`` when TF's 'same' equals it whatever the size (stride 1 and an odd
    dilated kernel); else None and the layer pads at run time (:func:`same_pads`)."""
    totals = [(k - 1) * d for k, d in zip(kernel, dilation)]
    if any(s != 1 for s in stride) or any(t % 2 for t in totals):
        return None
    return tuple(t // 2 for t in totals)


def hard_sigmoid(x):
    """Keras 3: ``relu6(x + 3) / 6``, torch's ``hardsigmoid`` (Keras 2 had ``clip(0.2 x + 0.5, 0, 1)``)."""
    return F.relu6(x + 3.0) / 6.0


def hard_silu(x):
    """Keras 3's ``hard_silu``/``hard_swish``: ``x * hard_sigmoid(x)``, torch's ``hardswish``."""
    return x * hard_sigmoid(x)


def gelu(x):
    """``keras.activations.gelu`` (what ``Activation('gelu')`` calls) is exact, with erf, as torch's default;
    ``keras.ops.gelu`` defaults to the tanh approximation (:func:`gelu_tanh`)."""
    return F.gelu(x)


def gelu_tanh(x):
    """The tanh approximation of GELU (``keras.ops.gelu``'s default, ``approximate=True``)."""
    return F.gelu(x, approximate="tanh")


def leaky_relu(x):
    """``keras.activations.leaky_relu``: negative slope 0.2 (torch's default is 0.01; the ``LeakyReLU``
    layer's is 0.3)."""
    return F.leaky_relu(x, 0.2)


def linear(x):
    return x


ELEMENTWISE = {  # Keras activation name -> the same function in torch
    "linear": linear, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "hard_sigmoid": hard_sigmoid, "silu": F.silu, "swish": F.silu, "hard_silu": hard_silu,
    "hard_swish": hard_silu, "gelu": gelu, "gelu_tanh": gelu_tanh, "elu": F.elu, "selu": F.selu,
    "softplus": F.softplus, "softsign": F.softsign, "exponential": torch.exp, "leaky_relu": leaky_relu,
    "mish": F.mish,
}
ALONG_AXIS = {"softmax": torch.softmax, "log_softmax": torch.log_softmax}  # Keras applies them on axis -1


def activate(x, activation, dim=-1):
    """Keras activation ``activation`` (a name) of ``x``; ``dim`` is the torch dim of Keras's last axis,
    where softmax and log_softmax run."""
    if activation in ALONG_AXIS:
        return ALONG_AXIS[activation](x, dim)
    return ELEMENTWISE[activation](x)


class Activation(nn.Module):
    """``keras.layers.Activation`` (and ``Softmax``); ``dim``: the torch dim of Keras's axis -1."""

    def __init__(self, activation, dim=-1):
        super().__init__()
        self.activation, self.dim = activation, dim

    def forward(self, x):
        return activate(x, self.activation, self.dim)

    def extra_repr(self):
        return repr(self.activation)


class ReLU(nn.Module):
    """``keras.layers.ReLU``: ``x`` from ``threshold`` up, ``negative_slope * (x - threshold)`` below, capped
    at ``max_value``."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0):
        super().__init__()
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def forward(self, x):
        if self.negative_slope == 0 and self.threshold == 0:
            y = F.relu(x)
        else:
            y = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        return y if self.max_value is None else torch.clamp(y, max=self.max_value)


class LeakyReLU(nn.Module):
    """``keras.layers.LeakyReLU``: the layer's default slope is 0.3 (torch's 0.01)."""

    def __init__(self, negative_slope=0.3):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Conv2D(nn.Conv2d):
    """``keras.layers.Conv2D`` with its ``activation``. ``padding='same'`` is TF's: at stride 1 and an odd
    dilated kernel torch's symmetric ``padding`` equals it; otherwise it is padded at run time from the input
    size, the odd pixel bottom/right (:func:`same_padding`)."""

    def __init__(self, in_channels, filters, kernel_size, strides=1, padding="valid", dilation_rate=1, groups=1,
                 use_bias=True, activation="linear"):
        kernel_size, strides, dilation_rate = pair(kernel_size), pair(strides), pair(dilation_rate)
        static = static_same(kernel_size, strides, dilation_rate) if padding == "same" else None
        super().__init__(in_channels, filters, kernel_size, stride=strides, padding=static or 0,
                         dilation=dilation_rate, groups=groups, bias=use_bias)
        self.pad_same = padding == "same" and static is None
        self.activation = activation

    def forward(self, x):
        if self.pad_same:
            x = F.pad(x, same_pads(x, self.kernel_size, self.stride, self.dilation))
        return activate(super().forward(x), self.activation, 1)


class DepthwiseConv2D(Conv2D):
    """``keras.layers.DepthwiseConv2D``: a grouped conv, ``groups = in_channels``; output channel
    ``c * depth_multiplier + j`` is filter ``j`` of input channel ``c``, as in Keras."""

    def __init__(self, in_channels, kernel_size, strides=1, padding="valid", depth_multiplier=1, dilation_rate=1,
                 use_bias=True, activation="linear"):
        super().__init__(in_channels, in_channels * depth_multiplier, kernel_size, strides, padding, dilation_rate,
                         groups=in_channels, use_bias=use_bias, activation=activation)


class SeparableConv2D(nn.Module):
    """``keras.layers.SeparableConv2D``: a depthwise conv (strides, padding and dilation apply to it), then a
    1x1 pointwise conv, then the bias and the activation. One module, as one Keras layer: its weights are
    ``depthwise_weight`` (C * m, 1, kh, kw), ``pointwise_weight`` (filters, C * m, 1, 1) and ``bias``."""

    def __init__(self, in_channels, filters, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 dilation_rate=1, use_bias=True, activation="linear"):
        super().__init__()
        self.in_channels, self.out_channels, self.depth_multiplier = in_channels, filters, depth_multiplier
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(strides), pair(dilation_rate)
        static = static_same(self.kernel_size, self.stride, self.dilation) if padding == "same" else None
        self.padding, self.pad_same = static or (0, 0), padding == "same" and static is None
        mid = in_channels * depth_multiplier
        self.depthwise_weight = nn.Parameter(torch.empty(mid, 1, *self.kernel_size))
        self.pointwise_weight = nn.Parameter(torch.empty(filters, mid, 1, 1))
        self.bias = nn.Parameter(torch.zeros(filters)) if use_bias else None
        nn.init.kaiming_uniform_(self.depthwise_weight, a=5 ** 0.5)
        nn.init.kaiming_uniform_(self.pointwise_weight, a=5 ** 0.5)
        self.activation = activation

    def forward(self, x):
        if self.pad_same:
            x = F.pad(x, same_pads(x, self.kernel_size, self.stride, self.dilation))
        x = F.conv2d(x, self.depthwise_weight, None, self.stride, self.padding, self.dilation, self.in_channels)
        return activate(F.conv2d(x, self.pointwise_weight, self.bias), self.activation, 1)


class BatchNormalization(nn.BatchNorm2d):
    """``keras.layers.BatchNormalization`` over the channels (torch dim 1, of a 2-D to 4-D input). Keras's
    defaults differ from torch's: ``epsilon`` 1e-3 (torch 1e-5), and ``momentum`` is the weight of the old
    statistics (torch's is 1 - Keras's). ``center=False``/``scale=False`` drop beta/gamma as Keras does.

    Training mode follows Keras: the batch is normalised with its biased variance (as torch does), and the
    moving variance is updated with that same biased variance, where torch uses the unbiased one (n/(n-1);
    2.9e-4 relative after one step on a 2x3x32x32 batch)."""

    def __init__(self, num_features, epsilon=1e-3, momentum=0.99, center=True, scale=True):
        super().__init__(num_features, eps=epsilon, momentum=1.0 - momentum)
        if not scale:
            self.register_parameter("weight", None)
        if not center:
            self.register_parameter("bias", None)

    def _check_input_dim(self, x):
        if not 2 <= x.dim() <= 4:
            raise ValueError(f"BatchNormalization expects a 2-D to 4-D input (channels at dim 1), got {x.dim()}-D")

    def forward(self, x):
        self._check_input_dim(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        dims = [d for d in range(x.dim()) if d != 1]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)  # Keras: the biased batch variance
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)


class Dense(nn.Linear):
    """``keras.layers.Dense`` with its ``activation``, on Keras's last axis, which is torch dim ``dim``: on an
    NCHW map (dim 1) it runs as the 1x1 conv it is, so no transpose is needed."""

    def __init__(self, in_features, units, use_bias=True, activation="linear", dim=-1):
        super().__init__(in_features, units, bias=use_bias)
        self.activation, self.dim = activation, dim

    def forward(self, x):
        if self.dim in (-1, x.dim() - 1):
            y = F.linear(x, self.weight, self.bias)
        elif x.dim() == 4 and self.dim == 1:
            y = F.conv2d(x, self.weight[:, :, None, None], self.bias)
        else:
            y = F.linear(x.movedim(self.dim, -1), self.weight, self.bias).movedim(-1, self.dim)
        return activate(y, self.activation, self.dim)


class MaxPooling2D(nn.Module):
    """``keras.layers.MaxPooling2D``; ``strides`` default to ``pool_size``. 'same' pads with -inf (the padding
    never wins), the odd pixel bottom/right at stride > 1."""

    def __init__(self, pool_size=2, strides=None, padding="valid"):
        super().__init__()
        self.pool_size = pair(pool_size)
        self.strides = pair(strides) if strides is not None else self.pool_size
        static = static_same(self.pool_size, self.strides, (1, 1)) if padding == "same" else None
        self.padding, self.pad_same = static or (0, 0), padding == "same" and static is None

    def forward(self, x):
        if self.pad_same:
            x = F.pad(x, same_pads(x, self.pool_size, self.strides, (1, 1)), value=float("-inf"))
        return F.max_pool2d(x, self.pool_size, self.strides, self.padding)


class AveragePooling2D(nn.Module):
    """``keras.layers.AveragePooling2D``. With 'same' Keras averages over the pixels inside the map only (the
    padded zeros are not counted): torch's ``count_include_pad=False`` where torch's symmetric padding equals
    TF's, else the sum over the zero-padded map divided by the number of real pixels in each window."""

    def __init__(self, pool_size=2, strides=None, padding="valid"):
        super().__init__()
        self.pool_size = pair(pool_size)
        self.strides = pair(strides) if strides is not None else self.pool_size
        static = static_same(self.pool_size, self.strides, (1, 1)) if padding == "same" else None
        self.padding, self.pad_same = static or (0, 0), padding == "same" and static is None

    def forward(self, x):
        if not self.pad_same:
            return F.avg_pool2d(x, self.pool_size, self.strides, self.padding, count_include_pad=False)
        pads = same_pads(x, self.pool_size, self.strides, (1, 1))
        total = F.avg_pool2d(F.pad(x, pads), self.pool_size, self.strides)
        inside = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pads), self.pool_size, self.strides)
        return total / inside


class GlobalAveragePooling2D(nn.Module):
    """``keras.layers.GlobalAveragePooling2D``: the mean over H and W (dims 2, 3); ``keepdims`` keeps them as
    size 1 (an (N, C, 1, 1) map, what Keras's (N, 1, 1, C) is in NCHW)."""

    def __init__(self, keepdims=False):
        super().__init__()
        self.keepdims = keepdims

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keepdims)


class GlobalMaxPooling2D(nn.Module):
    """``keras.layers.GlobalMaxPooling2D``: the maximum over H and W (dims 2, 3)."""

    def __init__(self, keepdims=False):
        super().__init__()
        self.keepdims = keepdims

    def forward(self, x):
        return x.amax((2, 3), keepdim=self.keepdims)


class ZeroPadding2D(nn.Module):
    """``keras.layers.ZeroPadding2D``, ``padding = ((top, bottom), (left, right))``, which may differ (NASNet)."""

    def __init__(self, padding=((1, 1), (1, 1))):
        super().__init__()
        (self.top, self.bottom), (self.left, self.right) = padding

    def forward(self, x):
        return F.pad(x, [self.left, self.right, self.top, self.bottom])


class Cropping2D(nn.Module):
    """``keras.layers.Cropping2D``, ``cropping = ((top, bottom), (left, right))``, which may differ (NASNet)."""

    def __init__(self, cropping=((0, 0), (0, 0))):
        super().__init__()
        (self.top, self.bottom), (self.left, self.right) = cropping

    def forward(self, x):
        return x[:, :, self.top:x.shape[2] - self.bottom, self.left:x.shape[3] - self.right]


class UpSampling2D(nn.Module):
    """``keras.layers.UpSampling2D``: 'nearest' repeats each pixel (torch's 'nearest' at an integer factor);
    'bilinear' is TF's half-pixel resize, torch's ``align_corners=False``."""

    def __init__(self, size=(2, 2), interpolation="nearest"):
        super().__init__()
        self.size, self.interpolation = pair(size), interpolation

    def forward(self, x):
        if self.interpolation == "nearest":
            return x.repeat_interleave(self.size[0], 2).repeat_interleave(self.size[1], 3)
        return F.interpolate(x, scale_factor=self.size, mode="bilinear", align_corners=False)


class Resize(nn.Module):
    """``keras.ops.image.resize`` / ``keras.layers.Resizing`` to ``size`` (H, W), without antialiasing: TF's
    bilinear uses half-pixel centres (torch's ``align_corners=False``) and TF's nearest picks
    ``floor((i + 0.5) * scale)`` (torch's 'nearest-exact'; torch's 'nearest' drops the 0.5)."""

    MODES = {"bilinear": "bilinear", "nearest": "nearest-exact"}

    def __init__(self, size, interpolation="bilinear"):
        super().__init__()
        self.size, self.interpolation = tuple(size), interpolation

    def forward(self, x):
        mode = self.MODES[self.interpolation]
        return F.interpolate(x, size=self.size, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


class Flatten(nn.Module):
    """``keras.layers.Flatten``: Keras flattens an NHWC map in H, W, C order, so ``order`` (the permutation
    that puts the torch value in Keras's axis order) runs first. ``order=None`` flattens torch's C, H, W: used
    when every reader is a Dense, whose weight rows the transfer reorders instead (no transpose at run time)."""

    def __init__(self, order=None):
        super().__init__()
        self.order = None if order is None else tuple(order)

    def forward(self, x):
        return (x if self.order is None else x.permute(self.order)).flatten(1)


class Reshape(nn.Module):
    """``keras.layers.Reshape`` on the torch layout: ``pre`` (a permutation, or None) puts the axes that
    Keras merges or splits next to each other, then the reshape to ``(N, *shape)`` (-1: the one size left
    free), then ``post`` (or None) gives the torch layout of the result (NCHW for a map)."""

    def __init__(self, shape, pre=None, post=None):
        super().__init__()
        self.shape = tuple(shape)
        self.pre, self.post = (None if p is None else tuple(p) for p in (pre, post))

    def forward(self, x):
        if self.pre is not None:
            x = x.permute(self.pre)
        x = x.reshape(x.shape[0], *self.shape)
        return x if self.post is None else x.permute(self.post)


class Permute(nn.Module):
    """``keras.layers.Permute``, as the permutation of the torch layout that gives the same values."""

    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(self.dims)


class Dropout(nn.Module):
    """``keras.layers.Dropout``: the identity at inference. In training, each element (or each slice of
    ``noise_shape``, in torch's dim order, -1 = the input's size: EfficientNet's per-sample drop is
    (-1, 1, 1, 1)) is kept with probability 1 - rate and scaled by 1 / (1 - rate), as in Keras; the random
    masks themselves cannot match across frameworks."""

    def __init__(self, rate, noise_shape=None):
        super().__init__()
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def forward(self, x):
        if not self.training or self.rate == 0:
            return x
        if self.noise_shape is None:
            return F.dropout(x, self.rate, True)
        shape = [x.shape[i] if s == -1 else s for i, s in enumerate(self.noise_shape)]
        keep = torch.rand(shape, dtype=x.dtype, device=x.device) >= self.rate
        return x * keep / (1.0 - self.rate)


class Rescaling(nn.Module):
    """``keras.layers.Rescaling``: ``x * scale + offset``; a list scales (or offsets) Keras's last axis,
    torch dim ``dim``."""

    def __init__(self, scale, offset=0.0, dim=1):
        super().__init__()
        self.scale, self.offset, self.dim = scale, offset, dim

    def along(self, x, value):
        if not isinstance(value, (list, tuple)):
            return value
        shape = [1] * x.dim()
        shape[self.dim] = len(value)
        return x.new_tensor(value).view(shape)

    def forward(self, x):
        return x * self.along(x, self.scale) + self.along(x, self.offset)


class Normalization(nn.Module):
    """``keras.layers.Normalization`` along Keras's axis, torch dim ``dim``: ``(x - mean) / max(sqrt(variance),
    epsilon)``, where ``epsilon`` is Keras's ``keras.config.epsilon()`` (1e-7): a floor on the standard
    deviation, not ``sqrt(variance + eps)`` as in BatchNorm. ``invert`` maps back: ``mean + x * max(...)``.

    With ``mean``/``variance`` given (lists or numbers) they are constants, as in Keras (no weights); without,
    the layer holds them as buffers ``mean`` and ``variance`` of ``num_features`` values (Keras's adapted
    weights; Keras's integer ``count`` is not a weight and has no twin)."""

    def __init__(self, mean=None, variance=None, num_features=None, invert=False, epsilon=1e-7, dim=1):
        super().__init__()
        self.constants = mean is not None
        if self.constants:
            self.mean_value, self.variance_value = mean, variance
        else:
            self.register_buffer("mean", torch.zeros(num_features))
            self.register_buffer("variance", torch.ones(num_features))
        self.invert, self.epsilon, self.dim = invert, epsilon, dim

    def along(self, x, value):
        """``value`` (a buffer, a list or a number) shaped to broadcast along ``dim``."""
        shape = [1] * x.dim()
        if isinstance(value, (torch.Tensor, list, tuple)):
            shape[self.dim] = -1
        value = value if isinstance(value, torch.Tensor) else x.new_tensor(value)
        return value.view(shape)

    def forward(self, x):
        mean, variance = (self.mean_value, self.variance_value) if self.constants else (self.mean, self.variance)
        mean, variance = self.along(x, mean), self.along(x, variance)
        std = torch.clamp(torch.sqrt(variance), min=self.epsilon)  # Keras: maximum(sqrt(variance), epsilon)
        return mean + x * std if self.invert else (x - mean) / std


class LayerNormalization(nn.LayerNorm):
    """``keras.layers.LayerNormalization`` over Keras's ``axis``, torch dims ``dims`` (channels-last in Keras is
    dim 1 of an NCHW map: moved last for ``F.layer_norm``, then back). Keras's ``epsilon`` default is 1e-3
    (torch's 1e-5); ``center=False``/``scale=False`` drop beta/gamma as Keras does."""

    def __init__(self, normalized_shape, dims=(-1,), epsilon=1e-3, center=True, scale=True):
        super().__init__(normalized_shape, eps=epsilon, bias=center)
        if not scale:
            self.register_parameter("weight", None)
        self.dims = tuple(dims)

    def forward(self, x):
        dims = [d % x.dim() for d in self.dims]
        last = list(range(x.dim() - len(dims), x.dim()))
        if dims == last:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        y = F.layer_norm(x.movedim(dims, last), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.movedim(last, dims)


class LayerScale(nn.Module):
    """ConvNeXt's ``LayerScale`` (``keras.applications.convnext``): ``x * gamma``, one factor per channel of
    Keras's last axis, torch dim ``dim``."""

    def __init__(self, init_values, projection_dim, dim=1):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((projection_dim,), float(init_values)))
        self.dim = dim

    def forward(self, x):
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return x * self.gamma.view(shape)


class Add(nn.Module):
    """``keras.layers.Add`` and ``keras.ops.add``: the sum, in input order, plus ``constant`` (a number) when
    one operand of the op is a number (MobileNetV3's ``x + 3.0``)."""

    def __init__(self, constant=None):
        super().__init__()
        self.constant = constant

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out if self.constant is None else out + self.constant


class Multiply(nn.Module):
    """``keras.layers.Multiply`` and ``keras.ops.multiply``: the product, in input order (broadcasting, as an
    SE block's (N, C, 1, 1) scale against its (N, C, H, W) map), times ``constant`` when one operand is a
    number."""

    def __init__(self, constant=None):
        super().__init__()
        self.constant = constant

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out if self.constant is None else out * self.constant


class Subtract(nn.Module):
    """``keras.layers.Subtract`` and ``keras.ops.subtract``: ``a - b``; with a number, ``x - constant`` (or
    ``constant - x`` when the number comes first)."""

    def __init__(self, constant=None, constant_first=False):
        super().__init__()
        self.constant, self.constant_first = constant, constant_first

    def forward(self, *xs):
        if self.constant is None:
            return xs[0] - xs[1]
        return self.constant - xs[0] if self.constant_first else xs[0] - self.constant


class Divide(nn.Module):
    """``keras.ops.divide`` / ``true_divide`` (``a / b``): with a number, ``x / constant`` (or ``constant / x``
    when the number comes first)."""

    def __init__(self, constant=None, constant_first=False):
        super().__init__()
        self.constant, self.constant_first = constant, constant_first

    def forward(self, *xs):
        if self.constant is None:
            return xs[0] / xs[1]
        return self.constant / xs[0] if self.constant_first else xs[0] / self.constant


class Average(nn.Module):
    """``keras.layers.Average``: the sum divided by the number of inputs."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs)


class Maximum(nn.Module):
    """``keras.layers.Maximum`` and ``keras.ops.maximum`` (with ``constant`` when one operand is a number)."""

    def __init__(self, constant=None):
        super().__init__()
        self.constant = constant

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.maximum(out, x)
        return out if self.constant is None else torch.clamp(out, min=self.constant)


class Minimum(nn.Module):
    """``keras.layers.Minimum`` and ``keras.ops.minimum`` (with ``constant`` when one operand is a number)."""

    def __init__(self, constant=None):
        super().__init__()
        self.constant = constant

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.minimum(out, x)
        return out if self.constant is None else torch.clamp(out, max=self.constant)


class Concatenate(nn.Module):
    """``keras.layers.Concatenate`` along Keras's ``axis``, torch dim ``dim`` (channels: 1)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, self.dim)


class Identity(nn.Module):
    """``keras.layers.Identity``."""

    def forward(self, x):
        return x
