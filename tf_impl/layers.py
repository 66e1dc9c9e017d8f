"""Facade leaves of the custom Keras layers (``tf_impl/keras_layers.py``), each the twin of a module in
``torch_impl/layers.py`` or of a torch op that core Keras lacks. Mirrors ``torch_impl/layers.py``."""
from __future__ import annotations

from tf_impl import nn
from tf_impl.keras_layers import LocalResponseNormLayer, ResizeLikeLayer

__all__ = ["ResizeLike", "LocalResponseNorm", "ResizeLikeLayer", "LocalResponseNormLayer"]


class ResizeLike(nn.Leaf):
    """Twin of ``torch_impl.layers.ResizeLike``: ``forward(x, ref)`` resizes x to ref's H, W with torch's
    index rules (:class:`tf_impl.keras_layers.TorchResize`). ``ref_axes``: the Keras axes of ``ref`` that hold
    its H and W (an NHWC map: 1, 2)."""

    def __init__(self, mode="bilinear", align_corners=False, ref_axes=(1, 2)):
        super().__init__()
        self.mode, self.align_corners, self.ref_axes = mode, align_corners, tuple(ref_axes)

    def make_layers(self, name):
        rule = (f"bilinear, align_corners={bool(self.align_corners)}" if self.mode == "bilinear"
                else f"{self.mode} with torch's source index floor(dst * in / out)")
        return [nn.noted(ResizeLikeLayer(self.mode, self.align_corners, self.ref_axes, name=name), rule)]

    def forward(self, x, ref):
        return self.layers()[0](x, ref)


class LocalResponseNorm(nn.Leaf):
    """Twin of ``torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)``, same arguments, same
    meaning (alpha is divided by ``size``; an even window has ``size // 2`` channels before, ``(size - 1) // 2``
    after). No weights."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def make_layers(self, name):
        return [nn.noted(LocalResponseNormLayer(self.size, self.alpha, self.beta, self.k, name=name),
                         "torch's window: alpha / size, size // 2 channels before, (size - 1) // 2 after")]
