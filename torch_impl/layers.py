"""Small torch modules that have a custom Keras twin in ``tf_impl/layers.py``."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class ResizeLike(nn.Module):
    """``forward(x, ref)`` resizes ``x`` (NCHW) to ``ref``'s H, W with ``F.interpolate``.

    ``mode='bilinear'`` with ``align_corners`` False (half-pixel centres) or True (``F.upsample_bilinear``);
    ``mode='nearest'`` uses torch's ``floor(dst * in / out)`` source index. No antialiasing.
    """

    def __init__(self, mode: str = "bilinear", align_corners: bool = False):
        super().__init__()
        if mode not in ("bilinear", "nearest") or (mode == "nearest" and align_corners):
            raise ValueError(f"ResizeLike supports mode 'bilinear' (align_corners True/False) or 'nearest', "
                             f"got mode={mode!r}, align_corners={align_corners!r}")
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x, ref):
        size = ref.shape[-2:]
        if self.mode == "nearest":
            return F.interpolate(x, size=size, mode="nearest")
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)
