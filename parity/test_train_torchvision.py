"""``parity.train_check`` on torchvision's own models through the automatic torch -> Keras twin
(``parity.twin``): code nobody here wrote, trained three steps alike in float64.

Needs ``parity.convert.from_torch`` (the torch -> Keras converter); its Keras BatchNorm must be the facade's
(``tf_impl.nn.BatchNorm2d``, i.e. ``TorchBatchNormalization``) for the running variance to match. Under the
``zoo`` marker: each model is built, converted and trained in float64 (tens of seconds each).
"""
import pytest

import parity
from parity.torchvision_compat import import_torchvision

MODELS = [  # (builder, input shape): small inputs, batch 2 (a BatchNorm on a 1x1 map needs two values)
    ("resnet18", (2, 3, 64, 64)),        # conv, BatchNorm, ReLU, -inf max-pool, residuals, global pool, fc
    ("mobilenet_v2", (2, 3, 64, 64)),    # depthwise convs, ReLU6, inverted residuals, Dropout 0.2 (zeroed)
    ("mobilenet_v3_small", (2, 3, 64, 64)),  # Hardswish, squeeze-excitation, Dropout 0.2 (zeroed)
]


@pytest.mark.zoo
@pytest.mark.parametrize("builder, shape", MODELS, ids=[m for m, _ in MODELS])
@pytest.mark.parametrize("optimizer", ["sgd-momentum", "adam"])
def test_torchvision_model_trains_alike(builder, shape, optimizer):
    torchvision = import_torchvision()
    model = getattr(torchvision.models, builder)(weights=None, num_classes=10)
    report = parity.train_check(model, optimizer, input_shape=shape, name=builder)
    print(report.table())
    assert report.loss == "1*cross_entropy[0]"
    assert report.ok, report.problems[:5]
