"""ASPP of article B (YOLOv4 with an ASPP neck), in Keras 3. Twin: ``torch_impl/aspp.py``.

Shapes: input ``(N, H, W, in_channels)`` -> output ``(N, H, W, filters)``, any N, H, W.
BatchNorm uses the article's Keras defaults: eps 1e-3, momentum 0.99 (torch momentum 0.01).
"""
from __future__ import annotations

from tf_impl import nn
from tf_impl.backend import keras
from tf_impl.layers import ResizeLike

BN_EPS = 1e-3  # Keras BatchNormalization default, which the article uses
BN_MOMENTUM = 0.01  # torch convention for Keras momentum 0.99


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, 'same' padding at stride 1) + BatchNorm + ReLU; ``groups=in_channels`` is depthwise."""

    def __init__(self, in_channels, out_channels, kernel_size=1, dilation=1, groups=1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )


class SeparableBlock(nn.Sequential):
    """The article's ``block()``: depthwise 3x3 with dilation ``rate`` + BN + ReLU, then 1x1 + BN + ReLU."""

    def __init__(self, in_channels, filters, rate):
        super().__init__(
            ConvBNReLU(in_channels, in_channels, 3, dilation=rate, groups=in_channels),
            ConvBNReLU(in_channels, filters, 1),
        )


class ASPP(nn.Module):
    """Five branches (1x1; one separable dilated 3x3 per rate; global pool + 1x1 broadcast back),
    concatenated in that order, fused by a 1x1 conv + BN + ReLU, then dropout."""

    def __init__(self, in_channels=1024, filters=512, rates=(1, 3, 5), dropout=0.1):
        super().__init__()
        self.conv1x1 = ConvBNReLU(in_channels, filters, 1)
        self.separable = nn.ModuleList([SeparableBlock(in_channels, filters, r) for r in rates])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pool_conv = ConvBNReLU(in_channels, filters, 1)
        self.upsample = ResizeLike("bilinear")  # from 1x1 any bilinear rule is a broadcast
        self.project = ConvBNReLU((len(rates) + 2) * filters, filters, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        branches = [self.conv1x1(x)] + [block(x) for block in self.separable]
        branches.append(self.upsample(self.pool_conv(self.pool(x)), x))
        return self.dropout(self.project(keras.layers.Concatenate(axis=-1, name=f"{self.path}_cat")(branches)))
