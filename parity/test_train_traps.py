"""Training traps: where torch and Keras train differently by default, one test each.

Every test trains a small classifier (conv 3x3 + BatchNorm + ReLU, a stride-2 conv 3x3 + BatchNorm + ReLU,
global average pool, fc to 10 classes; batch 2x3x8x8, so 128 and 32 values per channel in the BatchNorms)
for two steps in lockstep with ``parity.training.steps.run_steps``, the loop behind ``parity.train_check``,
at its float64 tolerances: once with the naive translation and once with ours. Each prints both outcomes
and asserts that the naive one fails the check and ours passes, so each test fails if its fix is removed.

The torch side is always torch itself (``torch.nn.BatchNorm2d``, ``torch.optim``, ``F.cross_entropy``); the
naive Keras side is Keras's own layer, optimizer or loss as a straight translation writes it; ours is the
facade's twin (``tf_impl.nn``, ``tf_impl.optim``) and ``parity.training.losses``.
"""
import functools
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn as tnn

from parity.errors import TransferError
from parity.randomize import randomize_torch
from parity.training import losses
from parity.training.optimizers import make_pair
from parity.training.precision import building_in
from parity.training.steps import run_steps
from parity.training.tolerances import TOLERANCES
from parity.weight_transfer import transfer
from tf_impl import nn as knn
from tf_impl.backend import keras
from tf_impl.batch_norm import TorchBatchNormalization

TOL = TOLERANCES["float64"]
SHAPE = (2, 3, 8, 8)
STEPS = 2  # enough for every trap: momentum buffers, schedules and Adam's bias correction differ from step 2


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These runs are many small ops: with the cores shared, torch's second thread only waits (measured 2x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Outcome:
    """What a training run gave: every step's result, and the worst error of each kind over the steps."""

    results: list

    @property
    def ok(self) -> bool:
        return not any(r.beyond for r in self.results)

    @property
    def first(self) -> str:
        return next((f"step {r.step}: {r.beyond[0]}" for r in self.results if r.beyond), "none")

    def worst(self, kind: str) -> float:
        """The worst relative error of ``kind`` ("loss", "grads", "params", "stats") over the steps."""
        return max(getattr(getattr(r, kind), "error", getattr(r, kind)).rel for r in self.results)

    def __str__(self) -> str:
        return (f"loss {self.worst('loss'):.1e}, gradients {self.worst('grads'):.1e}, optimizer steps "
                f"{self.worst('params'):.1e}, statistics {self.worst('stats'):.1e}; first beyond tolerance: "
                f"{self.first}")


def torch_classifier() -> tnn.Module:
    return tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
                          tnn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
                          tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(8, 10))


def keras_classifier():
    return knn.build_model(knn.Sequential(
        knn.Conv2d(3, 8, 3, padding=1, bias=False), knn.BatchNorm2d(8), knn.ReLU(),
        knn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), knn.BatchNorm2d(8), knn.ReLU(),
        knn.AdaptiveAvgPool2d(1), knn.Flatten(), knn.Linear(8, 10)), (None, None, 3), "classifier")


def pair(swap_bn=None):
    """The classifier, torch (randomised, training mode) and Keras (weights transferred), in float64.
    ``swap_bn(config)``: a Keras layer to put in place of each of our BatchNorms (the naive twin)."""
    with building_in("float64"):
        t = randomize_torch(torch_classifier(), 0).train()
        k = keras_classifier()
        if swap_bn is not None:
            k = keras.models.clone_model(k, clone_function=lambda layer: (
                swap_bn(layer.get_config()) if isinstance(layer, TorchBatchNormalization)
                else type(layer).from_config(layer.get_config())))
        transfer(t, k, allow_numerics_mismatch=swap_bn is not None)
    return t, k


def train(t, k, optimizer="sgd", keras_opt=None, lrs=None, plan=None, mismatch=False, **options):
    """``run_steps`` on a pair: our Keras optimizer unless ``keras_opt()`` makes another; ``lrs`` per step;
    ``plan(shapes)`` the loss plan (default: the classifier rule)."""
    with building_in("float64"):
        make_torch, ours_opt, resolved = make_pair(optimizer, **options)
        opt = keras_opt() if keras_opt is not None else ours_opt
        rng = np.random.default_rng(1)
        batches = [rng.standard_normal(SHAPE) for _ in range(STEPS)]
        _, results = run_steps(t, k, make_torch, opt, batches, lrs or [resolved["lr"]] * STEPS,
                               plan or (lambda shapes: losses.plan(shapes, "classifier")), np.random.default_rng(2),
                               TOL, allow_numerics_mismatch=mismatch)
    return Outcome(results)


