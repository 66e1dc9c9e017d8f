"""The parity engine: build a twin pair, randomise, transfer, export, run everything, compare.

Four runtimes are compared pairwise: ``torch``, ``keras``, ``onnx:torch`` (the torch export) and
``onnx:keras`` (the Keras export). Inputs and reported outputs are NCHW; Keras runtimes get NHWC and their
4-D outputs are transposed back. The error of a pair ``a ~ b`` is ``max|a - b|`` and, relative,
``max|a - b| / max|a|``, the worst over all outputs (every FPN level, every Inception head).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np
import torch

from parity import counts as C
from parity.compare import PairError, pair_error, run_twins
from parity.errors import InputShapeError
from parity.layout import to_nchw, to_nhwc
from parity.onnx_io import export_onnx, load_checked, session
from parity.randomize import randomize_torch
from parity.registry import build, get
from parity.weight_transfer import TransferReport, transfer

RUNTIMES = ("torch", "keras", "onnx:torch", "onnx:keras")


@dataclass
class ShapeResult:
    input_shape: tuple
    errors: dict  # "a ~ b" -> PairError
    output_shapes: list
    problems: list = field(default_factory=list)


@dataclass
class CheckReport:
    """Outcome of :func:`check`. ``errors`` holds each runtime pair's worst error over all input shapes;
    ``counts`` the parameter counts per framework (trainable, statistics) and per ONNX file (floats);
    ``problems`` every reason the check failed, in words."""

    name: str
    ok: bool
    tolerance: float
    tolerance_reason: str
    errors: dict
    per_shape: list
    counts: dict
    expected_counts: dict
    problems: list
    transfer: TransferReport
    seconds: float
    first_divergence: str | None = None

    def to_dict(self) -> dict:
        """Plain data for ``json.dump``, RFC 8259 valid: an infinite or NaN error is null (see ``problems``)."""
        d = asdict(self)
        d["errors"] = {pair: err.to_json() for pair, err in self.errors.items()}
        d["per_shape"] = [asdict(r) | {"errors": {p: e.to_json() for p, e in r.errors.items()}} for r in self.per_shape]
        d["transfer"] = {"direction": self.transfer.direction, "tensors": self.transfer.tensors,
                         "bytes": self.transfer.bytes, "seconds": self.transfer.seconds}
        d["counts"] = {k: (asdict(v) | {"total": v.total}) if isinstance(v, C.ParamCount) else v
                       for k, v in self.counts.items()}
        return d


class Harness:
    """One registry entry, built once: torch twin randomised (``seed``), weights transferred to the Keras
    twin, both exported to ONNX (unless ``onnx=False``) and loaded into onnxruntime. Use as a context
    manager, or call :meth:`close`, to delete the ONNX files."""

    def __init__(self, name: str, *, seed: int = 0, onnx: bool = True, **overrides):
        self.spec = get(name)
        self.name, self.seed, self.overrides = name, seed, overrides
        self.torch_model = randomize_torch(build(name, "torch", **overrides), seed)
        self.keras_model = build(name, "keras", **overrides)
        self.transfer = transfer(self.torch_model, self.keras_model)
        self.channels = self.spec.input_channels(**overrides)
        self.paths, self.onnx_models, self.sessions = {}, {}, {}
        self._tmp = None
        if onnx:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"parity-{name}-")
            export_shape = (1, self.channels, *self.spec.default_shape[2:])
            self.paths = {
                "onnx:torch": export_onnx(self.torch_model, f"{self._tmp.name}/{name}.torch.onnx", export_shape),
                "onnx:keras": export_onnx(self.keras_model, f"{self._tmp.name}/{name}.keras.onnx"),
            }
            self.onnx_models = {k: load_checked(p) for k, p in self.paths.items()}
            self.sessions = {k: session(p) for k, p in self.paths.items()}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.sessions = {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def validate(self, input_shape) -> tuple:
        shape = tuple(int(d) for d in input_shape)
        expect = f"(N, C, H, W) with C={self.channels}"
        if len(shape) != 4 or min(shape) < 1:
            raise InputShapeError(f"input_shape for {self.name!r} must be {expect}, got {tuple(input_shape)}")
        if shape[1] != self.channels:
            hint = " (that looks like NHWC; pass NCHW)" if shape[3] == self.channels else ""
            raise InputShapeError(f"input_shape for {self.name!r} must be {expect}, got {shape}{hint}")
        if self.spec.fixed_size and shape[2:] != tuple(self.spec.default_shape[2:]):
            raise InputShapeError(f"{self.name!r} runs at H, W = {tuple(self.spec.default_shape[2:])} only "
                                  f"(a Flatten feeds a Dense), got {shape[2:]}")
        return shape

    def inputs(self, input_shape) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 1)
        return rng.standard_normal(self.validate(input_shape)).astype(np.float32)

    def run(self, x: np.ndarray) -> dict[str, list[np.ndarray]]:
        """Outputs of every runtime for NCHW input ``x``, as NCHW float32 arrays."""
        out = run_twins(self.torch_model, self.keras_model, x)
        x_nhwc = to_nhwc(x)
        for key, sess in self.sessions.items():
            feed = x if key == "onnx:torch" else x_nhwc
            res = sess.run(None, {"input": feed})
            out[key] = res if key == "onnx:torch" else [to_nchw(r) for r in res]
        return out

    def compare(self, input_shape) -> ShapeResult:
        outs = self.run(self.inputs(input_shape))
        result = ShapeResult(tuple(input_shape), {}, [list(o.shape) for o in outs["torch"]])
        for a, b in combinations([r for r in RUNTIMES if r in outs], 2):
            shapes_a, shapes_b = [o.shape for o in outs[a]], [o.shape for o in outs[b]]
            err = pair_error(outs[a], outs[b], labels=(a, b))
            result.errors[f"{a} ~ {b}"] = err
            if err.problems:
                result.problems.append(f"{a} ~ {b} at {tuple(input_shape)}: " + "; ".join(err.problems))
            elif not err.within(self.spec.tolerance):
                result.problems.append(f"{a} ~ {b} at {tuple(input_shape)}: relative error {err.rel:.3g} > "
                                       f"tolerance {self.spec.tolerance:g} (max abs {err.max_abs:.3g})")
        return result

    def trace(self, input_shape):
        """Per-layer torch ~ Keras errors at ``input_shape`` (a :class:`parity.trace.TraceReport`)."""
        from parity.trace import trace

        return trace(self.torch_model, self.keras_model, self.inputs(input_shape), self.spec.tolerance)

    def counts(self) -> tuple[dict, dict, list]:
        """``(counted, expected, problems)`` for torch, Keras and each ONNX file."""
        got = {"torch": C.torch_count(self.torch_model), "keras": C.keras_count(self.keras_model)}
        published = self.spec.params
        expected = {}
        if not self.overrides:
            expected["torch"] = expected["keras"] = C.ParamCount(published.trainable, published.statistics)
        else:  # the published figures hold for the spec's arguments only; the twins must still agree
            expected["keras"] = got["torch"]
        sample = torch.zeros((1, self.channels, *self.spec.default_shape[2:]))
        for key, model in self.onnx_models.items():
            got[key] = C.onnx_count(model)
            expected[key] = (C.torch_onnx_expected(self.torch_model, sample) if key == "onnx:torch"
                             else C.keras_onnx_expected(self.keras_model))
        problems = [f"{k} parameters: expected {expected[k]}"
                    f"{f' ({published.source})' if k in ('torch', 'keras') and not self.overrides else ''}, "
                    f"counted {got[k]}" for k in expected if expected[k] != got[k]]
        return got, expected, problems

    def report(self, input_shapes=None) -> CheckReport:
        t0 = time.perf_counter()
        shapes = [self.validate(s) for s in (input_shapes or self.spec.input_shapes)]
        per_shape = [self.compare(s) for s in shapes]
        errors = {}
        for res in per_shape:
            for pair, err in res.errors.items():
                errors[pair] = errors[pair].worst(err) if pair in errors else err
        got, expected, count_problems = self.counts()
        problems = [p for r in per_shape for p in r.problems] + count_problems
        diverged = next((r.input_shape for r in per_shape
                         if not r.errors["torch ~ keras"].within(self.spec.tolerance)), None)
        first = self.trace(diverged).first_divergence if diverged is not None else None
        if first is not None:
            problems.append(f"torch ~ keras first diverges at layer {first} (input {diverged}); "
                            f"see `parity check {self.name} --trace`")
        return CheckReport(self.name, not problems, self.spec.tolerance, self.spec.tolerance_reason, errors,
                           per_shape, got, expected, problems, self.transfer, time.perf_counter() - t0, first)


def check(name: str, input_shape=None, onnx: bool = True, seed: int = 0, **overrides) -> CheckReport:
    """Checks registry entry ``name``: torch vs Keras (and both ONNX exports unless ``onnx=False``) at
    ``input_shape`` (N, C, H, W), or at every input shape of the spec when None, plus parameter counts."""
    t0 = time.perf_counter()
    with Harness(name, seed=seed, onnx=onnx, **overrides) as h:
        report = h.report([input_shape] if input_shape is not None else None)
    report.seconds = time.perf_counter() - t0
    return report
