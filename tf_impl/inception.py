"""Inception v1 (GoogLeNet) of article A, and the paper's, in Keras 3. Twin: ``torch_impl/inception.py``.

Shapes: input ``(N, H, W, 3)``; output ``(N, num_classes)``, or ``(aux1, aux2, out)``, each
``(N, num_classes)``, in the "train" state. The networks are written as data (:data:`BLOG`,
:data:`PAPER`: rows per block) read by one class, :class:`InceptionV1`; the variants are thin builders.

- ``inception_v1_blog``: the article's code as written. LRN(64) and LRN(192) (windows of 64 and 192
  channels), Inception 4e after the fourth max-pool, AvgPool2d(3, stride 1) and Linear(4096), which fits
  97-128 px inputs only (a 1024 x 2 x 2 map); the default input is 128 x 128.
- ``inception_v1``: Szegedy et al. 2014, Table 1, at 224 x 224: LRN(5), the max-pool after 4e, 7 x 7
  average pool, Dropout 0.4, Linear(1024).

Max-pools are 3 x 3 / 2 with padding 1 as in the article. The paper gives no padding, and its reference
model (Caffe's bvlc_googlenet) pools unpadded in ceil mode: the same map sizes at 224 px (112, 56, 28, 14,
7), but windows shifted by one pixel at the top and left edges.
"""
from __future__ import annotations

from tf_impl import nn
from tf_impl.backend import keras
from tf_impl.layers import LocalResponseNorm

# --- the networks as data ---------------------------------------------------------------------------------
# Rows: ("conv", in, out, kernel, stride, padding) | ("maxpool",) | ("lrn", size) | ("avgpool", kernel)
#       | ("inception", in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)  (the paper's Table 1 columns)
POOL = ("maxpool",)
I3A, I3B = ("inception", 192, 64, 96, 128, 16, 32, 32), ("inception", 256, 128, 128, 192, 32, 96, 64)
I4A, I4B = ("inception", 480, 192, 96, 208, 16, 48, 64), ("inception", 512, 160, 112, 224, 24, 64, 64)
I4C, I4D = ("inception", 512, 128, 128, 256, 24, 64, 64), ("inception", 512, 112, 144, 288, 32, 64, 64)
I4E = ("inception", 528, 256, 160, 320, 32, 128, 128)
I5A, I5B = ("inception", 832, 256, 160, 320, 32, 128, 128), ("inception", 832, 384, 192, 384, 48, 128, 128)


def _stem(lrn1: int, lrn2: int) -> tuple:
    return (("conv", 3, 64, 7, 2, 3), POOL, ("lrn", lrn1), ("conv", 64, 64, 1, 1, 0),
            ("conv", 64, 192, 3, 1, 1), ("lrn", lrn2), POOL)


BLOG = dict(  # article A's code: LRN windows of 64 and 192 channels, 4e after the 4th pool, 3x3/1 avg pool
    block1=_stem(64, 192), block2=(I3A, I3B, POOL, I4A), block3=(I4B, I4C, I4D),
    block4=(POOL, I4E, I5A, I5B, ("avgpool", 3)),
    dropout=None, features=4096,  # no dropout in the article; 1024 x 2 x 2 at 97-128 px
    aux_pool=(2, 2),  # 8 x 8 maps at 128 px -> the 4 x 4 the paper's aux FC expects (paper: 5x5/3 on 14 x 14)
)
PAPER = dict(  # Szegedy et al. 2014, Table 1 and Section 5
    block1=_stem(5, 5), block2=(I3A, I3B, POOL, I4A), block3=(I4B, I4C, I4D),
    block4=(I4E, POOL, I5A, I5B, ("avgpool", 7)),
    dropout=0.4, features=1024,  # "dropout layer with 70% ratio of dropped outputs" is the aux's; 40% here
    aux_pool=(5, 3),  # "average pooling layer with 5x5 filter size and stride 3": 14 x 14 -> 4 x 4
)

# LRN: alpha, beta, k of the reference model (Caffe's bvlc_googlenet: local_size 5, alpha 1e-4, beta 0.75,
# k 1). Caffe divides alpha by the window size exactly as torch does, so torch's alpha is Caffe's, unchanged.
LRN_ALPHA, LRN_BETA, LRN_K = 1e-4, 0.75, 1.0
AUX_CHANNELS, AUX_MAP, AUX_FEATURES, AUX_DROPOUT = 128, 4, 1024, 0.7  # the paper's auxiliary classifier