@functools.lru_cache(maxsize=None)
def ours(optimizer="sgd", lrs=None, label_smoothing=0.0, **options) -> "Outcome":
    """Our twin trained: one run per configuration, shared by the tests that compare against it."""
    return train(*pair(), optimizer, lrs=list(lrs) if lrs else None,
                 plan=lambda shapes: losses.plan(shapes, "classifier", label_smoothing=label_smoothing), **options)


def show(trap: str, **outcomes) -> None:
    for label, outcome in outcomes.items():
        print(f"{trap}, {label}: {outcome}")


def assert_trap(trap: str, naive: Outcome, ours: Outcome, kind: str) -> None:
    """The naive run fails, on ``kind`` among others; ours passes."""
    show(trap, naive=naive, ours=ours)
    limit = {"loss": TOL.loss, "grads": TOL.grad, "params": TOL.step, "stats": TOL.stat}[kind]
    assert not naive.ok and naive.worst(kind) > 100 * limit
    assert ours.ok, ours.first


# --- BatchNorm ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keras_momentum", [0.99, 0.1], ids=["keras-default-0.99", "torch-0.1-copied"])
def test_batchnorm_momentum(keras_momentum):
    """torch's momentum 0.1 weighs the new batch; Keras's momentum weighs the running value (default 0.99).
    The transfer refuses the naive twin unless told to measure it."""
    swap = lambda c: TorchBatchNormalization.from_config({**c, "momentum": keras_momentum})  # noqa: E731
    with pytest.raises(TransferError, match="momentum"):
        transfer(pair()[0], pair(swap)[1])
    naive = train(*pair(swap), mismatch=True)
    assert_trap(f"BatchNorm Keras momentum {keras_momentum} for torch's 0.1", naive, ours(), "stats")


def test_batchnorm_eps():
    naive = train(*pair(lambda c: TorchBatchNormalization.from_config({**c, "epsilon": 1e-3})), mismatch=True)
    assert_trap("BatchNorm eps 1e-3 (Keras default) for torch's 1e-5", naive, ours(), "loss")


def test_batchnorm_running_variance():
    naive = train(*pair(lambda c: keras.layers.BatchNormalization.from_config(c)))
    assert_trap("BatchNorm moving variance: Keras's biased update", naive, ours(), "stats")


def freeze(t, k, torch_way: str, keras_way: str):
    """Freezes the first BatchNorm (module ``1``) on both sides, each the way named."""
    bn, layer = t[1], k.get_layer("1")
    bn.requires_grad_(False)
    if torch_way == "eval":
        bn.eval()
    if keras_way == "layer":
        layer.trainable = False
    else:
        layer.gamma.trainable = layer.beta.trainable = False
    return t, k


def test_batchnorm_freeze():
    """Keras ``trainable=False`` on a BatchNorm switches it to inference (moving statistics, no update);
    torch ``requires_grad_(False)`` only stops gamma and beta: in ``train()`` the layer still normalises with
    the batch statistics and updates its running ones. Equivalent freezes: torch ``eval()`` +
    ``requires_grad_(False)`` = Keras ``layer.trainable = False``; torch ``requires_grad_(False)`` alone =
    Keras ``gamma.trainable = beta.trainable = False`` with the layer left trainable."""
    naive = train(*freeze(*pair(), "requires_grad", "layer"))
    ours_inference = train(*freeze(*pair(), "eval", "layer"))
    ours_batch_stats = train(*freeze(*pair(), "requires_grad", "variables"))
    show("BatchNorm freeze", **{"ours, eval() + requires_grad_(False) = trainable=False": ours_inference})
    assert ours_batch_stats.ok, ours_batch_stats.first
    assert_trap("BatchNorm freeze: requires_grad_(False) vs layer.trainable = False", naive,
                ours_batch_stats, "loss")
    assert ours_inference.ok, ours_inference.first


# --- Adam ---------------------------------------------------------------------------------------------------

