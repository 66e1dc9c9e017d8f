"""The parity engine: build a twin pair, randomise, transfer, export, run everything, compare.

Four runtimes are compared pairwise: ``torch``, ``keras``, ``onnx:torch`` (the torch export) and
``onnx:keras`` (the Keras export). Inputs and reported outputs are NCHW; Keras runtimes get NHWC and their
4-D outputs are transposed back. The error of a pair ``a ~ b`` is ``max|a - b|`` and, relative,
``max|a - b| / max|a|``, the worst over all outputs (every FPN level, every Inception head).
"""
from __future__ import annotations

import copy
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
from parity.onnx_io import export_onnx, load_checked, session, static_hw
from parity.randomize import has_gates, randomize_keras, randomize_torch
from parity.registry import AUTO, ModelSpec, build, get
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
    """One twin pair, built once: a registry entry, or a model object (a torch module or a Keras model) with
    its automatic twin. The original side is randomised (``seed``) and its weights are transferred to the
    twin; both are exported to ONNX (unless ``onnx=False``) and loaded into onnxruntime. Use as a context
    manager, or call :meth:`close`, to delete the ONNX files (and give a model object its weights back)."""

    def __init__(self, model, *, input_shapes=None, seed: int = 0, onnx: bool = True, name: str | None = None,
                 **overrides):
        self.seed, self.overrides = seed, overrides
        self._restore = None
        if isinstance(model, str):
            self.spec = get(model)
            self.torch_model, self.keras_model = build(model, "torch", **overrides), build(model, "keras", **overrides)
        else:
            if overrides:
                raise TypeError(f"builder arguments {sorted(overrides)} apply to registry names only, not to a "
                                f"{type(model).__name__} object")
            self.spec, self.torch_model, self.keras_model, self._restore = object_pair(model, input_shapes, name)
        self.name = self.spec.name
        if self.spec.source == "torch":
            calibrate = self.spec.sample_shape(**overrides) if self.spec.calibrate else None
            randomize_torch(self.torch_model, seed, calibrate=calibrate)
            self.transfer = transfer(self.torch_model, self.keras_model)
        else:
            randomize_keras(self.keras_model, seed)
            self.transfer = transfer(self.keras_model, self.torch_model)
        self.channels = self.spec.input_channels(**overrides)
        self.paths, self.onnx_models, self.sessions = {}, {}, {}
        self._tmp = None
        if onnx:
            self._tmp = tempfile.TemporaryDirectory(prefix="parity-")
            export_shape = (1, self.channels, *self.spec.default_shape[2:])
            self.paths = {
                "onnx:torch": export_onnx(self.torch_model, f"{self._tmp.name}/torch.onnx", export_shape),
                "onnx:keras": export_onnx(self.keras_model, f"{self._tmp.name}/keras.onnx"),
            }
            self.onnx_models = {k: load_checked(p) for k, p in self.paths.items()}
            self.sessions = {k: session(p) for k, p in self.paths.items()}
        # torch's exporter could not leave H and W free (AdaptiveAvgPool2d((7, 7))): one export per input size
        self.static_exports = {k for k, m in self.onnx_models.items()
                               if k == "onnx:torch" and static_hw(m) is not None and not self.spec.fixed_size}
        self._sized = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.sessions, self._sized = {}, {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._restore is not None:
            self._restore()
            self._restore = None

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
            sess = self._session_for(key, sess, x.shape)
            feed = x if key == "onnx:torch" else x_nhwc
            res = sess.run(None, {"input": feed})
            out[key] = res if key == "onnx:torch" else [to_nchw(r) for r in res]
        return out

    def _session_for(self, key, sess, shape):
        """The session of runtime ``key`` for NCHW ``shape``: a file exported at another fixed H, W is exported
        again at this one (torch's exporter, the model as it is)."""
        if key not in self.static_exports or static_hw(self.onnx_models[key]) == tuple(shape[2:]):
            return sess
        size = tuple(shape[2:])
        if size not in self._sized:
            path = export_onnx(self.torch_model, f"{self._tmp.name}/torch_{size[0]}x{size[1]}.onnx",
                               (1, shape[1], *size))
            self._sized[size] = session(path)
        return self._sized[size]

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
        if published is not None and not self.overrides:
            expected["torch"] = expected["keras"] = C.ParamCount(published.trainable, published.statistics)
        else:  # the published figures hold for the spec's arguments only; the twins must still agree
            expected["keras"] = got["torch"]
        sample = torch.zeros((1, self.channels, *self.spec.default_shape[2:]))
        for key, model in self.onnx_models.items():
            got[key] = C.onnx_count(model)
            expected[key] = (C.torch_onnx_expected(self.torch_model, sample) if key == "onnx:torch"
                             else C.keras_onnx_expected(self.keras_model))
        problems = [f"{k} parameters: expected {expected[k]}"
                    f"{f' ({published.source})' if k in ('torch', 'keras') and published and not self.overrides else ''}, "
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


def object_pair(model, input_shapes, name):
    """``(spec, torch model, Keras model, restore)`` for a model object and its automatic twin. A torch
    module is deep-copied (then randomised: the caller's weights are never touched); a Keras model is
    randomised in place and ``restore()`` gives it its own weights back. The spec has no published counts:
    the twins' counts must agree with each other."""
    from parity.convert import twin
    from tf_impl.backend import keras

    if isinstance(model, torch.nn.Module):
        if not input_shapes:
            raise InputShapeError(f"checking a torch module ({type(model).__name__}) needs input_shape=(N, C, H, W): "
                                  f"a module does not record its input size; got None")
        original = copy.deepcopy(model).eval()
        shapes = tuple(tuple(int(d) for d in s) for s in input_shapes)
        other, restore = twin(original, shapes[0]), None
        torch_model, keras_model, source = original, other, "torch"
    elif isinstance(model, keras.Model):
        saved = [v.numpy() for v in model.weights]
        restore = lambda: [v.assign(a) for v, a in zip(model.weights, saved)]  # noqa: E731
        shapes = tuple(tuple(int(d) for d in s) for s in input_shapes or [keras_default_shape(model)])
        torch_model, keras_model, source = twin(model), model, "keras"
    else:
        raise TypeError(f"expected a registry name, a torch.nn.Module or a keras.Model, got {type(model).__name__}")
    kind = type(model)
    spec = ModelSpec(
        name=name or getattr(model, "name", None) or kind.__name__,
        description=f"{kind.__module__}.{kind.__qualname__} and its automatic twin",
        torch=AUTO if source == "keras" else f"{kind.__module__}:{kind.__qualname__}",
        keras=AUTO if source == "torch" else f"{kind.__module__}:{kind.__qualname__}",
        input_shapes=shapes, params=None, calibrate=source == "torch" and has_gates(torch_model),
        fixed_size=None not in tuple(keras_model.inputs[0].shape[1:3]))
    return spec, torch_model, keras_model, restore


def keras_default_shape(model) -> tuple:
    """(1, C, H, W) for a Keras image model: its own H, W where fixed, else 224."""
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise InputShapeError(f"expected a Keras image model with (N, H, W, C) input, got input shape {shape}")
    return 1, shape[3], shape[1] or 224, shape[2] or 224


def check(model, input_shape=None, onnx: bool = True, seed: int = 0, name: str | None = None,
          **overrides) -> CheckReport:
    """Checks a registry entry (``model`` a name) or a model object (a torch module, with ``input_shape``,
    or a Keras model) against its twin: torch vs Keras, and both ONNX exports unless ``onnx=False``, at
    ``input_shape`` (N, C, H, W) or at every input shape of the spec when None; plus parameter counts."""
    t0 = time.perf_counter()
    shapes = [input_shape] if input_shape is not None else None
    with Harness(model, input_shapes=shapes, seed=seed, onnx=onnx, name=name, **overrides) as h:
        report = h.report([input_shape] if input_shape is not None else None)
    report.seconds = time.perf_counter() - t0
    return report
