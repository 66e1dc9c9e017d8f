"""Exact weight transfer between a torch module and its Keras twin, in both directions.

One rule: the Keras layer named ``P`` is the twin of the torch module at path ``P``.
One layout table (:data:`LAYOUTS`): for each pair of layer types, which tensor maps to which variable and
how its axes move. Nothing here knows about a particular model.

Strict, like transformers' loader: every destination tensor must be written (else *missing*), every source
tensor must be used (else *unexpected*), shapes, dtypes and storage must fit after the layout change (else
*mismatched*: a torch tensor on the ``meta`` device or another device, a sparse or expanded one, an
inference tensor as a destination, two destinations sharing one storage with different values), the Keras
model must be built, and the settings of each pair that hold no weights must agree (:data:`SETTINGS`: conv
and pool geometry with the ``_pad`` helper's amount and value, BatchNorm eps and momentum, Dropout rate,
LocalResponseNorm and resize parameters) unless the caller passes ``allow_numerics_mismatch=True``. Every
check runs in the plan, before the first write, so a transfer that raises leaves the destination exactly as
it was.

``num_batches_tracked`` has no Keras counterpart and is never transferred.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.autograd.graph import increment_version
from torch.utils.dlpack import from_dlpack, to_dlpack

from parity.errors import TransferError
from parity.layout import inverse
from tf_impl.backend import keras, tf
from torch_impl import keras_nn
from torch_impl.layers import ResizeLike


@dataclass(frozen=True)
class Mismatch:
    """One tensor or setting that does not fit. Shapes and values are in the destination's layout."""

    name: str
    expected: object
    received: object
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: expected {self.expected}, received {self.received} ({self.reason})"


@dataclass
class TransferReport:
    """What a transfer did. ``missing``: destination tensors no source tensor fills; ``unexpected``: source
    tensors with no destination; ``mismatched``: pairs whose shape, dtype or type does not fit;
    ``numerics``: settings that differ (an error unless allowed)."""

    direction: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[Mismatch] = field(default_factory=list)
    numerics: list[Mismatch] = field(default_factory=list)
    numerics_allowed: bool = False
    not_built: list[str] = field(default_factory=list)  # Keras layers (or the model) without variables yet
    tied: list[tuple] = field(default_factory=list)  # torch destinations sharing one storage, written once
    tensors: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.not_built or self.missing or self.unexpected or self.mismatched
                    or (self.numerics and not self.numerics_allowed))

    def problems(self) -> list[str]:
        out = [f"the Keras model is not built: {n} has no variables yet (call the model on an input, or start "
               f"a keras.Sequential with keras.Input, before transferring)" for n in self.not_built]
        out += [f"missing in source: {n}" for n in self.missing]
        out += [f"unexpected (no destination): {n}" for n in self.unexpected]
        out += [f"mismatched {m}" for m in self.mismatched]
        if not self.numerics_allowed:
            out += [f"numerics differ {m}" for m in self.numerics]
        return out

    def __str__(self) -> str:
        head = (f"transfer {self.direction}: {self.tensors} tensors, {self.bytes / 1e6:.1f} MB in "
                f"{self.seconds * 1e3:.0f} ms")
        return "\n  ".join([head] + self.problems())


# --- the layout table -------------------------------------------------------------------------------------
# Each entry: torch tensor name -> (Keras variable name, torch->Keras move, Keras->torch move). A move
# function takes the source shape and ``ctx`` (per-layer facts: depth multiplier, flatten shape) and returns
# a :class:`Move`: data, so the plan checks shapes without touching a byte and the write runs it in one pass.

@dataclass(frozen=True)
class Move:
    """A layout change: ``reshape(pre)``, then ``permute(perm)``, then ``reshape(post)``; None skips a step.

    Run by :meth:`apply` on TensorFlow tensors: TF's transpose is cache-blocked and threaded (VGG19's fc1,
    411 MB: 69 ms here, against 2.2 s for torch's ``permute(...).contiguous()``)."""

    pre: tuple | None = None
    perm: tuple | None = None
    post: tuple | None = None

    def shape(self, src: tuple) -> tuple:
        """The destination shape for source shape ``src``; ValueError when a step cannot fit."""
        n, shape = int(np.prod(src)), tuple(src)
        for step, new in (("reshape", self.pre), ("permute", self.perm), ("reshape", self.post)):
            if new is None:
                continue
            if step == "permute":
                if sorted(new) != list(range(len(shape))):
                    raise ValueError(f"cannot permute a rank-{len(shape)} tensor by {new}")
                shape = tuple(shape[i] for i in new)
            elif int(np.prod(new)) != n:
                raise ValueError(f"cannot reshape {n} elements to {tuple(new)}")
            else:
                shape = tuple(new)
        return shape

    def apply(self, x):
        """The move on a TensorFlow tensor. Source axes that stay neighbours are merged first, so that
        VGG19's fc1 reorder is a 3-D transpose (out, C, H*W) -> (H*W, C, out): about 2x faster than in 4-D."""
        dst_shape = self.shape(tuple(x.shape))
        if self.perm is None:
            return tf.reshape(x, dst_shape)
        merged, perm = _merge_axes(tuple(x.shape) if self.pre is None else tuple(self.pre), self.perm)
        return tf.reshape(tf.transpose(tf.reshape(x, merged), perm), dst_shape)


