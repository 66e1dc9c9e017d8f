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
from parity.compare import SATURATED, PairError, pair_error, run_twins, saturated
from parity.errors import InputShapeError
from parity.layout import to_nchw, to_nhwc
from parity.onnx_io import export_onnx, load_checked, session, static_hw
from parity.randomize import (calibrate_keras, check_seed, has_gates, randomize_keras, randomize_torch,
                              rescales_input)
from parity.registry import AUTO, PIXELS, ModelSpec, build, get
from parity.sizes import check_entry, check_runs, validate_shape
from parity.tables import format_table, shape_text
from parity.weight_transfer import TransferReport, refresh_keras_state, transfer

RUNTIMES = ("torch", "keras", "onnx:torch", "onnx:keras")


RESULT_HEADER = ("model", "pair", "max abs", "relative", "result", "parameters (a | b)")


def _total(count) -> int:
    return count.total if isinstance(count, C.ParamCount) else int(count)


def pair_rows(name: str, errors: dict, counts: dict, expected: dict, tolerance: float) -> list[tuple]:
    """Rows of :data:`RESULT_HEADER` for pairs ``"a ~ b"``: the errors, and the parameter totals of ``a`` and
    ``b``. A pair passes when its error is within ``tolerance`` and both counts are what ``expected`` says
    (a runtime missing from ``expected`` has no expected figure). torch's ONNX export folds each BatchNorm that
    follows a conv into it, so its count is lower by design: the row says so."""
    rows = []
    for pair, err in errors.items():
        a, b = pair.split(" ~ ")
        wrong = [k for k in (a, b) if k in expected and counts.get(k) != expected[k]]
        cell = " | ".join(f"{_total(counts[k]):,}" if k in counts else "-" for k in (a, b))
        if wrong:
            cell += " (" + "; ".join(f"{k} expected {expected[k]}" for k in wrong) + ")"
        elif "onnx:torch" in (a, b) and "torch" in counts and _total(counts["onnx:torch"]) != _total(counts["torch"]):
            cell += " (BN folded, expected)"
        ok = err.within(tolerance) and not wrong
        rows.append((name, pair, f"{err.max_abs:.2e}", f"{err.rel:.2e}", "PASS" if ok else "FAIL", cell))
    return rows


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
    first_divergence: str | None = None  # torch ~ Keras's first layer beyond tolerance
    first_divergences: dict = field(default_factory=dict)  # runtime -> its first layer beyond tolerance, or None

    def rows(self) -> list[tuple]:
        """One row per runtime pair, cells as :data:`RESULT_HEADER` names them."""
        return pair_rows(self.name, self.errors, self.counts, self.expected_counts, self.tolerance)

    def table(self) -> str:
        """The runtime pairs as a plain-text table (the rows ``parity check`` prints)."""
        return format_table(RESULT_HEADER, self.rows())

    def __str__(self) -> str:
        shapes = ", ".join(shape_text(r.input_shape) for r in self.per_shape)
        head = (f"{self.name}: {'PASS' if self.ok else 'FAIL'} at {shapes} (tolerance: relative error <= "
                f"{self.tolerance:g}; {self.seconds:.1f} s)")
        return "\n".join([head, self.table(), *(f"FAIL {self.name}: {p}" for p in self.problems)])

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
    manager, or call :meth:`close`, to delete the ONNX files (and give a model object its weights back).

    ``input_shapes`` are validated before anything else is built (:mod:`parity.sizes`). A fixed-size entry
    (a Flatten feeding a Dense) gets a Keras twin, and a Keras ONNX file, at every size it is run at, each
    loaded with the same weights; the first requested size (else the spec's default) is the base one, whose
    counts are reported."""

    def __init__(self, model, *, input_shapes=None, seed: int = 0, onnx: bool = True, name: str | None = None,
                 **overrides):
        self.seed, self.overrides = check_seed(seed), overrides
        self._restore, self._checked = None, set()
        if isinstance(model, str):
            self.spec, self._kind = get(model), "registry"
            self.name, self.channels = self.spec.name, self.spec.input_channels(**overrides)
            self.torch_model = build(model, "torch", **overrides)
            shapes = [self.validate(s) for s in input_shapes or ()]  # before the Keras build, transfer, exports
            self._base = tuple(shapes[0][2:]) if shapes and self.spec.fixed_size else tuple(self.spec.default_shape[2:])
            self.keras_model = build(model, "keras", input_size=self._base if self.spec.fixed_size else None,
                                     **overrides)
        else:
            if overrides:
                raise TypeError(f"builder arguments {sorted(overrides)} apply to registry names only, not to a "
                                f"{type(model).__name__} object")
            self.spec, self.torch_model, self.keras_model, self._restore = object_pair(model, input_shapes, name)
            self._kind = self.spec.source
            self.name, self.channels = self.spec.name, self.spec.input_channels()
            self._base = tuple(self.spec.default_shape[2:])
        if self.spec.source == "torch":
            calibrate = self.spec.sample_shape(**overrides) if self.spec.calibrate_batchnorm else None
            randomize_torch(self.torch_model, seed, calibrate=calibrate)
            self.transfer = transfer(self.torch_model, self.keras_model)
        else:
            randomize_keras(self.keras_model, seed)
            if self.spec.calibrate_batchnorm:  # BatchNorm statistics near those of the check's own inputs
                calibrate_keras(self.keras_model, to_nhwc(self.inputs((4, *self.spec.default_shape[1:]), seed + 2)),
                                seed)
            self.transfer = transfer(self.keras_model, self.torch_model)
        self._keras = {self._size_key((1, self.channels, *self._base)): self.keras_model}
        self.paths, self.onnx_models, self.sessions = {}, {}, {}
        self._sized = {}  # (runtime, (H, W)) -> (path, session) of a file exported at another size
        self._tmp = None
        if onnx:
            self._tmp = tempfile.TemporaryDirectory(prefix="parity-")
            export_shape = (1, self.channels, *self._base)
            self.paths = {
                "onnx:torch": export_onnx(self.torch_model, f"{self._tmp.name}/torch.onnx", export_shape),
                "onnx:keras": export_onnx(self.keras_model, f"{self._tmp.name}/keras.onnx"),
            }
            self.onnx_models = {k: load_checked(p) for k, p in self.paths.items()}
            self.sessions = {k: session(p) for k, p in self.paths.items()}
        # torch's exporter could not leave H and W free (AdaptiveAvgPool2d((7, 7))): one export per input size
        self.static_exports = {k for k, m in self.onnx_models.items()
                               if k == "onnx:torch" and static_hw(m) is not None and not self.spec.fixed_size}

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
        """``input_shape`` as a tuple, or :class:`InputShapeError` when it is not (N, C, H, W) with this
        pair's C, the torch model does not run at it, or its activations cannot fit in memory."""
        shape = validate_shape(input_shape, self.channels, self.name)
        if shape not in self._checked:
            check_runs(self.torch_model, shape, self.name, self.spec.default_shape[2:])
            self._checked.add(shape)
        return shape

    def _size_key(self, input_shape):
        return tuple(input_shape[2:]) if self.spec.fixed_size else None

    def keras_at(self, input_shape):
        """The Keras twin that runs ``input_shape``: the one twin, or for a fixed-size entry the twin built at
        that H, W (built and loaded with the torch twin's weights on first use)."""
        key = self._size_key(input_shape)
        if key not in self._keras:
            if self._kind == "keras":
                raise InputShapeError(f"{self.name!r} is a Keras model with a fixed input size "
                                      f"{shape_text(self._base)}; it cannot run at {shape_text(input_shape)}")
            if self._kind == "torch":
                from parity.convert import twin

                self._keras[key] = twin(self.torch_model, (1, self.channels, *key))
            else:
                model = build(self.name, "keras", input_size=key, **self.overrides)
                transfer(self.torch_model, model)
                self._keras[key] = model
        return self._keras[key]

    def _size_of_export(self, runtime: str, input_shape):
        """None when the base ONNX file of ``runtime`` runs ``input_shape``; else the H, W that needs a file
        of its own: the twin of a fixed-size entry at that size, or torch's model when torch's exporter could
        not leave H, W free (``static_exports``)."""
        size = tuple(input_shape[2:])
        if runtime == "onnx:torch":
            own = runtime in self.static_exports and static_hw(self.onnx_models[runtime]) != size
        else:
            own = self.spec.fixed_size and size != self._base
        return size if own else None

    def _export_at(self, runtime: str, input_shape) -> tuple:
        """``(path, session)`` of the ONNX file of ``runtime`` that runs ``input_shape`` (exported on first
        use at another size, see :meth:`_size_of_export`)."""
        size = self._size_of_export(runtime, input_shape)
        if size is None:
            return self.paths[runtime], self.sessions[runtime]
        if (runtime, size) not in self._sized:
            path = f"{self._tmp.name}/{runtime.split(':')[1]}-{shape_text(size)}.onnx"
            path = (export_onnx(self.torch_model, path, (1, self.channels, *size)) if runtime == "onnx:torch"
                    else export_onnx(self.keras_at(input_shape), path))
            self._sized[(runtime, size)] = (path, session(path))
        return self._sized[(runtime, size)]

    def onnx_paths_at(self, input_shape) -> dict:
        """The ONNX files that run ``input_shape`` (each exported on first use when the base one cannot)."""
        return {runtime: self._export_at(runtime, input_shape)[0] for runtime in self.paths}

    def inputs(self, input_shape, seed: int | None = None) -> np.ndarray:
        """A random float32 NCHW input: standard normal, or uniform in the spec's ``input_range``; drawn in
        float32 (no float64 array of the input's size is made)."""
        rng = np.random.default_rng(self.seed + 1 if seed is None else seed)
        shape = self.validate(input_shape)
        if self.spec.input_range is not None:
            low, high = self.spec.input_range
            return (rng.random(shape, dtype=np.float32) * np.float32(high - low) + np.float32(low))
        return rng.standard_normal(shape, dtype=np.float32)

    def run(self, x: np.ndarray) -> dict[str, list[np.ndarray]]:
        """Outputs of every runtime for NCHW input ``x``, as NCHW float32 arrays."""
        out = run_twins(self.torch_model, self.keras_at(x.shape), x)
        x_nhwc = to_nhwc(x)
        for key in self.sessions:
            feed = x if key == "onnx:torch" else x_nhwc
            res = self._export_at(key, x.shape)[1].run(None, {"input": feed})
            out[key] = res if key == "onnx:torch" else [to_nchw(r) for r in res]
        return out

    def compare(self, input_shape) -> ShapeResult:
        outs = self.run(self.inputs(input_shape))
        result = ShapeResult(tuple(input_shape), {}, [list(o.shape) for o in outs["torch"]])
        for i, out in enumerate(outs["torch"]):
            if saturated(out):
                result.problems.append(
                    f"torch output {i} at {shape_text(input_shape)}: every value is within {SATURATED:g} of 0 or 1 "
                    f"(a saturated softmax or sigmoid, or zeros), so no error can show in it; compare the logits "
                    f"(keras.applications: classifier_activation=None)")
        for a, b in combinations([r for r in RUNTIMES if r in outs], 2):
            err = pair_error(outs[a], outs[b], labels=(a, b))
            result.errors[f"{a} ~ {b}"] = err
            if err.problems:
                result.problems.append(f"{a} ~ {b} at {shape_text(input_shape)}: " + "; ".join(err.problems))
            elif not err.within(self.spec.tolerance):
                result.problems.append(f"{a} ~ {b} at {shape_text(input_shape)}: relative error {err.rel:.3g} > "
                                       f"tolerance {self.spec.tolerance:g} (max abs {err.max_abs:.3g})")
        return result

    def trace(self, input_shape):
        """Per-layer errors of Keras and of each ONNX file against torch at ``input_shape`` (a
        :class:`parity.trace.TraceReport`)."""
        from parity.trace import trace

        return trace(self.torch_model, self.keras_at(input_shape), self.inputs(input_shape), self.spec.tolerance,
                     onnx_paths=self.onnx_paths_at(input_shape))

    def counts(self) -> tuple[dict, dict, list]:
        """``(counted, expected, problems)`` for torch, Keras and each ONNX file."""
        got = {"torch": C.torch_count(self.torch_model), "keras": C.keras_count(self.keras_model)}
        published = self.spec.params
        expected = {}
        if published is not None and not self.overrides:
            expected["torch"] = expected["keras"] = C.ParamCount(published.trainable, published.statistics)
        else:  # the published figures hold for the spec's arguments only; the twins must still agree
            expected["keras"] = got["torch"]
        sample = torch.zeros((1, self.channels, *self._base))
        for key, model in self.onnx_models.items():
            got[key] = C.onnx_count(model, stored_only=key == "onnx:keras")
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
        diverged = next((r.input_shape for r in per_shape for pair, err in r.errors.items()
                         if pair.startswith("torch ~ ") and not err.within(self.spec.tolerance)), None)
        firsts = self.trace(diverged).first if diverged is not None else {}
        for runtime, layer in firsts.items():
            if layer is not None:
                problems.append(f"torch ~ {runtime} first diverges at layer {layer} (input {shape_text(diverged)}); "
                                f"see `parity check {self.name} --trace`")
        return CheckReport(self.name, not problems, self.spec.tolerance, self.spec.tolerance_reason, errors,
                           per_shape, got, expected, problems, self.transfer, time.perf_counter() - t0,
                           firsts.get("keras"), firsts)


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
        label = name or type(model).__name__
        check_runs(original, validate_shape(shapes[0], shapes[0][1:2] and shapes[0][1], label), label, shapes[0][2:])
        other, restore = twin(original, shapes[0]), None
        torch_model, keras_model, source = original, other, "torch"
    elif isinstance(model, keras.Model):
        saved = [v.numpy() for v in model.weights]
        def restore():
            for v, a in zip(model.weights, saved):
                v.assign(a)
            refresh_keras_state(model)  # Normalization reads its statistics only through finalize_state()
        shapes = tuple(tuple(int(d) for d in s) for s in input_shapes or [keras_default_shape(model)])
        torch_model, keras_model, source = twin(model), model, "keras"
    else:
        raise TypeError(f"expected a registry name, a torch.nn.Module or a keras.Model, got {type(model).__name__}")
    kind = type(model)
    pixels = source == "keras" and rescales_input(keras_model)  # as the zoo's entries of such models
    spec = ModelSpec(
        name=name or getattr(model, "name", None) or kind.__name__,
        description=f"{kind.__module__}.{kind.__qualname__} and its automatic twin",
        torch=AUTO if source == "keras" else f"{kind.__module__}:{kind.__qualname__}",
        keras=AUTO if source == "torch" else f"{kind.__module__}:{kind.__qualname__}",
        input_shapes=shapes, params=None, fixed_size=None not in tuple(keras_model.inputs[0].shape[1:3]),
        calibrate_batchnorm=has_gates(torch_model) if source == "torch" else pixels,
        input_range=PIXELS if pixels else None)
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
    check_seed(seed)
    if isinstance(model, str):  # an unknown name or a bad shape or size fails before anything is built
        get(model)
        if input_shape is not None:
            check_entry(model, input_shape, **overrides)
    shapes = [input_shape] if input_shape is not None else None
    with Harness(model, input_shapes=shapes, seed=seed, onnx=onnx, name=name, **overrides) as h:
        report = h.report([input_shape] if input_shape is not None else None)
    report.seconds = time.perf_counter() - t0
    return report
