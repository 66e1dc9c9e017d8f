"""VGG19 of article A, in Keras 3; layers named as torchvision's ``vgg19``. Twin: ``torch_impl/vgg.py``.

Shapes: input ``(N, 224, 224, 3)`` -> logits ``(N, num_classes)``. The size is fixed: ``features`` maps
224x224 to a 7x7x512 map whose ``H, W, C`` flatten feeds ``Dense(4096)``; the transfer layer reorders
that kernel's rows from torch's ``C, H, W`` order (``parity.weight_transfer._flatten_hwc``).

torchvision's parameter-free ``AdaptiveAvgPool2d((7, 7))`` is left out, as in article A's code and in the
torch twin: at the fixed 224 input it is the identity.
"""
from __future__ import annotations

from tf_impl import nn

# Convolution widths, "M" = 2x2 max-pool; torchvision's cfgs["E"] (16 convs, pools after convs 2, 4, 8, 12, 16).
CFGS = {"vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                  512, 512, 512, 512, "M")}


def make_features(cfg, in_channels=3) -> nn.Sequential:
    """conv 3x3 (padding 1 keeps H, W) + ReLU per width; MaxPool2d(2) (stride 2, no padding) per "M"."""
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (convs and pools), an H, W, C flatten, then ``classifier``:
    Dense 4096, ReLU, Dropout, Dense 4096, ReLU, Dropout, Dense num_classes."""

    def __init__(self, cfg, num_classes=1000, dropout=0.5, in_channels=3):
        super().__init__()
        self.features = make_features(cfg, in_channels)
        self.flatten = nn.Flatten()  # NHWC -> H, W, C order; the transfer layer reorders fc1 from torch
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(p=dropout),  # p=0.5: torch's default
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def vgg19(num_classes=1000, dropout=0.5, in_channels=3) -> VGG:
    """VGG19: 143,667,240 parameters at 1000 classes."""
    return VGG(CFGS["vgg19"], num_classes, dropout, in_channels)