def _merge_axes(shape: tuple, perm: tuple) -> tuple[tuple, tuple]:
    """``(shape, perm)`` with runs of source axes that stay adjacent and in order under ``perm`` merged."""
    runs = [[perm[0]]]
    for a in perm[1:]:
        if a == runs[-1][-1] + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    order = sorted(range(len(runs)), key=lambda r: runs[r][0])  # runs in source order
    merged = tuple(int(np.prod([shape[a] for a in runs[r]])) for r in order)
    return merged, tuple(order.index(r) for r in range(len(runs)))


def _conv_to_keras(shape, ctx):  # OIHW -> HWIO
    return Move(perm=(2, 3, 1, 0))


def _conv_to_torch(shape, ctx):  # HWIO -> OIHW
    return Move(perm=(3, 2, 0, 1))


def _depthwise_to_keras(shape, ctx):  # (C*m, 1, kh, kw) -> (kh, kw, C, m)
    c_m, _, kh, kw = shape
    m = ctx["multiplier"]
    return Move(pre=(c_m // m, m, kh, kw), perm=(2, 3, 0, 1))


def _depthwise_to_torch(shape, ctx):  # (kh, kw, C, m) -> (C*m, 1, kh, kw)
    kh, kw, c, m = shape
    return Move(perm=(2, 3, 0, 1), post=(c * m, 1, kh, kw))


def _dense_to_keras(shape, ctx):  # (out, in) -> (in, out); rows reordered from C,H,W to H,W,C after a flatten
    hwc = ctx.get("flatten_hwc")
    if hwc is None:
        return Move(perm=(1, 0))
    (h, w, c), out = hwc, shape[0]
    return Move(pre=(out, c, h, w), perm=(2, 3, 1, 0), post=(h * w * c, out))


def _dense_to_torch(shape, ctx):  # (in, out) -> (out, in), the inverse of the above
    hwc = ctx.get("flatten_hwc")
    if hwc is None:
        return Move(perm=(1, 0))
    (h, w, c), out = hwc, shape[1]
    return Move(pre=(h, w, c, out), perm=(3, 2, 0, 1), post=(out, c * h * w))


def _same(shape, ctx):
    return Move()


_BIAS = ("bias", _same, _same)
LAYOUTS = {
    (nn.Conv2d, "Conv2D"): {"weight": ("kernel", _conv_to_keras, _conv_to_torch), "bias": _BIAS},
    (nn.Conv2d, "DepthwiseConv2D"): {"weight": ("kernel", _depthwise_to_keras, _depthwise_to_torch),
                                     "bias": _BIAS},
    (nn.Linear, "Dense"): {"weight": ("kernel", _dense_to_keras, _dense_to_torch), "bias": _BIAS},
    (nn.BatchNorm2d, "BatchNormalization"): {
        "weight": ("gamma", _same, _same), "bias": ("beta", _same, _same),
        "running_mean": ("moving_mean", _same, _same), "running_var": ("moving_variance", _same, _same)},
    # the Keras -> torch facade (torch_impl/keras_nn.py): Keras layers that torch.nn has no class for
    (keras_nn.SeparableConv2D, "SeparableConv2D"): {
        "depthwise_weight": ("depthwise_kernel", _depthwise_to_keras, _depthwise_to_torch),
        "pointwise_weight": ("pointwise_kernel", _conv_to_keras, _conv_to_torch), "bias": _BIAS},
    (nn.LayerNorm, "LayerNormalization"): {"weight": ("gamma", _same, _same), "bias": ("beta", _same, _same)},
    (keras_nn.LayerScale, "LayerScale"): {"gamma": ("variable", _same, _same)},  # ConvNeXt's: an unnamed weight
    (keras_nn.Normalization, "Normalization"): {"mean": ("mean", _same, _same),
                                                "variance": ("variance", _same, _same)},
}
# Per-layer facts a move needs, for entries of the generic loop in _layout (Keras class -> ctx function).
LAYOUT_CONTEXT = {"SeparableConv2D": lambda tm, layer: {"multiplier": tm.depth_multiplier}}


def _held_entry(layer) -> dict:
    """The layout entry of a ``TorchTensors`` layer (tensors a torch module uses in its own forward): each
    variable is named like its tensor, and the layer's config says how its axes move (the tensor seen with
    leading size-1 axes at the rank of ``perm``, transposed by ``perm``, reshaped to the variable's shape)."""
    entry = {}
    for name, spec in layer.tensors.items():
        perm, tshape, kshape = spec["perm"], spec["torch_shape"], spec["shape"]
        full = (1,) * (len(perm) - len(tshape)) + tuple(tshape)
        moved, back = tuple(full[a] for a in perm), inverse(perm)
        entry[name] = (name, lambda shape, ctx, full=full, perm=perm, kshape=kshape: Move(full, perm, kshape),
                       lambda shape, ctx, moved=moved, back=back, tshape=tshape: Move(moved, back, tshape))
    return entry


# --- the two sides ----------------------------------------------------------------------------------------

def torch_tensors(module: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """``{module path: {tensor name: tensor}}`` for every module that holds parameters or float buffers."""
    out = {}
    for path, m in module.named_modules():
        own = {n: p for n, p in m.named_parameters(recurse=False)}
        own.update({n: b for n, b in m.named_buffers(recurse=False)
                    if b is not None and b.is_floating_point()})
        if own:
            out[path] = own
    return out


def keras_layers(model) -> dict[str, object]:
    """``{layer name: layer}`` for every leaf layer that holds weights, looking inside nested models."""
    out = {}
    stack = list(reversed(model.layers))
    while stack:
        layer = stack.pop()
        if getattr(layer, "layers", None):
            stack.extend(reversed(layer.layers))
        elif layer.weights:
            if layer.name in out:
                raise ValueError(f"two Keras layers are named {layer.name!r}; transfer matches by name, so layer "
                                 f"names must be unique")
            out[layer.name] = layer
    return out


def keras_names(module: nn.Module) -> dict[str, str]:
    """``{torch module path: Keras layer name}`` where the two differ: an automatic twin of a Keras model whose
    layer names are not Python identifiers keeps the map in its ``KERAS_NAMES`` (``parity.convert.from_keras``).
    The transfer, the trace and the summary match layers through it; elsewhere path = name."""
    return dict(getattr(module, "KERAS_NAMES", None) or {})


def _is_float(variable) -> bool:
    return "float" in str(variable.dtype)


def _variable_name(variable) -> str:
    """A Keras variable's name in the layout table. Keras names a weight created without a name ``variable``,
    ``variable_1``, ... (one counter for the whole process; ConvNeXt's ``LayerScale``): all are ``variable``."""
    return "variable" if re.fullmatch(r"variable(_\d+)?", variable.name) else variable.name


def refresh_keras_state(model) -> None:
    """Makes the Keras layers of ``model`` read their just-written variables. Keras's ``Normalization`` (and
    the other adapted preprocessing layers) compute from a copy taken at build time, refreshed only by
    ``finalize_state()``: assigning its ``mean``/``variance`` alone changes nothing in its output."""
    for layer in keras_layers(model).values():
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()


def flatten_hwc(layer):
    """(H, W, C) of the map a Keras Dense layer reads through a Flatten (Dropouts in between allowed), else
    None: the flatten-order rule, read from the Keras graph, so it holds in both directions (the Keras ->
    torch converter asks it which flatten order the transfer expects)."""
    try:
        op = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
        while isinstance(op, keras.layers.Dropout):
            op = op._inbound_nodes[0].input_tensors[0]._keras_history.operation
    except (IndexError, AttributeError):
        return None
    if not isinstance(op, keras.layers.Flatten):
        return None
    shape = tuple(op._inbound_nodes[0].input_tensors[0].shape[1:])
    if len(shape) != 3 or shape[0] * shape[1] == 1:
        return None
    if None in shape:
        raise ValueError(f"Dense layer {layer.name!r} reads a Flatten of a map with unknown size {shape}; "
                         f"the NCHW->NHWC row order needs a fixed input size")
    return shape


# --- settings that hold no weights ------------------------------------------------------------------------
# torch type -> (Keras layer types it may pair with, compare function). A compare function takes the torch
# module, the Keras layer named after its path and the facade's helper layers of that path (``pad``:
# ``<path>_pad``, ``gap``: ``<path>_gap``, None where absent) and returns :class:`Setting` rows; a row whose
# two values differ is a ``numerics`` mismatch. One small function per torch type, registered by
# :func:`settings`; the most specific registered type of a module wins.

@dataclass(frozen=True)
class Setting:
    torch_name: str
    torch_value: object
    keras_name: str
    keras_value: object
    reason: str

    def differs(self) -> bool:
        return not _same(self.torch_value, self.keras_value)

    def mismatch(self, path: str) -> Mismatch:
        return Mismatch(path, f"{self.torch_name} {_fmt(self.torch_value)}",
                        f"{self.keras_name} {_fmt(self.keras_value)}", self.reason)


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    numbers = (int, float, np.integer, np.floating)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)  # -inf equals -inf; 1 - 0.1 equals 0.9
    return type(a) is type(b) and a == b


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return f"{v:g}" if isinstance(v, float) else str(v)


SETTINGS: dict[type, tuple[tuple[str, ...], object]] = {}


def settings(torch_type: type, *keras_types: str):
    """Registers ``fn(module, layer, helpers) -> [Setting]`` for ``torch_type`` paired with ``keras_types``."""
    def register(fn):
        SETTINGS[torch_type] = (keras_types, fn)
        return fn
    return register


def _pair(v) -> tuple:
    return (v, v) if isinstance(v, int) else tuple(v)


def _torch_pads(padding, kernel, dilation) -> tuple:
    """torch's (top, bottom, left, right) for a padding of ints or 'valid' / 'same' (extra pixel after)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def _keras_pads(layer, helper, kernel, dilation=(1, 1)):
    """``((top, bottom, left, right), pad value)`` of a Keras conv or pool with its ``_pad`` helper. TF's
    'same' at stride 1 pads ``total // 2`` before; at a larger stride its padding depends on the input size,
    which no fixed torch padding matches in general, so it is returned as words. The value is None where
    the padding is not a value (a 'same' pool ignores it)."""
    pads, value = (0, 0, 0, 0), None
    if getattr(layer, "padding", "valid") == "same":  # DilatedMaxPool2D: 'valid' after its pad helper
        if tuple(layer.strides) != (1, 1):
            return f"'same' at strides {tuple(layer.strides)} (depends on the input size)", None
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        pads = (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    if helper is not None:
        if isinstance(helper, keras.layers.ZeroPadding2D):
            (t, b), (left, r) = helper.padding
            extra, value = (t, b, left, r), 0.0
        else:  # tf_impl.layers.ConstantPad2D
            ph, pw = helper.padding
            extra, value = (ph, ph, pw, pw), float(helper.value)
        pads = tuple(a + e for a, e in zip(pads, extra))
    return pads, value


@settings(nn.Conv2d, "Conv2D", "DepthwiseConv2D")
def _conv(tm, layer, helpers):
    kernel, dilation = tuple(tm.kernel_size), tuple(tm.dilation)
    pads, value = _keras_pads(layer, helpers["pad"], kernel, tuple(layer.dilation_rate))
    rows = [Setting("kernel_size", kernel, "kernel_size", tuple(layer.kernel_size), "conv geometry"),
            Setting("stride", tuple(tm.stride), "strides", tuple(layer.strides), "conv geometry"),
            Setting("dilation", dilation, "dilation_rate", tuple(layer.dilation_rate), "conv geometry"),
            Setting("padding (top, bottom, left, right)", _torch_pads(tm.padding, kernel, dilation),
                    "padding", pads, "conv padding: torch pads symmetrically, TF's 'same' bottom/right first"),
            Setting("padding_mode", tm.padding_mode, "pad mode", "zeros", "conv padding mode")]
    if value is not None:
        rows.append(Setting("pad value", 0.0, f"{helpers['pad'].name} value", value, "conv pads with zeros"))
    return rows


@settings(nn.BatchNorm2d, "BatchNormalization")
def _batchnorm(tm, layer, helpers):
    keras_momentum = None if tm.momentum is None else 1.0 - tm.momentum
    return [Setting("eps", tm.eps, "epsilon", layer.epsilon, "BatchNorm eps (torch default 1e-5, Keras default 1e-3)"),
            Setting(f"Keras momentum (1 - torch {tm.momentum})", keras_momentum, "momentum", layer.momentum,
                    "BatchNorm momentum: Keras = 1 - torch")]


def _pool(tm, layer, helpers, pad_value, include_pad):
    """Settings shared by max and average pools: window, stride, padding (amount and value), ceil mode.
    The Keras side is a Keras pool, or a facade layer with torch's own arguments (``DilatedMaxPool2D``'s
    ``kernel_size``; ``AvgPool2D`` pads, counts and rounds inside itself)."""
    kernel = _pair(tm.kernel_size)
    stride = _pair(tm.stride if tm.stride else tm.kernel_size)
    torch_pads = _torch_pads(tm.padding, kernel, (1, 1))
    window = tuple(getattr(layer, "pool_size", None) or layer.kernel_size)
    if type(layer).__name__ == "AvgPool2D":  # tf_impl.keras_layers.AvgPool2D: torch's arguments, as they are
        (ph, pw), value = layer.padding, 0.0
        pads = (ph, ph, pw, pw)
    else:
        pads, value = _keras_pads(layer, helpers["pad"], window)
    rows = [Setting("kernel_size", kernel, "pool_size", window, "pool window"),
            Setting("stride", stride, "strides", tuple(layer.strides), "pool stride"),
            Setting("padding (top, bottom, left, right)", torch_pads, "padding", pads, "pool padding")]
    if any(torch_pads) and _same(torch_pads, pads):  # the amounts agree: then what the padding holds
        keras_value = pad_value if value is None else value  # 'same': TF leaves the padding out
        rows.append(Setting("pad value", pad_value, "pad value", keras_value, "pool pad value"))
        if include_pad is not None:
            counted = getattr(layer, "count_include_pad", value is not None)  # 'same' padding is not counted
            rows.append(Setting("count_include_pad", include_pad, "padding counted in the mean", counted,
                                "average-pool divisor"))
    if stride != (1, 1) or tm.ceil_mode:
        pad = helpers["pad"]
        ceil = getattr(layer, "ceil_mode", False) or getattr(pad, "ceil_pool", None) is not None
        rows.append(Setting("ceil_mode", tm.ceil_mode, "ceil mode", ceil, "pool output size: Keras 'valid' floors"))
    return rows


@settings(nn.MaxPool2d, "MaxPooling2D", "DilatedMaxPool2D")
def _max_pool(tm, layer, helpers):
    return _pool(tm, layer, helpers, float("-inf"), None) + [
        Setting("dilation", _pair(tm.dilation), "dilation", tuple(getattr(layer, "dilation", (1, 1))),
                "pool dilation (Keras pools have none: DilatedMaxPool2D)")]


@settings(nn.AvgPool2d, "AveragePooling2D", "AvgPool2D")
def _avg_pool(tm, layer, helpers):
    return _pool(tm, layer, helpers, 0.0, tm.count_include_pad) + [
        Setting("divisor_override", tm.divisor_override, "divisor", getattr(layer, "divisor_override", None),
                "average-pool divisor")]


@settings(nn.AdaptiveAvgPool2d, "Reshape", "GlobalAveragePooling2D", "AdaptivePool2D")
@settings(nn.AdaptiveMaxPool2d, "Reshape", "GlobalMaxPooling2D", "AdaptivePool2D")
def _adaptive_pool(tm, layer, helpers):
    mode = "avg" if isinstance(tm, nn.AdaptiveAvgPool2d) else "max"
    size = (tm.output_size,) * 2 if tm.output_size is None or isinstance(tm.output_size, int) else tuple(tm.output_size)
    if type(layer).__name__ == "AdaptivePool2D":
        return [Setting("output_size", size, "output_size", tuple(layer.output_size), "adaptive pool bins"),
                Setting("mode", mode, "mode", layer.mode, "adaptive pool reduction")]
    gap = helpers["gap"] if helpers["gap"] is not None else layer
    is_global = isinstance(gap, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D))
    kind = ("avg" if isinstance(gap, keras.layers.GlobalAveragePooling2D) else "max") if is_global else None
    return [Setting("output_size", size, "output size", (1, 1) if is_global else "not global", "adaptive pool"),
            Setting("mode", mode, "global pool", kind, "adaptive pool reduction")]


@settings(nn.Dropout, "Dropout")
def _dropout(tm, layer, helpers):
    return [Setting("p", float(tm.p), "rate", float(layer.rate), "Dropout rate (the identity at inference only)")]


@settings(nn.Flatten, "Flatten")
def _flatten(tm, layer, helpers):
    return [Setting("(start_dim, end_dim)", (tm.start_dim, tm.end_dim), "flattens", (1, -1),
                    "Keras flattens every axis but the batch")]


@settings(nn.LocalResponseNorm, "LocalResponseNormLayer")
def _lrn(tm, layer, helpers):
    return [Setting(attr, float(getattr(tm, attr)), attr, float(getattr(layer, attr)), "LocalResponseNorm")
            for attr in ("size", "alpha", "beta", "k")]


@settings(ResizeLike, "ResizeLikeLayer")
def _resize(tm, layer, helpers):
    return [Setting("mode", tm.mode, "mode", layer.mode, "resize rule"),
            Setting("align_corners", bool(tm.align_corners), "align_corners", bool(layer.align_corners),
                    "resize rule")]


# the Keras -> torch facade (torch_impl/keras_nn.py): each module keeps Keras's own arguments, compared as such

def _keras_geometry(module, layer, kernel, stride, dilation=(1, 1)) -> list:
    """Window, stride, dilation and padding of a keras_nn conv or pool against its Keras layer. The module
    pads with TF's 'same' rule at run time (``pad_same``) or with a static symmetric torch padding, which must
    equal what the Keras layer pads ('same' at stride 1 is static; a 1x1 'same' pads nothing)."""
    rows = [Setting("kernel", tuple(kernel), "kernel", tuple(getattr(layer, "kernel_size", None) or layer.pool_size),
                    "window"),
            Setting("strides", tuple(stride), "strides", tuple(layer.strides), "stride"),
            Setting("dilation", tuple(dilation), "dilation_rate", tuple(getattr(layer, "dilation_rate", (1, 1))),
                    "dilation")]
    if module.pad_same:
        return rows + [Setting("padding", "same", "padding", layer.padding, "TF's 'same', from the input size")]
    ph, pw = module.padding
    pads, _ = _keras_pads(layer, None, tuple(kernel), tuple(dilation))
    return rows + [Setting("padding (top, bottom, left, right)", (ph, ph, pw, pw), "padding", pads,
                           "static padding: TF's 'same' at stride 1, or 'valid'")]


@settings(keras_nn.Conv2D, "Conv2D", "DepthwiseConv2D")
def _keras_conv(tm, layer, helpers):
    return _keras_geometry(tm, layer, tm.kernel_size, tm.stride, tm.dilation) + [
        Setting("activation", tm.activation, "activation", keras.activations.serialize(layer.activation),
                "fused activation")]


@settings(keras_nn.SeparableConv2D, "SeparableConv2D")
def _keras_separable(tm, layer, helpers):
    return _keras_geometry(tm, layer, tm.kernel_size, tm.stride, tm.dilation) + [
        Setting("depth_multiplier", tm.depth_multiplier, "depth_multiplier", layer.depth_multiplier, "depthwise"),
        Setting("activation", tm.activation, "activation", keras.activations.serialize(layer.activation),
                "fused activation")]


@settings(keras_nn.Dense, "Dense")
def _keras_dense(tm, layer, helpers):
    return [Setting("activation", tm.activation, "activation", keras.activations.serialize(layer.activation),
                    "fused activation")]


@settings(keras_nn.MaxPooling2D, "MaxPooling2D")
@settings(keras_nn.AveragePooling2D, "AveragePooling2D")
def _keras_pool(tm, layer, helpers):
    return _keras_geometry(tm, layer, tm.pool_size, tm.strides)


@settings(keras_nn.Dropout, "Dropout")
def _keras_dropout(tm, layer, helpers):
    return [Setting("rate", float(tm.rate), "rate", float(layer.rate), "Dropout rate (the identity at inference only)")]


def _settings_rule(tm: nn.Module):
    """The :data:`SETTINGS` entry of the most specific registered type of ``tm``, or None. A copy of a
    ``torch_impl.keras_nn`` class (``parity convert`` writes them into a standalone file: same name, another
    module) follows that class's rule, not its torch base's (a ``Conv2D`` that pads with TF's 'same' rule at
    run time is not an ``nn.Conv2d`` with a static padding)."""
    for cls in type(tm).__mro__:
        if cls in SETTINGS:
            return SETTINGS[cls]
        original = getattr(keras_nn, cls.__name__, None)
        if original in SETTINGS and not cls.__module__.startswith("torch."):
            return SETTINGS[original]
    return None


def _settings(path: str, tm: nn.Module, layers: dict) -> list[Mismatch]:
    """Mismatches between torch module ``tm`` and the Keras layer named ``path`` (with its helpers)."""
    rule = _settings_rule(tm)
    if rule is None or path not in layers:
        return []
    keras_types, compare = rule
    layer = layers[path]
    if not any(c.__name__ in keras_types for c in type(layer).__mro__):  # a subclass holds its base's settings
        return [Mismatch(path, f"a Keras {' or '.join(keras_types)}", type(layer).__name__,
                         f"layer type for torch {type(tm).__name__}")]
    helpers = {h: layers.get(f"{path}_{h}") for h in ("pad", "gap")}
    return [row.mismatch(path) for row in compare(tm, layer, helpers) if row.differs()]


def all_keras_layers(model) -> dict[str, object]:
    """``{layer name: layer}`` for every layer, weights or not, looking inside nested models (first wins)."""
    out, stack = {}, list(reversed(model.layers))
    while stack:
        layer = stack.pop()
        out.setdefault(layer.name, layer)
        if getattr(layer, "layers", None):
            stack.extend(reversed(layer.layers))
    return out


def _unbuilt(model) -> list[str]:
    """The model's name when it is not built, else the names of leaf layers without variables yet."""
    if not model.built:
        return [repr(model.name)]
    return [repr(n) for n, layer in all_keras_layers(model).items()
            if not getattr(layer, "layers", None) and not layer.built]


def _keras_kind(layer) -> str:
    """The name of ``layer``'s class, or of the nearest base class in :data:`LAYOUTS` (a subclass such as
    ``tf_impl.batch_norm.TorchBatchNormalization`` holds its Keras base's variables, so it moves the same)."""
    known = {kt for _, kt in LAYOUTS}
    return next((c.__name__ for c in type(layer).__mro__ if c.__name__ in known), type(layer).__name__)


def _layout(tm: nn.Module, layer):
    """The layout-table entry and its context for a torch module / Keras layer pair, or a reason why none."""
    kname = _keras_kind(layer)  # TorchConv2D: Conv2D's kernel, so Conv2D's layout
    if kname == "TorchTensors":
        return _held_entry(layer), {}
    if isinstance(tm, nn.Conv2d) and tm.groups != 1 and kname == "Conv2D":  # a Keras grouped Conv2D (groups=g):
        if layer.groups != tm.groups:  # kernel (kh, kw, in/g, out), torch's weight (out, in/g, kh, kw)
            return None, f"grouped conv: torch groups={tm.groups}, Keras groups={layer.groups}"
        return LAYOUTS[(nn.Conv2d, kname)], {}
    if isinstance(tm, nn.Conv2d) and (tm.groups != 1 or kname == "DepthwiseConv2D"):  # (one input channel: groups 1)
        if kname != "DepthwiseConv2D" or tm.groups != tm.in_channels:
            return None, (f"grouped conv (groups={tm.groups}) pairs with Conv2D(groups={tm.groups}), or with "
                          f"DepthwiseConv2D when groups == in_channels")
        return LAYOUTS[(nn.Conv2d, kname)], {"multiplier": tm.out_channels // tm.in_channels}
    for (ttype, kt), entry in LAYOUTS.items():
        if isinstance(tm, ttype) and kname == kt:
            if kt == "Dense":
                return entry, {"flatten_hwc": flatten_hwc(layer)}
            return entry, LAYOUT_CONTEXT[kt](tm, layer) if kt in LAYOUT_CONTEXT else {}
    return None, f"no layout for torch {type(tm).__name__} -> Keras {kname}"


def _plan(module: nn.Module, model, to_keras: bool, allow_numerics_mismatch: bool):
    """Matches every tensor and checks its shape, dtype and storage after the layout change, and every
    setting; returns ``(report, writes)`` with one ``(name, source, destination, Move, bytes)`` per tensor.
    Writes no data (reads only the values of torch destinations that share a storage)."""
    report = TransferReport("torch -> keras" if to_keras else "keras -> torch",
                            numerics_allowed=allow_numerics_mismatch)
    report.not_built = _unbuilt(model)
    if report.not_built:
        return report, []
    names = keras_names(module)
    ttensors = {names.get(p, p): t for p, t in torch_tensors(module).items()}
    tmodules = {names.get(p, p): m for p, m in module.named_modules()}
    klayers, every_layer = keras_layers(model), all_keras_layers(model)
    writes, paired = [], set()
    for path in ttensors.keys() - klayers.keys():
        lost = [f"{path}.{n}" for n in ttensors[path]]
        (report.unexpected if to_keras else report.missing).extend(lost)
    for path in klayers.keys() - ttensors.keys():
        lost = [v.path for v in klayers[path].weights if _is_float(v)]
        (report.missing if to_keras else report.unexpected).extend(lost)
    for path in [p for p in ttensors if p in klayers]:  # torch definition order
        tm, layer = tmodules[path], klayers[path]
        entry, ctx = _layout(tm, layer)
        if entry is None:
            report.mismatched.append(Mismatch(path, type(tm).__name__, type(layer).__name__, ctx))
            continue
        paired.add(path)
        kvars = {_variable_name(v): v for v in layer.weights if _is_float(v)}  # counters are no weights
        used = set()
        for tname, tensor in ttensors[path].items():
            if tname not in entry:
                (report.unexpected if to_keras else report.missing).append(f"{path}.{tname}")
                continue
            vname, fwd, bwd = entry[tname]
            if vname not in kvars:
                (report.missing if to_keras else report.unexpected).append(f"{path}.{tname}")
                continue
            used.add(vname)
            src, dst, move_fn = (tensor, kvars[vname], fwd) if to_keras else (kvars[vname], tensor, bwd)
            move = _check(src, dst, move_fn, ctx, report, f"{path}.{tname}", to_keras)
            if move is not None:
                writes.append((f"{path}.{tname}", src, dst, move, tensor.numel() * tensor.element_size()))
        for vname in kvars.keys() - used:
            (report.missing if to_keras else report.unexpected).append(kvars[vname].path)
    for path, tm in tmodules.items():  # settings: weight holders that paired, and every weightless module
        lone_leaf = not path and not any(True for _ in tm.children())  # a registered layer: the model's name
        if path in paired or (path not in ttensors and (path or lone_leaf)):
            report.numerics.extend(_settings(path or model.name, tm, every_layer))
    if not to_keras:
        writes = _untie(writes, report)
    for lst in (report.missing, report.unexpected):
        lst.sort()
    return report, writes


def _storage_problem(t: torch.Tensor, written: bool) -> tuple[str, str] | None:
    """``(received, reason)`` when torch tensor ``t`` cannot be read (or, ``written``, written) in place."""
    if t.device.type == "meta":
        return "a tensor on the meta device", ("device: a meta tensor holds no data; materialise the module "
                                               "first (module.to_empty(device='cpu'), then load its weights)")
    if t.device.type != "cpu":
        return f"a tensor on {t.device}", "device: move the module to the CPU first (module.cpu())"
    if t.layout != torch.strided:
        return f"layout {t.layout}", "storage: a sparse tensor; convert it with .to_dense() first"
    if t.is_conj() or t.is_neg():
        return "a lazily conjugated or negated view", "storage: call .resolve_conj() / .resolve_neg() first"
    if written and t.is_inference():
        return "an inference tensor", "storage: made under torch.inference_mode(), it cannot be written in place"
    if written and any(st == 0 and n > 1 for st, n in zip(t.stride(), t.shape)):
        return "an expanded view (stride 0)", "storage: one element stands for several; clone it first"
    return None


def _check(src, dst, move_fn, ctx, report, name, to_keras):
    """The :class:`Move` from ``src`` to ``dst``'s layout, if storage, shape and dtype fit; else records a
    Mismatch and returns None."""
    torch_side = src if to_keras else dst
    problem = _storage_problem(torch_side, written=not to_keras)
    if problem is not None:
        report.mismatched.append(Mismatch(name, "a dense CPU tensor", *problem))
        return None
    src_shape, dst_shape = tuple(src.shape), tuple(dst.shape)
    dst_dtype, src_dtype = (str(t.dtype).replace("torch.", "") for t in (dst, src))
    try:
        move = move_fn(src_shape, ctx)
        shape = move.shape(src_shape)
    except ValueError as exc:  # a reshape or permute that cannot fit
        report.mismatched.append(Mismatch(name, dst_shape, src_shape, f"layout change failed: {exc}"))
        return None
    if shape != dst_shape:
        side = "Keras" if to_keras else "torch"
        report.mismatched.append(Mismatch(name, f"{side} shape {dst_shape}",
                                          f"{shape} (source shape {src_shape})", "shape"))
        return None
    if src_dtype != dst_dtype:
        report.mismatched.append(Mismatch(name, dst_dtype, src_dtype, "dtype; cast one side first"))
        return None
    return move


def _extent(t: torch.Tensor) -> tuple[int, int, int]:
    """``(storage address, first byte, one past the last byte)`` of a torch tensor's memory."""
    size = t.element_size()
    span = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride())) if t.numel() else 0
    start = t.storage_offset() * size
    return t.untyped_storage().data_ptr(), start, start + span * size


