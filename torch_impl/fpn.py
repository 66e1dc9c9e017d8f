"""FPN over torchvision's ResNet-50, in PyTorch: the paper's (``fpn``) and article A's (``fpn_blog``).
Twin: ``tf_impl/fpn.py``.

Shapes: input ``(N, 3, H, W)`` -> ``(P2, P3, P4, P5)``, each ``(N, out_channels, h_i, w_i)`` with the sizes of
C2..C5 (strides ~4, 8, 16, 32; each stride-2 step maps s to ``ceil(s / 2)``, so odd inputs give odd maps).

- bottom-up: torchvision's resnet50 without avgpool/fc, held as the submodule ``backbone`` (the article keeps
  it in module globals, where ``parameters()``, ``state_dict()``, ``eval()`` and ``.to()`` miss it);
- lateral 1x1 convs with bias, C_i -> M_i; top-down ``M_i = upsample(M_{i+1} to M_i's size) + lateral(C_i)``;
- output 3x3 convs with bias, ``P_i = smooth(M_i)``.

The variants: the paper has one 3x3 conv per level and nearest upsampling (torch's ``floor(dst * in / out)``
index); the article shares one 3x3 conv across levels and upsamples with ``F.upsample_bilinear``, i.e.
bilinear with ``align_corners=True``.
"""
from __future__ import annotations

from torch import nn

from torch_impl.layers import ResizeLike
from torch_impl.resnet import ResNet

BACKBONE_CHANNELS = (256, 512, 1024, 2048)  # C2..C5 of resnet50


class FPN(nn.Module):
    """``shared_smooth``: one 3x3 conv for all levels (``smooth``) instead of one per level (``smooth.0..3``);
    ``mode``/``align_corners``: the top-down resize (``ResizeLike``)."""

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
            ms.insert(0, self.upsample(ms[0], lateral) + lateral)
        smooth = self.smooth if isinstance(self.smooth, nn.ModuleList) else [self.smooth] * len(ms)
        return tuple(conv(m) for conv, m in zip(smooth, ms))


def fpn(out_channels=256) -> FPN:
    """The FPN paper's head: one 3x3 conv per level, nearest-neighbour upsampling."""
    return FPN(out_channels, shared_smooth=False, mode="nearest")  # the paper's nearest; torch's floor index


def fpn_blog(out_channels=256) -> FPN:
    """Article A's FPN: one shared 3x3 conv (``MtoP``), ``F.upsample_bilinear`` = bilinear, align_corners=True."""
    return FPN(out_channels, shared_smooth=True, mode="bilinear", align_corners=True)