def test_adam_eps_placement():
    """torch: ``lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; Keras:
    ``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: Keras's eps is torch's eps / sqrt(1 - b2^t),
    32x at step 1. No constant epsilon matches: eps * sqrt(1 - b2) is torch's at step 1 only (and Keras
    rounds its betas to float32 even in float64: ``1 - 0.999`` off by 1.3e-5, its root by 6.4e-6)."""
    naive = train(*pair(), "adam", lambda: keras.optimizers.Adam(1e-3, 0.9, 0.999, epsilon=1e-8))
    tuned = train(*pair(), "adam", lambda: keras.optimizers.Adam(1e-3, 0.9, 0.999, epsilon=1e-8 * np.sqrt(1e-3)))
    show("Adam, Keras epsilon = eps * sqrt(1 - beta2)", tuned=tuned)
    assert not tuned.ok
    assert_trap("Adam eps placement (Keras Adam, epsilon=eps)", naive, ours("adam"), "params")


# --- weight decay -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer, keras_opt", [
    ("sgd-momentum", lambda: keras.optimizers.SGD(1e-2, momentum=0.9, weight_decay=0.1)),
    ("adam", lambda: keras.optimizers.Adam(1e-3, epsilon=1e-8, weight_decay=0.1)),
    ("adamw", lambda: keras.optimizers.AdamW(1e-3, epsilon=1e-8, weight_decay=0.1)),
], ids=["sgd-momentum", "adam", "adamw"])
def test_weight_decay(optimizer, keras_opt):
    """torch SGD/Adam ``weight_decay`` is L2 in the gradient (through momentum and Adam's moments); torch
    AdamW's is decoupled; Keras 3's ``weight_decay`` is decoupled everywhere (``p -= lr * wd * p`` before the
    step). Keras's AdamW decays as torch's AdamW does, but its Adam core has Keras's eps placement."""
    naive = train(*pair(), optimizer, keras_opt, weight_decay=0.1)
    assert_trap(f"weight decay 0.1, {optimizer}: Keras's decoupled weight_decay", naive,
                ours(optimizer, weight_decay=0.1), "params")


def test_weight_decay_without_momentum_is_the_same_either_way():
    """Plain SGD: ``p - lr * (g + wd * p)`` (torch) = ``(p - lr * wd * p) - lr * g`` (Keras)."""
    keras_sgd = train(*pair(), "sgd", lambda: keras.optimizers.SGD(1e-2, weight_decay=0.1), weight_decay=0.1)
    show("weight decay 0.1, plain SGD", keras_sgd=keras_sgd)
    assert keras_sgd.ok, keras_sgd.first


# --- SGD momentum and Nesterov ------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd-momentum", "nesterov"])
def test_momentum_keras_form_equals_torchs_at_a_constant_learning_rate(optimizer):
    """torch: ``buf = m * buf + g``, ``p -= lr * buf``; Keras: ``v = m * v - lr * g``, ``p += v``: the same
    while lr stays (v = -lr * buf); Nesterov likewise."""
    keras_sgd = train(*pair(), optimizer, lambda: keras.optimizers.SGD(1e-2, momentum=0.9,
                                                                       nesterov=optimizer == "nesterov"))
    show(f"{optimizer}, constant lr 0.01", keras_sgd=keras_sgd)
    assert keras_sgd.ok, keras_sgd.first


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "nesterov"])
def test_momentum_with_a_learning_rate_schedule(optimizer):
    """A schedule 0.1 then 0.01: Keras's velocity still holds the past rates (0.9 * -0.1 * g1 at step 2),
    torch's buffer does not (the whole buffer takes the current rate)."""
    lrs = [0.1, 0.01]
    naive = train(*pair(), optimizer, lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=optimizer == "nesterov"),
                  lrs=lrs)
    assert naive.results[0].params.error.rel <= TOL.step  # step 1 agrees: the velocity is empty
    assert_trap(f"{optimizer}, lr 0.1 -> 0.01: Keras's velocity form", naive,
                ours(optimizer, lrs=tuple(lrs)), "params")


