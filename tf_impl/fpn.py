"""FPN over torchvision's ResNet-50, in Keras 3: the paper's (``fpn``) and article A's (``fpn_blog``).
Twin: ``torch_impl/fpn.py`` (same classes, arguments and module paths; see its docstring for the variants).

Shapes: input ``(N, H, W, 3)`` -> ``[P2, P3, P4, P5]``, each ``(N, h_i, w_i, out_channels)`` with the sizes of
C2..C5. The top-down additions are named ``add_m2``..``add_m4`` (under the model's path, if any).
"""
from __future__ import annotations

from tf_impl import nn
from tf_impl.backend import keras
from tf_impl.layers import ResizeLike
from tf_impl.resnet import ResNet

BACKBONE_CHANNELS = (256, 512, 1024, 2048)  # C2..C5 of resnet50


class FPN(nn.Module):
    """``shared_smooth``: one 3x3 conv for all levels (``smooth``) instead of one per level (``smooth.0..3``);
    ``mode``/``align_corners``: the top-down resize (``ResizeLike``, torch's index rules)."""

    def __init__(self, out_channels=256, shared_smooth=False, mode="nearest", align_corners=False):
        super().__init__()
        self.backbone = ResNet(num_classes=None)
        self.lateral = nn.ModuleList([nn.Conv2d(c, out_channels, 1) for c in BACKBONE_CHANNELS])
        if shared_smooth:
            self.smooth = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        else:
            self.smooth = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                         for _ in BACKBONE_CHANNELS])
        self.upsample = ResizeLike(mode, align_corners)

    def forward(self, x):
        cs, laterals = self.backbone.features(x), list(self.lateral)
        ms = [laterals[-1](cs[-1])]
        for i in range(len(cs) - 2, -1, -1):
            lateral = laterals[i](cs[i])
            name = f"{self.path}_add_m{i + 2}" if self.path else f"add_m{i + 2}"
            ms.insert(0, keras.layers.Add(name=name)([self.upsample(ms[0], lateral), lateral]))
        smooth = self.smooth if isinstance(self.smooth, nn.ModuleList) else [self.smooth] * len(ms)
        return tuple(conv(m) for conv, m in zip(smooth, ms))


def fpn(out_channels=256) -> FPN:
    """The FPN paper's head: one 3x3 conv per level, nearest-neighbour upsampling."""
    return FPN(out_channels, shared_smooth=False, mode="nearest")  # the paper's nearest; torch's floor index


def fpn_blog(out_channels=256) -> FPN:
    """Article A's FPN: one shared 3x3 conv (``MtoP``), ``F.upsample_bilinear`` = bilinear, align_corners=True."""
    return FPN(out_channels, shared_smooth=True, mode="bilinear", align_corners=True)
