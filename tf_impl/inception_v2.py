"""The Inception v2 modules of article A, section 2.2.2 (figures only, no code), in Keras 3.
Twin: ``torch_impl/inception_v2.py``.

Each is v1's Inception module with one change, and BatchNorm after every conv (conv without bias + BN +
ReLU), after "Rethinking the Inception Architecture" (Szegedy et al. 2015):

- :class:`InceptionStacked3x3` (its Figure 5): the 5x5 branch becomes 1x1 -> 3x3 -> 3x3.
- :class:`InceptionFactorized` (its Figure 6): every n x n conv becomes a 1 x n then an n x 1 conv, padded
  (0, n // 2) then (n // 2, 0) so that H and W are kept; n = 7 as in Inception v3's 17 x 17 modules.

The pool branch stays v1's 3x3/1 max-pool (pad 1) + 1x1, so that each module differs from v1 in the one
way the article describes. Shapes: ``(N, H, W, in_channels) -> (N, H, W, out_1x1 + out_3x3 (or out_nxn) +
out_double + out_pool)``, any H, W. The facade's Conv2d keeps torch's per-axis padding exactly: Keras
'same' where it is identical (stride 1, ``2 * padding == kernel - 1`` on each axis, true here), else an
explicit ZeroPadding2D.
"""
from __future__ import annotations

from tf_impl import nn
from tf_impl.backend import keras

BN_EPS = 1e-3  # Inception v3's reference implementations (TF-slim, torchvision) use 0.001, not torch's 1e-5
BN_MOMENTUM = 0.1  # torch's default, as torchvision's Inception v3 (Keras momentum 0.9); inference ignores it


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias: BatchNorm's beta replaces it) + BatchNorm2d + ReLU; ``padding`` per axis allowed."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),  # torch's is in place; the numbers are the same
        )


class InceptionStacked3x3(nn.Module):
    """Branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (v1's 5x5, factorised); 3x3/1 max-pool -> 1x1."""

    def __init__(self, in_channels, out_1x1, out_3x3_reduce, out_3x3, out_double_reduce, out_double, out_pool):
        super().__init__()
        self.branch_1x1 = ConvBNReLU(in_channels, out_1x1, 1)
        self.branch_3x3 = nn.Sequential(ConvBNReLU(in_channels, out_3x3_reduce, 1),
                                        ConvBNReLU(out_3x3_reduce, out_3x3, 3, padding=1))
        self.branch_double_3x3 = nn.Sequential(ConvBNReLU(in_channels, out_double_reduce, 1),
                                               ConvBNReLU(out_double_reduce, out_double, 3, padding=1),
                                               ConvBNReLU(out_double, out_double, 3, padding=1))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_channels, out_pool, 1))

    def forward(self, x):
        branches = [self.branch_1x1(x), self.branch_3x3(x), self.branch_double_3x3(x), self.branch_pool(x)]
        return keras.layers.Concatenate(axis=-1, name=f"{self.path}_cat")(branches)


def factorized(in_channels, mid_channels, out_channels, n, repeats):
    """``repeats`` times a 1 x n conv then an n x 1 conv (``mid_channels`` inside, ``out_channels`` last)."""
    layers, c = [], in_channels
    for i in range(repeats):
        last = out_channels if i == repeats - 1 else mid_channels
        layers += [ConvBNReLU(c, mid_channels, (1, n), padding=(0, n // 2)),
                   ConvBNReLU(mid_channels, last, (n, 1), padding=(n // 2, 0))]
        c = last
    return layers


class InceptionFactorized(nn.Module):
    """Branches: 1x1; 1x1 -> (1xn, nx1); 1x1 -> (1xn, nx1) x 2 (v1's 5x5 as two factorised n x n);
    3x3/1 max-pool -> 1x1."""

    def __init__(self, in_channels, out_1x1, out_nxn_reduce, out_nxn, out_double_reduce, out_double, out_pool, n=7):
        super().__init__()
        if n < 1 or n % 2 == 0:
            raise ValueError(f"n must be odd and positive (padding n // 2 keeps H, W), got {n!r}")
        self.branch_1x1 = ConvBNReLU(in_channels, out_1x1, 1)
        self.branch_nxn = nn.Sequential(ConvBNReLU(in_channels, out_nxn_reduce, 1),
                                        *factorized(out_nxn_reduce, out_nxn_reduce, out_nxn, n, 1))
        self.branch_double_nxn = nn.Sequential(ConvBNReLU(in_channels, out_double_reduce, 1),
                                               *factorized(out_double_reduce, out_double_reduce, out_double, n, 2))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_channels, out_pool, 1))

    def forward(self, x):
        branches = [self.branch_1x1(x), self.branch_nxn(x), self.branch_double_nxn(x), self.branch_pool(x)]
        return keras.layers.Concatenate(axis=-1, name=f"{self.path}_cat")(branches)
