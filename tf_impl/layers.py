"""Keras layers that core Keras lacks, each the exact twin of a torch op, and their facade modules.

Mirrors ``torch_impl/layers.py``. Every layer is registered as serializable, so a ``.keras`` file that
uses it loads in Keras safe mode.
"""
from __future__ import annotations

from tf_impl import nn
from tf_impl.backend import keras, tf

_PACKAGE = "backbone_parity"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConstantPad2D(keras.layers.Layer):
    """Pads H and W of an NHWC tensor symmetrically with ``value`` (torch ``F.pad(..., value=value)``)."""

    def __init__(self, padding, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.padding, self.value = tuple(padding), float(value)

    def call(self, x):
        ph, pw = self.padding
        return tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]], constant_values=self.value)

    def compute_output_shape(self, shape):
        ph, pw = self.padding
        grow = lambda d, p: None if d is None else d + 2 * p  # noqa: E731
        return (shape[0], grow(shape[1], ph), grow(shape[2], pw), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "value": self.value}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResizeLikeLayer(keras.layers.Layer):
    """Resizes ``x`` (NHWC) to the spatial size of ``ref``, with torch ``F.interpolate``'s index rules:

    - ``bilinear``, ``align_corners=False``: half-pixel centres (TF2 ``tf.image.resize`` default);
    - ``bilinear``, ``align_corners=True``: corner pixels aligned (``F.upsample_bilinear``);
    - ``nearest``: source index ``floor(dst * in / out)``, torch's legacy rule, not TF2's half-pixel one.
    No antialiasing on either side.
    """

    def __init__(self, mode="bilinear", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("bilinear", "nearest") or (mode == "nearest" and align_corners):
            raise ValueError(f"ResizeLike supports mode 'bilinear' (align_corners True/False) or 'nearest', "
                             f"got mode={mode!r}, align_corners={align_corners!r}")
        self.mode, self.align_corners = mode, bool(align_corners)

    def call(self, x, ref):
        size = tf.shape(ref)[1:3]
        if self.mode == "nearest":
            return tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=False,
                                                    half_pixel_centers=False)
        return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=self.align_corners,
                                         half_pixel_centers=not self.align_corners)

    def compute_output_shape(self, x_shape, ref_shape):
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "align_corners": self.align_corners}


class ResizeLike(nn.Leaf):
    """Twin of ``torch_impl.layers.ResizeLike``: ``forward(x, ref)`` resizes x to ref's H, W."""

    def __init__(self, mode="bilinear", align_corners=False):
        super().__init__()
        self.mode, self.align_corners = mode, align_corners

    def make_layers(self, name):
        return [ResizeLikeLayer(self.mode, self.align_corners, name=name)]

    def forward(self, x, ref):
        if self._layers is None:
            object.__setattr__(self, "_layers", self.make_layers(self.path))
        return self._layers[0](x, ref)


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        sq = tf.pad(tf.square(x), [[0, 0], [0, 0], [0, 0], [before, after]])
        # the channel axis becomes the last spatial axis of a 5-D NDHWC tensor with one channel
        mean = tf.nn.avg_pool3d(sq[..., None], ksize=(1, 1, self.size), strides=1, padding="VALID")[..., 0]
        return x / tf.pow(mean * self.alpha + self.k, self.beta)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


class LocalResponseNorm(nn.Leaf):
    """Twin of ``torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)``, same arguments, same
    meaning (alpha is divided by ``size``; an even window has ``size // 2`` channels before, ``(size - 1) // 2``
    after). No weights."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def make_layers(self, name):
        return [LocalResponseNormLayer(self.size, self.alpha, self.beta, self.k, name=name)]
