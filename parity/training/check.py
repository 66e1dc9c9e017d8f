"""``parity.train_check``: do the twins train alike?

It builds the pair (a registry name, or a model object with its automatic twin) through
:class:`parity.engine.Harness`, which randomises the original side and transfers its weights, in the
check's float type (:mod:`parity.training.precision`), makes dropout deterministic, and runs K identical
training steps (:func:`parity.training.steps.run_steps`).

Dropout: rate 0 on both sides, for the comparison only (the caller's model objects are copies or get their
rates back). The same mask on both sides is not possible: torch draws it from its own generator and Keras
from a TensorFlow seed generator, different bit streams with no common seed, and neither layer takes a mask
from outside, so a shared mask would mean replacing the layer under test.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from parity.engine import Harness
from parity.errors import InvalidArgumentError
from parity.tables import format_table
from parity.training import losses
from parity.training.optimizers import make_pair
from parity.training.precision import building_in, check_dtype, in_dtype
from parity.training.steps import StepResult, Tolerances, run_steps
from parity.training.tolerances import TOLERANCES
from tf_impl.backend import keras, tf


@dataclass
class TrainReport:
    """Outcome of :func:`train_check`: per step, each side's loss and the worst errors; ``first_divergence``
    names the first tensor (or the loss) beyond tolerance, ``problems`` says in words why the check failed."""

    name: str
    optimizer: str
    options: dict
    input_shape: tuple
    dtype: str
    loss: str
    tolerances: Tolerances
    steps: list[StepResult]
    ok: bool
    first_divergence: str | None
    problems: list = field(default_factory=list)
    seconds: float = 0.0

    def table(self) -> str:
        """Per step: learning rate, both losses, the worst gradient, optimizer-step and statistic errors (each
        with its tensor), PASS/FAIL, the end-to-end drift of the weights (reported, not judged) and, in
        float32, torch's own float32 error (loss / gradients / statistics); then the first divergence and
        the tolerances."""
        floors = any(s.floor for s in self.steps)
        head = ("step", "lr", "loss torch", "loss keras", "loss rel", "grad rel (worst)", "optimizer step rel (worst)",
                "BN stat rel (worst)", "", "drift") + (("torch f32 vs f64 (loss/grad/stat)",) if floors else ())
        fmt = lambda w: "-" if w.name is None else f"{w.error.rel:.1e} {w.name}"  # noqa: E731
        rows = [(s.step, f"{s.lr:g}", f"{s.loss_torch:.8g}", f"{s.loss_keras:.8g}", f"{s.loss.rel:.1e}",
                 fmt(s.grads), fmt(s.params), fmt(s.stats), "FAIL" if s.beyond else "PASS",
                 "-" if s.drift.name is None else f"{s.drift.error.rel:.1e}")
                + ((f"{s.floor['loss']:.0e}/{s.floor['grads']:.0e}/{s.floor['stats']:.0e}",) if floors else ())
                for s in self.steps]
        options = ", ".join(f"{k}={v}" for k, v in self.options.items())
        verdict = (f"first divergence: {self.first_divergence}" if self.first_divergence
                   else "no tensor beyond tolerance")
        t = self.tolerances
        return (f"{self.name}: {self.optimizer} ({options}), input {'x'.join(map(str, self.input_shape))} "
                f"{self.dtype}, loss {self.loss}\n{format_table(head, rows)}\n{verdict} (relative errors; "
                f"tolerances: loss {t.loss:g}, gradients {t.grad:g} of the tensor's largest, optimizer steps "
                f"{t.step:g} and statistics {t.stat:g} of the tensor's step)")


def all_layers(model) -> list:
    """Every layer of a Keras model, looking inside nested models."""
    out = []
    for layer in model.layers:
        out += [layer] + (all_layers(layer) if getattr(layer, "layers", None) else [])
    return out


TORCH_DROPOUTS = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout,
                  torch.nn.FeatureAlphaDropout)
KERAS_DROPOUTS = (keras.layers.Dropout, keras.layers.AlphaDropout, keras.layers.GaussianDropout)  # + subclasses


def zero_dropout(torch_model, keras_model):
    """Sets every dropout rate to 0 on both sides; returns a function that puts the Keras rates back."""
    for m in torch_model.modules():
        if isinstance(m, TORCH_DROPOUTS):
            m.p = 0.0
    layers = [layer for layer in all_layers(keras_model) if isinstance(layer, KERAS_DROPOUTS)]
    rates = [layer.rate for layer in layers]
    for layer in layers:
        layer.rate = 0.0
    return lambda: [setattr(layer, "rate", r) for layer, r in zip(layers, rates)]


def train_check(model, optimizer: str = "sgd", steps: int = 3, seed: int = 0, *, input_shape=None, loss=None,
                loss_weights=None, label_smoothing: float = 0.0, lr_schedule=None, dtype: str = "float64",
                jit: bool = False, name=None, builder_kwargs=None, **options) -> TrainReport:
    """Trains a twin pair ``steps`` steps alike and compares them after each step.

    ``model``: a registry name or a model object (torch module with ``input_shape``, or Keras model).
    ``optimizer``: a name of :data:`parity.training.optimizers.OPTIMIZERS`; ``options`` its arguments
    (``lr``, ``momentum``, ``weight_decay``, ...). ``lr_schedule``: one learning rate per step.
    ``input_shape``: (N, C, H, W); by default the spec's with N >= 2 (a BatchNorm on a 1x1 map needs two
    values per channel). ``loss``, ``loss_weights``, ``label_smoothing``: see :mod:`parity.training.losses`.
    ``dtype``: "float64" (default) or "float32" (:mod:`parity.training.precision`); in float32 a float64 copy
    of the torch model reports torch's own rounding per step. ``jit``: the Keras step under XLA, for models
    with an op TensorFlow has no float64 CPU kernel for (Inception's LocalResponseNorm). ``builder_kwargs``:
    builder arguments of a registry entry (``{"in_channels": 32}``).
    """
    t0 = time.perf_counter()
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InvalidArgumentError(f"steps must be a positive integer, got {steps!r}")
    schedule(lr_schedule, 0.0, steps)
    tol = TOLERANCES[check_dtype(dtype)]
    shapes = [input_shape] if input_shape is not None else None
    with building_in(dtype):
        make_torch_opt, keras_opt, resolved = make_pair(optimizer, **options)  # bad options fail before the build
        source = model if isinstance(model, str) else in_dtype(model, dtype)
        with Harness(source, input_shapes=shapes, seed=seed, onnx=False, name=name, **(builder_kwargs or {})) as h:
            default = train_shape(h.spec.sample_shape(**h.overrides))
            shape = h.validate(input_shape if input_shape is not None else default)
            lrs = schedule(lr_schedule, resolved["lr"], steps)
            rng = np.random.default_rng(seed + 1)  # float32 values: the same batches in either precision
            batches = [rng.standard_normal(shape).astype(np.float32).astype(dtype) for _ in range(steps)]
            make_plan = lambda out_shapes: losses.plan(out_shapes, h.name, loss, loss_weights,  # noqa: E731
                                                       label_smoothing)
            restore_rates = zero_dropout(h.torch_model, h.keras_model)
            h.torch_model.train()
            reference = copy.deepcopy(h.torch_model).double() if dtype == "float32" else None
            try:
                plan, results = run_steps(h.torch_model, h.keras_model, make_torch_opt, keras_opt, batches, lrs,
                                          make_plan, np.random.default_rng(seed + 2), tol, reference=reference, jit=jit)
            except tf.errors.NotFoundError as exc:  # TensorFlow has no kernel of some op for this dtype
                op = exc.message.split("{{node ")[-1].split("}}")[0] if "{{node " in exc.message else "an op"
                raise InvalidArgumentError(f"{h.name!r} cannot run in {dtype}: TensorFlow has no {dtype} CPU kernel for {op}; "
                                  f"pass jit=True (XLA has one) or dtype='float32'") from None
            finally:
                restore_rates()
    first = next((f"step {r.step}: {r.beyond[0]}" for r in results if r.beyond), None)
    problems = [f"step {r.step}: {b}" for r in results for b in r.beyond]
    return TrainReport(h.name, optimizer, resolved, shape, dtype, plan.describe(), tol, results, not problems,
                       first, problems, time.perf_counter() - t0)


def train_shape(shape) -> tuple:
    """The default training input: the spec's shape with a batch of at least 2."""
    n, c, h, w = shape
    return max(n, 2), c, h, w


def schedule(lr_schedule, lr: float, steps: int) -> list:
    """One learning rate per step: ``lr_schedule`` checked, or ``lr`` throughout."""
    if lr_schedule is None:
        return [float(lr)] * steps
    lrs = [float(v) for v in lr_schedule]
    if len(lrs) != steps or min(lrs) < 0:
        raise InvalidArgumentError(f"lr_schedule needs one learning rate >= 0 per step ({steps}), got {lr_schedule!r}")
    return lrs