class BasicConv2d(nn.Module):
    """The article's Inception BasicConv2d: Conv2d (with bias) + ReLU. Not ResNet's conv+BN (``ConvBN``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
            nn.ReLU(),  # torch's is in place (the article's); the numbers are the same
        )

    def forward(self, x):
        return self.conv(x)


class Inception(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 -> 3x3 (pad 1); 1x1 -> 5x5 (pad 2);
    3x3/1 max-pool (pad 1) -> 1x1. ``(N, H, W, in_channels) -> (N, H, W, out_1x1 + out_3x3 + out_5x5 + out_pool)``."""

    def __init__(self, in_channels, out_1x1, out_3x3_reduce, out_3x3, out_5x5_reduce, out_5x5, out_pool):
        super().__init__()
        self.branch_1x1 = BasicConv2d(in_channels, out_1x1, 1)
        self.branch_3x3 = nn.Sequential(BasicConv2d(in_channels, out_3x3_reduce, 1),
                                        BasicConv2d(out_3x3_reduce, out_3x3, 3, padding=1))
        self.branch_5x5 = nn.Sequential(BasicConv2d(in_channels, out_5x5_reduce, 1),
                                        BasicConv2d(out_5x5_reduce, out_5x5, 5, padding=2))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                         BasicConv2d(in_channels, out_pool, 1))

    def forward(self, x):
        branches = [self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)]
        return keras.layers.Concatenate(axis=-1, name=f"{self.path}_cat")(branches)


class InceptionAux(nn.Module):
    """The paper's auxiliary classifier (the article calls an ``Inception_classify`` it never defines):
    average pool to 4 x 4, 1x1 conv 128 + ReLU, FC 1024 + ReLU, Dropout 0.7, FC ``num_classes``.

    ``(N, H, W, in_channels) -> (N, num_classes)``; ``pool`` (kernel, stride) must bring H, W to 4 x 4.
    """

    def __init__(self, in_channels, num_classes=1000, pool=(5, 3)):
        super().__init__()
        self.pool = nn.AvgPool2d(*pool)
        self.conv = BasicConv2d(in_channels, AUX_CHANNELS, 1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(AUX_CHANNELS * AUX_MAP * AUX_MAP, AUX_FEATURES)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(AUX_DROPOUT)
        self.fc2 = nn.Linear(AUX_FEATURES, num_classes)

    def forward(self, x):
        return self.fc2(self.dropout(self.relu(self.fc1(self.flatten(self.conv(self.pool(x)))))))


def make_layer(row: tuple) -> nn.Module:
    """One row of :data:`BLOG` / :data:`PAPER` as a module."""
    kind, *args = row
    if kind == "conv":
        return BasicConv2d(*args)
    if kind == "maxpool":
        return nn.MaxPool2d(3, stride=2, padding=1)  # the article's; -inf padding (the facade's MaxPool2d)
    if kind == "lrn":
        return LocalResponseNorm(args[0], alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K)
    if kind == "avgpool":
        return nn.AvgPool2d(args[0], stride=1)
    if kind == "inception":
        return Inception(*args)
    raise ValueError(f"unknown layer kind {kind!r}; expected conv, maxpool, lrn, avgpool or inception")


def out_channels(rows: tuple) -> int:
    """Channels leaving the last Inception row of a block: 1x1 + 3x3 + 5x5 + pool proj."""
    last = [r for r in rows if r[0] == "inception"][-1]
    return last[2] + last[4] + last[6] + last[7]


class InceptionV1(nn.Module):
    """The article's ``Inception_v1``: block1..block4 from ``config`` rows, flatten, optional dropout,
    ``Linear(config['features'], num_classes)``. ``state="train"`` adds the two auxiliary classifiers, on
    block2's output (512 channels) and block3's (528), and returns ``(aux1, aux2, out)``."""

    def __init__(self, config: dict, num_classes=1000, state="test"):
        super().__init__()
        if state not in ("test", "train"):
            raise ValueError(f"state must be 'test' or 'train', got {state!r}")
        self.state = state
        for block in ("block1", "block2", "block3", "block4"):
            setattr(self, block, nn.Sequential(*[make_layer(row) for row in config[block]]))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(config["dropout"]) if config["dropout"] else None
        self.classifier = nn.Linear(config["features"], num_classes)
        if state == "train":
            self.aux_classifier1 = InceptionAux(out_channels(config["block2"]), num_classes, config["aux_pool"])
            self.aux_classifier2 = InceptionAux(out_channels(config["block3"]), num_classes, config["aux_pool"])

    def forward(self, x):
        x = self.block2(self.block1(x))
        aux1 = self.aux_classifier1(x) if self.state == "train" else None
        x = self.block3(x)
        aux2 = self.aux_classifier2(x) if self.state == "train" else None
        x = self.flatten(self.block4(x))
        out = self.classifier(x if self.dropout is None else self.dropout(x))
        return (aux1, aux2, out) if self.state == "train" else out


def inception_v1_blog(num_classes=1000, state="test"):
    """Article A's Inception v1, 128 x 128 input (97-128 px fit its Linear(4096); 113-128 px in "train")."""
    return InceptionV1(BLOG, num_classes, state)


def inception_v1(num_classes=1000, state="test"):
    """GoogLeNet as in the paper, 224 x 224 input."""
    return InceptionV1(PAPER, num_classes, state)
