"""K identical training steps in both frameworks, in lockstep, compared after each one.

Each step feeds the same batch (NCHW to torch, NHWC to Keras) and the same targets to both twins in
training mode, takes the same loss (:mod:`parity.training.losses`), backpropagates, and steps the twin
optimizers (:mod:`parity.training.optimizers`). Then it compares, per tensor, under torch's names:

- the loss of each side (relative error);
- every gradient: ``max|g_t - g_k| / max|g_t|``, or over :data:`GRADIENT_FLOOR` of the model's largest
  gradient where ``max|g_t|`` is below that (an analytic zero, computed as rounding on both sides);
- every optimizer step: Keras's new weights against torch's optimizer *replayed on the Keras gradients*
  from the same weights, ``max|p_replay - p_k| / max|p_replay - p_before|``: the error relative to the
  step. (Relative to the weight it would shrink with the learning rate: a momentum or eps that changes
  the step by 10% moves a weight by 1e-5 of its size at lr 1e-3.) The replay separates the optimizer
  from the gradients: Adam and RMSprop divide by ``sqrt(v) + eps``, so a gradient near 0 turns its
  rounding into a step of up to ``lr * rounding / eps``; that end-to-end *drift* (Keras's step against
  torch's own) is reported, not judged, since both its causes are;
- every BatchNorm statistic, relative to its step (``running_var`` moves by ``momentum * (var - running)``).

A step smaller than :data:`ROUNDING_ULPS` ulps of the tensor counts as that much (rounding, whatever the
formula). Lockstep: after each step the torch weights and statistics are transferred into the Keras model,
so every step starts from one state and a step's error is that step's own, not the chaos of a randomly
initialised net amplifying the previous ones (ResNet-50 with Adam: a 6e-8 difference after step 1 became
a 0.23 gradient difference at step 2 without it). The optimizers keep their own state (moments, buffers,
step counts), so a formula that differs in that state still shows.

Keras tensors are compared in torch's layout and under torch's names (:mod:`parity.training.state`). A
comparison that meets NaN, Inf or a missing tensor fails (``parity.compare.pair_error``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from parity.compare import PairError, pair_error
from parity.layout import to_nhwc
from parity.training.optimizers import set_lr
from parity.training.state import (as_list, flat_state, flat_tensors, keras_grads, keras_state, statistic_names,
                                   torch_grads, trainable)
from parity.weight_transfer import transfer
from tf_impl.backend import keras, tf


@dataclass(frozen=True)
class Tolerances:
    """Relative-error tolerances of a training check, with the measurement they come from."""

    loss: float
    grad: float
    step: float  # optimizer steps, of the tensor's step
    stat: float  # BatchNorm statistics, of the statistic's step
    reason: str


@dataclass(frozen=True)
class Worst:
    """The worst tensor of one comparison (None when there was nothing to compare) and its error."""

    name: str | None
    error: PairError

    @staticmethod
    def of(errors: dict) -> "Worst":
        if not errors:
            return Worst(None, PairError(0.0, 0.0))
        name = max(errors, key=lambda n: (bool(errors[n].problems), errors[n].rel))
        return Worst(name, errors[name])


@dataclass
class StepResult:
    """One step: the learning rate it ran at, each side's loss, and the worst gradient, optimizer-step and
    BatchNorm-statistic errors; ``beyond`` lists what exceeded its tolerance, in the torch model's definition
    order."""

    step: int
    lr: float
    loss_torch: float
    loss_keras: float
    loss: PairError
    grads: Worst
    params: Worst  # Keras's step against torch's optimizer replayed on the Keras gradients
    stats: Worst
    drift: Worst  # Keras's step against torch's own (gradient rounding, amplified by the optimizer): reported
    floor: dict | None = None  # with a float64 reference: torch's own worst float32 error, per kind
    beyond: list = field(default_factory=list)


ROUNDING_ULPS = 4  # a step smaller than 4 ulps of the tensor's largest value is rounding, whatever its formula
# A gradient below this fraction of the model's largest is cancellation noise and is judged against the
# fraction instead: the beta of a BatchNorm whose output only reaches the loss through a conv and another
# training-mode BatchNorm has an analytic gradient of 0 (a per-channel shift is normalised away), and both
# frameworks return rounding there (torchvision mobilenet_v2's projection BatchNorms, float64)
GRADIENT_FLOOR = 1e-9


def errors(ref: dict, other: dict, names, base: dict | None = None, floor: float = 0.0) -> dict[str, PairError]:
    """Per-name error of ``other`` against ``ref``: relative to ``max|ref|``, or to ``floor`` when that is
    larger; with ``base``, relative to the step ``max|ref - base|``, or to :data:`ROUNDING_ULPS` ulps of
    ``max|ref|`` when the step is smaller (a weight of 1.0 moved by 1e-9 in float32 cannot be compared to 1e-9)."""
    out = {}
    for n in names:
        if n not in other:
            out[n] = pair_error([ref[n]], [], labels=("torch", "keras"))
            continue
        err = pair_error([ref[n]], [other[n]], labels=("torch", "keras"))
        if base is not None and not err.problems:
            step = float(np.max(np.abs(ref[n].astype(np.float64) - base[n]), initial=0.0))
            floor = ROUNDING_ULPS * float(np.finfo(ref[n].dtype).eps) * float(np.max(np.abs(ref[n]), initial=0.0))
            scale = max(step, floor)
            err = PairError(err.max_abs, err.max_abs / scale if scale > 0 else err.max_abs)
        elif floor > 0 and not err.problems:
            scale = max(float(np.max(np.abs(ref[n]), initial=0.0)), floor)
            err = PairError(err.max_abs, err.max_abs / scale)
        out[n] = err
    return out


def rounding_floor(reference, before: dict, x, targets, loss_plan, t_loss, tg: dict, t_state: dict, stats) -> dict:
    """How far rounding alone moves torch at this step: ``reference`` (the torch model in float64) from the
    same weights ``before``, on the same batch and targets, against the torch model's loss, gradients ``tg``
    and statistics ``t_state``: ``{"loss": PairError, "grads": {name: PairError}, "stats": {...}}``."""
    with torch.no_grad():
        for n, t in flat_tensors(reference).items():
            t.copy_(torch.from_numpy(before[n]))
    reference.zero_grad(set_to_none=True)
    out = as_list(reference(torch.from_numpy(x.astype(np.float64))))
    loss = loss_plan.torch_loss(out, [t.astype(np.float64) if t.dtype.kind == "f" else t for t in targets])
    loss.backward()
    return {"loss": pair_error([np.float64(float(loss.detach()))], [np.float64(t_loss)]),
            "grads": errors(torch_grads(reference), tg, tg),
            "stats": errors(flat_state(reference), t_state, stats, base=before)}


def keras_step(keras_model, loss_plan, jit: bool):
    """``step(x_nhwc, targets) -> (loss, gradients)``: a training-mode forward and backward of the Keras
    model; with ``jit``, compiled by XLA (``tf.function(jit_compile=True)``), whose CPU kernels cover float64
    where TensorFlow's do not (``AvgPool3D``, which ``LocalResponseNorm`` uses)."""
    def step(x, targets):
        with tf.GradientTape() as tape:
            loss = loss_plan.keras_loss(as_list(keras_model(x, training=True)), targets)
        return loss, tape.gradient(loss, keras_model.trainable_variables)

    if not jit:
        return step
    compiled = tf.function(step, jit_compile=True)
    return lambda x, targets: compiled(tf.constant(x), [tf.constant(t) for t in targets])


