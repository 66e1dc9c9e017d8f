"""``parity.train_check`` on the registry's twins: the loss rule, the options, and K training steps in both
frameworks compared after each (a small ASPP and a block in float32 by default; every optimizer on the small
ASPP, and the paper models, under the ``zoo`` marker).

Each run prints its table: per step each side's loss, the worst gradient, optimizer-step and BatchNorm
statistic errors, and the end-to-end drift.
"""
import numpy as np
import pytest
import torch

import parity
from parity.compare import pair_error
from parity.errors import InvalidArgumentError, UnknownModelError
from parity.training import losses
from parity.training.check import TrainReport, zero_dropout
from parity.training.optimizers import OPTIMIZERS

SMALL_ASPP = dict(in_channels=16, filters=8)  # every kind of layer of the full one, 1/64 of its width
ASPP_SHAPE = (2, 16, 9, 11)


def run(name, optimizer="sgd", **kw) -> TrainReport:
    report = parity.train_check(name, optimizer, **kw)
    print(report.table())
    return report


def assert_passes(report: TrainReport) -> None:
    assert report.ok, report.problems[:5]
    assert len(report.steps) >= 1 and all(np.isfinite(s.loss_torch) for s in report.steps)


# --- the loss: which outputs get cross-entropy, how outputs combine ----------------------------------------

def test_the_classifier_rule():
    """(N, K) logits with K >= 2 get cross-entropy; a feature map, or an (N, 1) output, gets MSE."""
    assert losses.plan([(2, 1000)], "resnet50").kinds == ("cross_entropy",)
    assert losses.plan([(2, 256, 16, 16)], "aspp").kinds == ("mse",)
    assert losses.plan([(2, 1)], "regressor").kinds == ("mse",)
    assert losses.plan([(2, 10)], "embedding", loss="mse").kinds == ("mse",)


def test_inception_auxiliary_losses_weigh_03_and_fpn_levels_weigh_1():
    inception = losses.plan([(2, 1000)] * 3, "inception_v1_train")
    fpn = losses.plan([(2, 256, 16, 16), (2, 256, 8, 8), (2, 256, 4, 4), (2, 256, 2, 2)], "fpn")
    print(f"inception_v1_train: {inception.describe()}; fpn: {fpn.describe()}")
    assert inception.kinds == ("cross_entropy",) * 3 and inception.weights == (0.3, 0.3, 1.0)
    assert fpn.kinds == ("mse",) * 4 and fpn.weights == (1.0,) * 4


def test_the_torch_and_keras_losses_are_one_formula():
    """Each registered loss on the same outputs, in float64: torch and Keras agree to rounding."""
    rng = np.random.default_rng(0)
    logits, maps = rng.standard_normal((3, 7)), rng.standard_normal((3, 4, 5, 6))
    plan = losses.plan([logits.shape, maps.shape], "two-heads", loss_weights=(0.3, 2.0), label_smoothing=0.2)
    targets = plan.targets(np.random.default_rng(1), [logits.shape, maps.shape], np.float64)
    t = float(plan.torch_loss([torch.from_numpy(logits), torch.from_numpy(maps)], targets))
    k = float(plan.keras_loss([logits, maps.transpose(0, 2, 3, 1)], targets))
    print(f"{plan.describe()}: torch {t:.15f}, keras {k:.15f}")
    assert abs(t - k) <= 1e-14 * abs(t)


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss="hinge"), "unknown loss 'hinge'"),
    (dict(loss="cross_entropy"), "cross_entropy needs \\(N, K\\) logits"),
    (dict(loss_weights=(1.0, 2.0)), "one weight per output \\(1\\)"),
    (dict(label_smoothing=0.1), "label_smoothing .* needs a cross-entropy output"),
])
def test_bad_loss_options(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        losses.plan([(2, 8, 4, 4)], "aspp", **kwargs)


# --- options: refused before anything is built ---------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, message", [
    (("sgdw",), {}, "unknown optimizer 'sgdw'; expected one of: sgd, sgd-momentum, nesterov, adam, adamw, rmsprop"),
    (("adam",), dict(alpha=0.9), "optimizer 'adam' takes options amsgrad, betas, eps, lr, weight_decay; got alpha"),
    (("sgd",), dict(steps=0), "steps must be a positive integer, got 0"),
    (("sgd",), dict(steps=2, lr_schedule=[0.1]), "one learning rate >= 0 per step \\(2\\)"),
    (("sgd",), dict(dtype="float16"), "dtype must be one of float64, float32, got 'float16'"),
    (("nesterov",), dict(momentum=0.0), "Nesterov momentum requires a momentum and zero dampening"),
])
def test_bad_options_are_one_line_errors(args, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message) as info:
        parity.train_check("vgg_stage", *args, **kwargs)
    assert "\n" not in str(info.value)