def _untie(writes: list, report: TransferReport) -> list:
    """Keras -> torch writes with at most one per torch storage. Two torch tensors that are one (a Parameter
    shared by two modules, or the same view of one storage) are written once when the two Keras values are
    bit-identical (then the write is exact) and refused otherwise: the last write would silently win. Tensors
    that overlap only in part are refused."""
    kept = []  # (memory extent, layout, write) of each write kept
    for write in writes:
        name, src, dst, move, _ = write
        where, layout = _extent(dst), (tuple(dst.shape), dst.stride(), dst.dtype)
        clash = next((k for k in kept if k[0][0] == where[0] and k[0][1] < where[2] and where[1] < k[0][2]), None)
        if clash is None:
            kept.append((where, layout, write))
            continue
        other, other_src, other_move = clash[2][0], clash[2][1], clash[2][3]
        if clash[0] != where or clash[1] != layout:
            report.mismatched.append(Mismatch(name, "a torch tensor with memory of its own", f"memory overlapping "
                                              f"{other}", "tied storage that overlaps only in part"))
        elif _moved_bytes(src, move) == _moved_bytes(other_src, other_move):
            report.tied.append((other, name))
        else:
            report.mismatched.append(Mismatch(name, f"the value of {other}, the same torch tensor",
                                              "another value", "tied parameters: torch shares one tensor between "
                                              "two modules, the Keras twin holds two different values"))
    return [k[2] for k in kept]