# --- RMSprop ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_rmsprop_eps_and_alpha(centered):
    """torch: ``g / (sqrt(v) + eps)`` (centered: ``sqrt(v - mean_g^2) + eps``), alpha 0.99; Keras:
    ``g / sqrt(v + eps)`` (centered: ``sqrt(v - mean_g^2 + eps)``), rho 0.9 by default."""
    naive = train(*pair(), "rmsprop", lambda: keras.optimizers.RMSprop(1e-2, rho=0.99, epsilon=1e-8,
                                                                         centered=centered), centered=centered)
    defaults = train(*pair(), "rmsprop", lambda: keras.optimizers.RMSprop(1e-2, centered=centered),
                     centered=centered)
    show(f"RMSprop centered={centered}, Keras defaults (rho 0.9, epsilon 1e-7)", naive=defaults)
    assert not defaults.ok
    assert_trap(f"RMSprop centered={centered}: Keras RMSprop(rho=alpha, epsilon=eps)", naive,
                ours("rmsprop", centered=centered), "params")


def test_rmsprop_with_momentum():
    run = ours("rmsprop", momentum=0.9)
    show("RMSprop momentum 0.9", ours=run)
    assert run.ok, run.first


# --- loss: cross-entropy from logits with label smoothing -----------------------------------------------------

class SparseKerasLoss(losses.LossPlan):
    """Keras's sparse cross-entropy on the integer labels: it has no label smoothing."""

    def keras_loss(self, outputs, targets):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")(targets[0], outputs[0])


class ProbabilitiesKerasLoss(losses.LossPlan):
    """Keras's categorical cross-entropy with its default ``from_logits=False``: the logits taken as
    probabilities."""

    def keras_loss(self, outputs, targets):
        onehot = keras.ops.one_hot(targets[0], outputs[0].shape[-1], dtype="float64")
        return keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing, dtype="float64")(
            onehot, outputs[0])


@pytest.mark.parametrize("naive_plan", [SparseKerasLoss, ProbabilitiesKerasLoss], ids=["sparse", "from-logits-false"])
def test_cross_entropy_with_label_smoothing(naive_plan):
    naive = train(*pair(), plan=lambda shapes: naive_plan(("cross_entropy",), (1.0,), 0.1))
    assert_trap(f"cross-entropy, label smoothing 0.1: {naive_plan.__doc__.split(':')[0]}", naive,
                ours(label_smoothing=0.1), "loss")


def test_both_label_smoothing_formulas_are_the_papers():
    """torch ``F.cross_entropy(label_smoothing=s)`` and Keras ``CategoricalCrossentropy(from_logits=True,
    label_smoothing=s)`` against Szegedy et al. 2016 (7): ``q' = (1 - s) * onehot + s / K``, in float64."""
    rng = np.random.default_rng(0)
    logits, labels, s = rng.standard_normal((6, 11)) * 3, rng.integers(0, 11, 6), 0.1
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    target = (1 - s) * np.eye(11)[labels] + s / 11
    ref = float(np.mean(-(target * log_p).sum(axis=1)))
    got_torch = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), label_smoothing=s))
    got_keras = float(keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=s, dtype="float64")(
        np.eye(11)[labels], logits))
    print(f"label smoothing 0.1: reference {ref:.15f}, torch {got_torch:.15f}, keras {got_keras:.15f}")
    assert abs(got_torch - ref) <= 1e-14 * abs(ref) and abs(got_keras - ref) <= 1e-14 * abs(ref)


# --- our optimizers' other options, and their saved form ----------------------------------------------------

@pytest.mark.parametrize("optimizer, options", [
    ("adam", dict(amsgrad=True, betas=(0.8, 0.95))), ("adamw", dict(amsgrad=True)),
    ("sgd-momentum", dict(dampening=0.5)), ("nesterov", dict(weight_decay=0.1)),
], ids=["adam-amsgrad", "adamw-amsgrad", "sgd-dampening", "nesterov-weight-decay"])
def test_our_optimizers_other_options(optimizer, options):
    run = ours(optimizer, **options)
    show(f"{optimizer} {options}", ours=run)
    assert run.ok, run.first


def test_our_optimizers_round_trip_their_config():
    from tf_impl import optim

    for opt in (optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
                optim.Adam(betas=(0.8, 0.9), amsgrad=True), optim.AdamW(weight_decay=0.05),
                optim.RMSprop(alpha=0.9, centered=True, momentum=0.5)):
        config = opt.get_config()
        assert type(opt).from_config(config).get_config() == config
        assert keras.optimizers.deserialize(keras.optimizers.serialize(opt)).get_config() == config
