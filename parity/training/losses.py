"""The training loss, the same in both frameworks: one loss per model output, weighted and summed.

Which loss an output gets: an output of shape (N, K), K >= 2, is a classifier's logits and gets
cross-entropy against random class labels; any other output (a feature map, a detection level) gets the
mean squared error against a random normal target of its shape. ``loss="mse"`` or ``"cross_entropy"``
overrides the rule for every output (a rank-2 embedding is not logits).

The total is ``sum(w_i * loss_i)``; each ``loss_i`` is a mean (over the batch for cross-entropy, over every
element for MSE), so an output counts by its weight, not by its size: FPN's four levels weigh 1 each
although P2 holds 16x P4's elements. Weights default to 1, except where a paper says otherwise
(:data:`PAPER_WEIGHTS`); ``loss_weights`` overrides.

Both frameworks' own loss functions are used, configured alike: torch ``F.cross_entropy(logits, labels,
label_smoothing=s)`` and Keras ``CategoricalCrossentropy(from_logits=True, label_smoothing=s)`` on one-hot
labels (Keras's sparse variant has no label smoothing, and ``from_logits`` defaults to False), both
smoothing to ``(1 - s) * onehot + s / K``; torch ``F.mse_loss`` and Keras ``MeanSquaredError``, both the mean
over all elements.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from parity.errors import InvalidArgumentError
from parity.layout import to_nhwc
from tf_impl.backend import keras

# Inception v1 (Szegedy et al. 2014, section 5): "the losses of the auxiliary classifiers were weighted by
# 0.3"; the outputs are (aux1, aux2, out)
PAPER_WEIGHTS = {"inception_v1_train": (0.3, 0.3, 1.0), "inception_v1_blog_train": (0.3, 0.3, 1.0)}


@dataclass(frozen=True)
class Loss:
    """One loss: how to draw its target, and its torch and Keras forms (NCHW torch output, NHWC Keras output,
    the NCHW numpy target)."""

    target: object
    torch: object
    keras: object


LOSSES: dict[str, Loss] = {}


def register_loss(name: str, target, torch_fn, keras_fn) -> None:
    LOSSES[name] = Loss(target, torch_fn, keras_fn)


def _labels(rng, shape):
    return rng.integers(0, shape[1], size=shape[0])


def _cross_entropy_torch(output, target, label_smoothing):
    return F.cross_entropy(output, torch.from_numpy(target), label_smoothing=label_smoothing)


def _cross_entropy_keras(output, target, label_smoothing):
    dtype = keras.backend.standardize_dtype(output.dtype)
    onehot = keras.ops.one_hot(target, output.shape[-1], dtype=dtype)
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing,
                                                dtype=dtype)(onehot, output)


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)  # float32 values: the same targets in either precision


def _mse_torch(output, target, label_smoothing):
    return F.mse_loss(output, torch.from_numpy(target))


def _mse_keras(output, target, label_smoothing):
    dtype = keras.backend.standardize_dtype(output.dtype)
    return keras.losses.MeanSquaredError(dtype=dtype)(to_nhwc(target), output)


register_loss("cross_entropy", _labels, _cross_entropy_torch, _cross_entropy_keras)
register_loss("mse", _normal, _mse_torch, _mse_keras)


def is_logits(shape) -> bool:
    """The classifier rule: an (N, K) output with K >= 2 is logits."""
    return len(shape) == 2 and shape[1] >= 2


@dataclass(frozen=True)
class LossPlan:
    """The loss of each output (a :data:`LOSSES` name), its weight, and the label smoothing."""

    kinds: tuple
    weights: tuple
    label_smoothing: float = 0.0

    def describe(self) -> str:
        terms = " + ".join(f"{w:g}*{k}[{i}]" for i, (k, w) in enumerate(zip(self.kinds, self.weights)))
        return terms + (f", label smoothing {self.label_smoothing:g}" if self.label_smoothing else "")

    def targets(self, rng, shapes, dtype) -> list:
        """Random targets for outputs of ``shapes``; float targets in numpy ``dtype`` (the model's)."""
        drawn = [LOSSES[k].target(rng, s) for k, s in zip(self.kinds, shapes)]
        return [t.astype(dtype) if t.dtype.kind == "f" else t for t in drawn]

    def torch_loss(self, outputs, targets):
        return sum(w * LOSSES[k].torch(o, t, self.label_smoothing)
                   for k, w, o, t in zip(self.kinds, self.weights, outputs, targets))

    def keras_loss(self, outputs, targets):
        return sum(w * LOSSES[k].keras(o, t, self.label_smoothing)
                   for k, w, o, t in zip(self.kinds, self.weights, outputs, targets))


def plan(shapes, name: str, loss: str | None = None, loss_weights=None, label_smoothing: float = 0.0) -> LossPlan:
    """The :class:`LossPlan` for outputs of torch (NCHW) ``shapes`` of model ``name``."""
    if loss is not None and loss not in LOSSES:
        raise InvalidArgumentError(f"unknown loss {loss!r}; expected one of: {', '.join(LOSSES)} (or None: cross-entropy "
                          f"for (N, K) logits, MSE otherwise)")
    kinds = tuple(loss or ("cross_entropy" if is_logits(s) else "mse") for s in shapes)
    for i, (k, s) in enumerate(zip(kinds, shapes)):
        if k == "cross_entropy" and not is_logits(s):
            raise InvalidArgumentError(f"cross_entropy needs (N, K) logits with K >= 2; output {i} has shape {tuple(s)}")
    weights = loss_weights if loss_weights is not None else PAPER_WEIGHTS.get(name, (1.0,) * len(shapes))
    if len(weights) != len(shapes):
        raise InvalidArgumentError(f"loss_weights needs one weight per output ({len(shapes)}), got {tuple(weights)}")
    if not 0.0 <= label_smoothing <= 1.0 or (label_smoothing and "cross_entropy" not in kinds):
        raise InvalidArgumentError(f"label_smoothing must be in [0, 1] and needs a cross-entropy output; got "
                          f"{label_smoothing} with losses {kinds}")
    return LossPlan(kinds, tuple(float(w) for w in weights), float(label_smoothing))
