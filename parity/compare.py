"""Comparing outputs: the error of a pair of runtimes, and running both twins on one input.

The error of ``ref ~ other`` is ``max|ref - other|`` and, relative, ``max|ref - other| / max|ref|``, the
worst over all outputs. A comparison that cannot be made is a failure, never a zero: a NaN or an Inf on
either side, an empty output, a missing output or a shape that differs gives an infinite error and says why
in ``PairError.problems``. (``np.max`` of an array with a NaN is NaN, and ``max(0.0, nan)`` is 0.0: a NaN
would otherwise pass every tolerance.)
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from parity.layout import to_nchw, to_nhwc

INF = float("inf")


@dataclass(frozen=True)
class PairError:
    max_abs: float
    rel: float
    problems: tuple = ()  # why the error is infinite: non-finite values, empty or missing outputs, shapes

    def within(self, tolerance: float) -> bool:
        return not self.problems and self.rel <= tolerance

    def worst(self, other: "PairError") -> "PairError":
        """The worse of two errors, keeping every problem of both."""
        return PairError(max(self.max_abs, other.max_abs), max(self.rel, other.rel), self.problems + other.problems)

    def to_json(self) -> dict:
        """RFC 8259 JSON: an infinite or NaN figure becomes null, and ``problems`` says why."""
        finite = lambda v: v if math.isfinite(v) else None  # noqa: E731
        return {"max_abs": finite(self.max_abs), "rel": finite(self.rel), "problems": list(self.problems)}


def nonfinite(a: np.ndarray) -> int:
    """How many values of ``a`` are NaN or infinite."""
    return int(a.size - np.count_nonzero(np.isfinite(a)))


SATURATED = 1e-6  # how close to 0 or 1 every value of an output must be for it to show no error at all


def saturated(a: np.ndarray) -> bool:
    """Whether every value of ``a`` lies within :data:`SATURATED` of 0 or of 1: a softmax or sigmoid of large
    logits (a random classifier's softmax is one-hot: two runtimes then agree to 1e-44), or a map of zeros.
    Such an output cannot show an error, so a comparison of it proves nothing."""
    a = np.asarray(a, dtype=np.float64)
    return a.size > 0 and bool(np.all(np.minimum(np.abs(a), np.abs(a - 1.0)) <= SATURATED))


def pair_error(ref, other, labels: tuple = ("ref", "other")) -> PairError:
    """Worst absolute and relative error of ``other`` against ``ref``, output by output (lists of arrays in
    the same order); ``labels`` name the two sides in the problems."""
    ref, other = list(ref), list(other)
    problems = []
    if not ref or len(ref) != len(other):
        problems.append(f"{labels[0]} gives {len(ref)} outputs, {labels[1]} {len(other)}")
    max_abs = rel = 0.0
    for i, (a, b) in enumerate(zip(ref, other)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            problems.append(f"output {i}: {labels[0]} shape {a.shape}, {labels[1]} shape {b.shape}")
            continue
        if a.size == 0:
            problems.append(f"output {i} is empty: shape {a.shape}")
            continue
        bad = [f"{label} output {i}: {n} of {a.size} values are NaN or Inf"
               for label, t in zip(labels, (a, b)) if (n := nonfinite(t))]
        if bad:
            problems += bad
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b)))
        scale = float(np.max(np.abs(a.astype(np.float64))))
        max_abs, rel = max(max_abs, diff), max(rel, diff / scale if scale > 0 else diff)
    if problems:
        return PairError(INF, INF, tuple(problems))
    return PairError(max_abs, rel)


def _as_list(out) -> list:
    """A model's outputs as a list: a tuple or list in order, a dict by its keys' order, else one output."""
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


@contextmanager
def eval_mode(module):
    """``module`` in eval mode for the duration, every submodule's ``training`` flag restored after. What is
    compared is inference, and comparing must not change the model: a train-mode BatchNorm updates its
    running statistics on every forward (and uses the batch's), a train-mode Dropout is random."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


def run_twins(torch_model, keras_model, x: np.ndarray) -> dict[str, list[np.ndarray]]:
    """``{"torch": [...], "keras": [...]}``: each twin's outputs for NCHW input ``x`` (torch in eval mode,
    restored after; Keras in inference mode, given NHWC), as NCHW float32 arrays in the model's output
    order."""
    import torch

    from tf_impl.backend import keras

    with torch.no_grad(), eval_mode(torch_model):
        out = {"torch": [t.numpy() for t in _as_list(torch_model(torch.from_numpy(x)))]}
    out["keras"] = [to_nchw(keras.ops.convert_to_numpy(t)) for t in
                    _as_list(keras_model(to_nhwc(x), training=False))]
    return out