def _moved_bytes(keras_var, move: Move) -> bytes:
    return move.apply(tf.convert_to_tensor(keras_var.value)).numpy().tobytes()


def _write(src, dst, move: Move, to_keras: bool) -> None:
    """Moves one tensor. torch memory is shared with TensorFlow through DLPack (no copy), the layout change
    runs in TensorFlow, and the result is copied once into the destination. The destination never shares
    memory with the source: a Keras variable must not change when the torch module is trained later."""
    if to_keras:
        source = src.detach().contiguous()
        value = move.apply(tf.experimental.dlpack.from_dlpack(to_dlpack(source)))
        if _data_ptr(value) == source.data_ptr():  # a reshape, or a transpose that only moves size-1 axes:
            value = tf.raw_ops.DeepCopy(x=value)  # still torch's memory, which assign() would adopt as is
        dst.assign(value)
    else:
        value = from_dlpack(tf.experimental.dlpack.to_dlpack(move.apply(tf.convert_to_tensor(src.value))))
        _copy_into(dst, value)


def _data_ptr(t) -> int:
    """Address of a TensorFlow tensor's first byte."""
    return from_dlpack(tf.experimental.dlpack.to_dlpack(t)).data_ptr()


def _copy_into(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst[...] = src`` byte for byte, any dtype, bumping ``dst``'s autograd version as ``copy_`` does.

    numpy's single-threaded copy, because torch's threaded ``copy_`` stalls whenever a core is busy
    elsewhere (measured here under load: 16 ms for 1 MB, against 44 us for numpy)."""
    if not dst.is_contiguous():
        dst.copy_(src)
        return
    as_bytes = lambda t: t.detach().reshape(-1).view(torch.uint8).numpy()  # noqa: E731
    np.copyto(as_bytes(dst), as_bytes(src.contiguous()))
    increment_version(dst)


def transfer(src, dst, *, allow_numerics_mismatch: bool = False) -> TransferReport:
    """Copies every weight from ``src`` to ``dst``; one is a ``torch.nn.Module``, the other a ``keras.Model``.

    The direction follows the argument types. Raises :class:`TransferError` (destination unchanged) on any
    missing, unexpected or mismatched tensor, or on differing numerics settings unless
    ``allow_numerics_mismatch``. Returns the :class:`TransferReport`.
    """
    to_keras = isinstance(src, nn.Module)
    if to_keras and not isinstance(dst, keras.Model) or (not to_keras and not (
            isinstance(src, keras.Model) and isinstance(dst, nn.Module))):
        raise TypeError(f"transfer needs a torch.nn.Module and a keras.Model (either order), "
                        f"got {type(src).__name__} -> {type(dst).__name__}")
    t0 = time.perf_counter()
    module, model = (src, dst) if to_keras else (dst, src)
    report, writes = _plan(module, model, to_keras, allow_numerics_mismatch)
    if not report.ok:
        raise TransferError(report)
    with torch.no_grad():
        for _, src_tensor, dst_tensor, move, nbytes in writes:
            _write(src_tensor, dst_tensor, move, to_keras)
            report.bytes += nbytes
    if to_keras:
        refresh_keras_state(model)
    report.tensors = len(writes)
    report.seconds = time.perf_counter() - t0
    return report
