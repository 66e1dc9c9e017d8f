"""Small torch networks for the automatic-twin tests: one per kind of op the converters map, written the way
torchvision writes them (modules, functions, tensor methods, ``.shape`` read back, held parameters).
Importable as ``tests.nets:NAME`` targets for ``parity check``/``parity convert``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvZoo(nn.Module):
    """Convolutions: stride 2 on odd sizes, dilation, grouped, depthwise with a multiplier, 'same', no bias."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(12, 24, 5, stride=2, padding=2, groups=12)
        self.same = nn.Conv2d(24, 6, (2, 3), padding="same")
        self.rect = nn.Conv2d(6, 6, (1, 7), stride=(2, 1), padding=(0, 3))

    def forward(self, x):
        return self.rect(self.same(self.depthwise(self.grouped(self.dilated(self.stem(x))))))


class StridedDilated(nn.Module):
    """Stride with dilation, which Keras's Conv2D refuses (found by Hypothesis): plain, grouped, depthwise."""

    def __init__(self):
        super().__init__()
        self.plain = nn.Conv2d(2, 4, 1, stride=2, dilation=2, bias=False)
        self.grouped = nn.Conv2d(4, 4, 3, stride=2, padding=1, dilation=2, groups=2)
        self.depthwise = nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=4)

    def forward(self, x):
        return self.depthwise(self.grouped(self.plain(x)))


class NormAct(nn.Module):
    """BatchNorm (affine and not), every activation module, and their functional forms."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8, eps=1e-3, momentum=0.01)
        self.bn_plain = nn.BatchNorm2d(8, affine=False)
        self.acts = nn.Sequential(nn.ReLU(inplace=True), nn.ReLU6(), nn.SiLU(), nn.GELU(), nn.GELU("tanh"),
                                  nn.Hardswish(), nn.Hardsigmoid(), nn.Tanh(), nn.Sigmoid(), nn.Identity(),
                                  nn.Dropout(0.3))

    def forward(self, x):
        x = self.bn_plain(self.bn(self.conv(x)))
        y = self.acts(x * 3.0)
        z = F.relu6(F.hardswish(F.silu(x))) + torch.sigmoid(F.gelu(x)) - torch.tanh(F.hardsigmoid(x).relu())
        return y + F.relu(z) * 0.5 - 1.0


class Pools(nn.Module):
    """Max and average pools with padding, ceil_mode, dilation, count_include_pad=False, divisor_override."""

    def __init__(self):
        super().__init__()
        self.max_ceil = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.max_pad = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.max_dilated = nn.MaxPool2d(3, stride=1, padding=1, dilation=2)
        self.avg_ceil = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.avg_pad = nn.AvgPool2d(2, stride=1, padding=1)
        self.avg_divisor = nn.AvgPool2d(2, divisor_override=3)

    def forward(self, x):
        a = self.max_dilated(self.max_pad(self.max_ceil(x)))
        b = self.avg_divisor(self.avg_pad(self.avg_ceil(x)))
        c = F.max_pool2d(x, 2, ceil_mode=True) + F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False,
                                                              ceil_mode=True)
        return torch.cat([F.adaptive_avg_pool2d(a, (2, 3)), F.adaptive_max_pool2d(b, (2, 3)),
                          F.adaptive_avg_pool2d(c, (2, 3)) * 0.0 + F.adaptive_avg_pool2d(c, 1)], dim=1)


class Adaptive(nn.Module):
    """Adaptive pools of any output size (torch's overlapping bins) feeding a Flatten and a Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.avg = nn.AdaptiveAvgPool2d((5, 3))
        self.max = nn.AdaptiveMaxPool2d((None, 2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 5 * 3, 7)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(self.flatten(self.avg(x))), self.max(x).mean((2, 3))


class Shapes(nn.Module):
    """Layout-sensitive ops: ShuffleNet's channel shuffle, chunk/split/cat on channels, channels-last
    LayerNorm and Linear through permutes, reshapes, reductions."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.mlp = nn.Linear(8, 6)
        self.head = nn.Linear(6, 5)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)  # channel shuffle
        a, b = x.chunk(2, dim=1)
        p, q, r = torch.split(x, [3, 3, 2], dim=1)
        x = torch.cat((b, a), dim=1) + torch.cat([r, q, p], 1)
        y = self.mlp(self.norm(x.permute(0, 2, 3, 1)))  # N, H, W, C
        flat = y.reshape(n, -1, 6)  # N, H*W, C
        pooled = flat.mean(1) + flat.sum(dim=1) * 0.01 + torch.amax(flat, dim=1)
        return self.head(pooled), y.permute(0, 3, 1, 2), x.flatten(2).amin(-1)


class LayerNorm2d(nn.LayerNorm):
    """torchvision's ConvNeXt LayerNorm2d: permute, ``F.layer_norm`` with its own weight, permute back."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    """A ConvNeXt-like block: a held ``layer_scale`` parameter (C, 1, 1) and a held buffer."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = LayerNorm2d(c, eps=1e-6)
        self.layer_scale = nn.Parameter(torch.full((c, 1, 1), 0.5))
        self.register_buffer("shift", torch.zeros(c, 1, 1))

    def forward(self, x):
        return x + self.layer_scale * self.norm(self.dw(x)) + self.shift


class Held(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.blocks = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.flatten(self.pool(self.blocks(self.stem(x))), 1)


class Resize(nn.Module):
    """Segmentation-head resizes: to another tensor's size read from ``.shape[-2:]`` (and from
    ``x.size(2), x.size(3)``), by scale factors, and the Upsample modules; a dict of outputs."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, stride=3)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_bilinear = nn.UpsamplingBilinear2d(scale_factor=2)

    def forward(self, x):
        size = x.shape[-2:]
        y = self.down(x)
        a = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        b = F.interpolate(y, size=(x.size(2), x.size(3)), mode="nearest")
        c = F.interpolate(y, scale_factor=1.5, mode="bilinear", align_corners=True)
        d = F.interpolate(self.up2(y), scale_factor=0.5, mode="nearest-exact")
        return {"out": a + b, "aux": self.up_bilinear(c) * 1.0, "small": d}


class Shared(nn.Module):
    """One conv and one ReLU called twice: one Keras layer each, with two calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.other = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        x = self.relu(self.other(x))
        return self.relu(self.conv(self.relu(self.conv(x))))


class FlattenFixed(nn.Module):
    """A Flatten of a conv map feeding a Linear, with no adaptive pool: the twin needs a fixed H and W."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 6 * 7, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(self.conv(x), 1)))


def tiny():
    """A small CNN for ``parity convert tests.nets:tiny``."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(1), nn.Linear(8, 5))


def held():
    return Held()


class Cumsum(nn.Module):
    """An op no converter maps."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=1)


class Inner(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return x
        return -x


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), Inner())

    def forward(self, x):
        return self.body(x)