def test_unknown_model():
    with pytest.raises(UnknownModelError, match="unknown model 'resnet5'"):
        parity.train_check("resnet5")


# --- the twins train alike -------------------------------------------------------------------------------------

def test_small_aspp_trains_alike():
    """Depthwise dilated convs, BatchNorm (eps 1e-3, torch momentum 0.01) including one on a 1x1 map, the
    bilinear broadcast, dropout (zeroed), MSE; a learning rate that drops, L2 weight decay through momentum.
    (Each
    optimizer against its naive Keras translation: ``test_train_traps.py``; all six here under ``zoo``.)"""
    report = run("aspp", "sgd-momentum", steps=2, input_shape=ASPP_SHAPE, builder_kwargs=SMALL_ASPP,
                 lr_schedule=[0.1, 0.01], weight_decay=1e-2)
    assert_passes(report)
    assert [s.lr for s in report.steps] == [0.1, 0.01]


@pytest.mark.zoo
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_small_aspp_trains_alike_with_every_optimizer(optimizer):
    assert_passes(run("aspp", optimizer, input_shape=ASPP_SHAPE, builder_kwargs=SMALL_ASPP))


def test_dropout_must_be_zeroed():
    """ASPP's dropout (rate 0.5 here) left on: the two frameworks draw different masks and the losses part
    at once, which is why the check sets every rate to 0."""
    from parity.engine import Harness
    from parity.layout import to_nhwc
    from parity.training.state import as_list

    with Harness("aspp", onnx=False, **SMALL_ASPP, dropout=0.5) as h:
        x = h.inputs(ASPP_SHAPE)
        t = as_list(h.torch_model.train()(torch.from_numpy(x)))[0].detach().numpy()
        k = np.asarray(h.keras_model(to_nhwc(x), training=True)).transpose(0, 3, 1, 2)
        on = pair_error([t], [k]).rel
        restore = zero_dropout(h.torch_model, h.keras_model)
        t = as_list(h.torch_model(torch.from_numpy(x)))[0].detach().numpy()
        k = np.asarray(h.keras_model(to_nhwc(x), training=True)).transpose(0, 3, 1, 2)
        off = pair_error([t], [k]).rel
        restore()
        assert h.keras_model.get_layer("dropout").rate == 0.5
    print(f"ASPP training forward, dropout 0.5: relative error {on:.2e}; rate 0 on both sides: {off:.2e}")
    assert on > 0.1 and off <= 1e-5


def test_float32_passes_on_a_block_and_reports_its_own_tolerances():
    report = run("resnet_bottleneck", "sgd-momentum", steps=2, dtype="float32", input_shape=(2, 16, 9, 11),
                 builder_kwargs=dict(in_channel=16, mid_channel=8, out_channel=32))
    assert_passes(report)
    assert report.dtype == "float32" and report.tolerances.grad > 1e-5


# --- the paper models (zoo: tens of seconds each, in float64) ---------------------------------------------------

@pytest.mark.zoo
@pytest.mark.parametrize("optimizer", ["adam", "sgd-momentum"])
def test_resnet50(optimizer):
    report = run("resnet50", optimizer, input_shape=(2, 3, 64, 64))
    assert report.loss == "1*cross_entropy[0]"
    assert_passes(report)


@pytest.mark.zoo
def test_fpn():
    report = run("fpn", "adam", input_shape=(2, 3, 64, 64))
    assert report.loss == "1*mse[0] + 1*mse[1] + 1*mse[2] + 1*mse[3]"
    assert_passes(report)


@pytest.mark.zoo
def test_inception_v1_train():
    """LocalResponseNorm's AvgPool3D has no float64 CPU kernel in TensorFlow: the Keras step runs under XLA."""
    report = run("inception_v1_train", "sgd-momentum", input_shape=(2, 3, 224, 224), jit=True)
    assert report.loss == "0.3*cross_entropy[0] + 0.3*cross_entropy[1] + 1*cross_entropy[2]"
    assert_passes(report)


@pytest.mark.zoo
def test_aspp_full_width():
    assert_passes(run("aspp", "adam", input_shape=(2, 1024, 13, 13)))


@pytest.mark.zoo
def test_vgg_stage_at_224():
    assert_passes(run("vgg_stage", "sgd-momentum", input_shape=(2, 3, 224, 224)))
