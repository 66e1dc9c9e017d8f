"""ResNet-50 in PyTorch: article A's code (``resnet50_blog``) and torchvision's resnet50 (``resnet50``).
Twin: ``tf_impl/resnet.py``.

Shapes: input ``(N, 3, H, W)``; C2..C5 (``ResNet.features``) are ``(N, 256|512|1024|2048, ~H/4..~H/32,
~W/4..~W/32)`` (each stride-2 step maps a size s to ``ceil(s / 2)``); the classifiers return ``(N, classes)``.

Both variants use the v1.5 bottleneck (stride on the 3x3, as in torchvision and in the article). They differ in:

- the stem: torchvision applies ReLU after the stem's BN; the article's code does not;
- the head: torchvision pools globally (``AdaptiveAvgPool2d(1)``); the article uses ``AvgPool2d(4)``, which
  needs a final map of 4..7 px and at 224 px averages only the top-left 4x4 of the 7x7 map;
- the state_dict keys: ``resnet50`` has torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
  ``fc``), so a torchvision checkpoint loads with a strict ``load_state_dict``; ``resnet50_blog`` has the
  article's (``conv.conv.0``, ``block1.0.bottleneck.0.conv.0``, ..., ``classifier``).
"""
from __future__ import annotations

import torch
from torch import nn

BN_EPS = 1e-5  # torch's BatchNorm2d default, used by the article and by torchvision
BN_MOMENTUM = 0.1  # torch's default (weight of the new batch); Keras writes it 0.9

# One row per stage: (mid channels, out channels, blocks, stride of the first block).
# Article A's block1..block4 = torchvision's layer1..layer4 of resnet50 (Bottleneck, [3, 4, 6, 3]).
RESNET50_STAGES = ((64, 256, 3, 1), (128, 512, 4, 2), (256, 1024, 6, 2), (512, 2048, 3, 2))
STEM_CHANNELS = 64


class ConvBN(nn.Module):
    """Article A's ResNet ``BasicConv2d``: conv (no bias) + BatchNorm, no ReLU. Keys ``conv.0``, ``conv.1``.

    Not Inception's ``BasicConv2d`` (conv + ReLU), hence the name. ``(N, in, H, W) -> (N, out, H', W')``.
    """

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channel, out_channel, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_channel, eps=BN_EPS, momentum=BN_MOMENTUM),
        )

    def forward(self, x):
        return self.conv(x)


class Bottleneck(nn.Module):
    """Article A's bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1, each ConvBN, ReLU after the first two
    and after the residual addition; a 1x1 ConvBN shortcut (``downsample``) when the channel count changes.

    ``(N, in_channel, H, W) -> (N, out_channel, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channel, mid_channel, out_channel, stride=1):
        super().__init__()
        self.judge = in_channel == out_channel
        self.bottleneck = nn.Sequential(
            ConvBN(in_channel, mid_channel, 1),
            nn.ReLU(),
            ConvBN(mid_channel, mid_channel, 3, stride=stride, padding=1),
            nn.ReLU(),
            ConvBN(mid_channel, out_channel, 1),
        )
        self.relu = nn.ReLU()
        if not self.judge:
            self.downsample = ConvBN(in_channel, out_channel, 1, stride=stride)

    def forward(self, x):
        identity = x if self.judge else self.downsample(x)
        return self.relu(self.bottleneck(x) + identity)


class TorchvisionBottleneck(nn.Module):
    """torchvision's ``Bottleneck`` (v1.5) with its attribute names: ``conv1``/``bn1`` (1x1), ``conv2``/``bn2``
    (3x3, stride), ``conv3``/``bn3`` (1x1), one ``relu`` used three times, ``downsample`` = ``Sequential(conv
    1x1, BN)`` when the stride or the channel count changes, else None. Same numbers as :class:`Bottleneck`.
    """

    def __init__(self, in_channel, mid_channel, out_channel, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channel, mid_channel, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channel, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(mid_channel, mid_channel, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channel, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(mid_channel, out_channel, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channel, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channel != out_channel:
            self.downsample = nn.Sequential(nn.Conv2d(in_channel, out_channel, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channel, eps=BN_EPS, momentum=BN_MOMENTUM))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def make_stage(block, in_channel, mid_channel, out_channel, blocks, stride) -> nn.Sequential:
    """``blocks`` bottlenecks; the first changes the channels and carries the stride."""
    return nn.Sequential(block(in_channel, mid_channel, out_channel, stride),
                         *[block(out_channel, mid_channel, out_channel) for _ in range(blocks - 1)])


class ResNetBlog(nn.Module):
    """Article A's ``ResNet_50``: ConvBN 7x7/2 stem (no ReLU), max-pool 3x3/2, four stages, ``AvgPool2d(4)``,
    ``view(N, -1)``, ``Linear(2048, class_num)``. Runs only where the final map is 4..7 px (e.g. 224, 97)."""

    def __init__(self, class_num=1000, stages=RESNET50_STAGES):
        super().__init__()
        self.conv = ConvBN(3, STEM_CHANNELS, 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)  # padding is -inf in torch
        in_channel = STEM_CHANNELS
        for i, (mid, out, blocks, stride) in enumerate(stages, start=1):
            setattr(self, f"block{i}", make_stage(Bottleneck, in_channel, mid, out, blocks, stride))
            in_channel = out
        self.num_stages = len(stages)
        self.avgpool = nn.AvgPool2d(4)  # the article's: 4x4 windows, stride 4, no padding
        self.classifier = nn.Linear(in_channel, class_num)

    def forward(self, x):
        x = self.maxpool(self.conv(x))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"block{i}")(x)
        x = self.avgpool(x)
        return self.classifier(x.view(x.size(0), -1))


class ResNet(nn.Module):
    """torchvision's ResNet layout: conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc.

    ``num_classes=None`` builds the backbone only (no avgpool, no fc), as the FPN holds it.
    """

    def __init__(self, num_classes=1000, stages=RESNET50_STAGES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)  # padding is -inf in torch
        in_channel = STEM_CHANNELS
        for i, (mid, out, blocks, stride) in enumerate(stages, start=1):
            setattr(self, f"layer{i}", make_stage(TorchvisionBottleneck, in_channel, mid, out, blocks, stride))
            in_channel = out
        self.num_stages = len(stages)
        self.num_classes = num_classes
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(in_channel, num_classes)

    def features(self, x) -> tuple:
        """``(C2, C3, C4, C5)``: the outputs of layer1..layer4."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
            out.append(x)
        return tuple(out)

    def forward(self, x):
        c5 = self.features(x)[-1]
        if self.num_classes is None:
            return c5
        return self.fc(torch.flatten(self.avgpool(c5), 1))


def resnet50_blog(class_num=1000) -> ResNetBlog:
    """Article A's ResNet-50, quirks included: 25,557,032 parameters + 53,120 BatchNorm statistics."""
    return ResNetBlog(class_num, RESNET50_STAGES)


def resnet50(num_classes=1000) -> ResNet:
    """torchvision's ``resnet50()``: same keys and shapes, 25,557,032 parameters + 53,120 statistics."""
    return ResNet(num_classes, RESNET50_STAGES)