def run_steps(torch_model, keras_model, make_torch_opt, keras_opt, batches, lrs, make_plan, target_rng,
              tol: Tolerances, allow_numerics_mismatch: bool = False, reference=None, jit: bool = False):
    """Runs ``len(batches)`` training steps on both twins (in place), in lockstep, and compares them after
    each; returns ``(loss plan, [StepResult])``.

    ``make_torch_opt(params)``: the torch optimizer, made twice (the training one and the replay one);
    ``keras_opt``: its Keras twin. ``lrs``: the learning rate of each step. ``make_plan(output_shapes)``: the
    loss plan, made once the first forward has given the torch output shapes; the targets of each step are
    drawn from ``target_rng``. The models must hold equal weights on entry, each in the mode to train in
    (``torch_model.train()``; a frozen BatchNorm in ``eval()``). ``allow_numerics_mismatch``: let the
    transfers pass BatchNorm settings that differ (to measure a deliberately naive twin). ``reference``: the
    torch model in float64, to report how far rounding alone moves torch at each step
    (:func:`rounding_floor`; reported, not judged: per tensor it varies 1000x from step to step). ``jit``: the
    Keras step under XLA (:func:`keras_step`)."""
    move = lambda src, dst: transfer(src, dst, allow_numerics_mismatch=allow_numerics_mismatch)  # noqa: E731
    probe, replay = copy.deepcopy(torch_model), copy.deepcopy(torch_model)
    torch_opt = make_torch_opt(trainable(torch_model).values())
    replay_params = trainable(replay)
    replay_opt = make_torch_opt(replay_params.values())
    stats = statistic_names(torch_model)
    results, loss_plan = [], None
    for step, (x, lr) in enumerate(zip(batches, lrs), start=1):
        before = flat_state(torch_model)
        for opt in (torch_opt, replay_opt, keras_opt):
            set_lr(opt, lr)
        torch_opt.zero_grad(set_to_none=True)
        t_out = as_list(torch_model(torch.from_numpy(x)))
        shapes = [tuple(o.shape) for o in t_out]
        if loss_plan is None:
            loss_plan = make_plan(shapes)
            k_step = keras_step(keras_model, loss_plan, jit)
        targets = loss_plan.targets(target_rng, shapes, x.dtype)
        t_loss = loss_plan.torch_loss(t_out, targets)
        t_loss.backward()
        k_loss, k_grads = k_step(to_nhwc(x), targets)
        tg = torch_grads(torch_model)
        kg = keras_grads(keras_model, k_grads, probe, move)
        largest = max((float(np.max(np.abs(g), initial=0.0)) for g in tg.values()), default=0.0)
        grads = errors(tg, kg, tg, floor=GRADIENT_FLOOR * largest)
        with torch.no_grad():  # the replay: torch's optimizer, from the same weights, on the Keras gradients
            for n, p in replay_params.items():
                p.copy_(torch.from_numpy(before[n]))
                p.grad = torch.from_numpy(kg[n])
        torch_opt.step()
        replay_opt.step()
        keras_opt.apply(k_grads, keras_model.trainable_variables)
        t_state, k_state = flat_state(torch_model), keras_state(keras_model, probe, move)
        replayed = flat_state(replay)
        params = errors(replayed, k_state, replay_params, base=before)
        drift = errors(t_state, k_state, replay_params, base=before)
        stat_names = [n for n in t_state if n in stats]
        statistics = errors(t_state, k_state, stat_names, base=before)
        move(torch_model, keras_model)
        lt, lk = float(t_loss.detach()), float(keras.ops.convert_to_numpy(k_loss))
        loss_err = pair_error([np.float64(lt)], [np.float64(lk)], labels=("torch", "keras"))
        floor = (None if reference is None else
                 rounding_floor(reference, before, x, targets, loss_plan, lt, tg, t_state, stat_names))
        result = StepResult(step, lr, lt, lk, loss_err, Worst.of(grads), Worst.of(params), Worst.of(statistics),
                            Worst.of(drift), None if floor is None else
                            {"loss": floor["loss"].rel, "grads": Worst.of(floor["grads"]).error.rel,
                             "stats": Worst.of(floor["stats"]).error.rel})
        if not loss_err.within(tol.loss):
            result.beyond.append(f"loss ({lt:.8g} vs {lk:.8g})")
        result.beyond += [f"gradient of {n}" for n, e in grads.items() if not e.within(tol.grad)]
        result.beyond += [f"optimizer step of {n}" for n, e in params.items() if not e.within(tol.step)]
        result.beyond += [f"statistic {n}" for n, e in statistics.items() if not e.within(tol.stat)]
        results.append(result)
    return loss_plan, results
