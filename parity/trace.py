"""Per-layer divergence: where do a torch module and its twins first disagree, in every runtime?

Every leaf module's output is captured in torch and matched by module path in each other runtime: torch
forward hooks keyed by ``named_modules`` path; on the Keras side a model over the intermediate outputs of
the layers named by those paths (the facade names the layer that produces a leaf's output after the leaf's
torch path; helper layers ``<path>_pad`` / ``<path>_gap`` are inputs to it, not outputs); in each ONNX file
the tensors its exporter's node names map back to those paths (:mod:`parity.onnx_taps`). Rows follow
torch's execution order. A module called several times (a shared ReLU or conv) gives one row per call,
``path[i]``, matched with the i-th call in the other runtime. A layer's error in a runtime is ``max|t - r|``
and, relative, ``max|t - r| / max|t|`` against torch (NHWC outputs are transposed to NCHW; a Flatten's output
is compared after reordering torch's C, H, W rows to H, W, C where the runtime flattens NHWC). A NaN or an
Inf fails the row (:func:`parity.compare.pair_error`). Each runtime's first row beyond tolerance is its
first divergence. The torch model runs in eval mode and gets its modes back after: tracing changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity.compare import PairError, eval_mode, pair_error
from parity.counts import folded_batchnorms
from parity.layout import inverse, to_nchw, to_nhwc
from parity.tables import format_table

OTHERS = ("keras", "onnx:torch", "onnx:keras")  # every runtime compared against torch, in table order


@dataclass(frozen=True)
class TraceRow:
    """One call of one leaf module: its error against torch in each runtime that has its value
    (``errors``), and why a runtime has none or what to know about it (``notes``)."""

    path: str
    torch_type: str
    keras_type: str
    shape: tuple  # torch's (NCHW) output shape
    errors: dict  # runtime -> PairError
    notes: dict = field(default_factory=dict)  # runtime -> words
    tolerance: float = 1e-5

    def ok_in(self, runtime: str) -> bool:
        """False when ``runtime``'s value here is beyond tolerance, non-finite or misshapen."""
        err = self.errors.get(runtime)
        return err is None or err.within(self.tolerance)

    @property
    def ok(self) -> bool:
        return all(self.ok_in(r) for r in self.errors)


@dataclass
class TraceReport:
    rows: list
    tolerance: float
    first: dict  # runtime -> label of its first row beyond tolerance, or None
    runtimes: tuple = ("keras",)

    @property
    def first_divergence(self) -> str | None:
        """torch ~ Keras's first divergence (the engine's ``CheckReport.first_divergence``)."""
        return self.first.get("keras")

    def table(self) -> str:
        """One row per leaf call: the relative error of every runtime against torch (``FAIL`` beyond
        tolerance, ``-`` where the runtime has no value; the note says why), the first divergence of any
        runtime marked ``>>``."""
        head = ("", "module path", "torch", "keras", "output (NCHW)", *(f"{r} rel" for r in self.runtimes), "status")
        firsts = {}
        for runtime, label in self.first.items():
            if label is not None:
                firsts.setdefault(label, []).append(runtime)
        body = []
        for r in self.rows:
            cells = [_cell(r.errors.get(rt), r.ok_in(rt)) for rt in self.runtimes]
            notes = "; ".join(f"{rt}: {n}" for rt, n in r.notes.items() if n)
            mark = f"<-- first divergence ({', '.join(firsts[r.path])})" if r.path in firsts else ""
            body.append((">>" if mark else "", r.path, r.torch_type, r.keras_type, "x".join(map(str, r.shape)),
                         *cells, "  ".join(x for x in (mark, notes) if x)))
        if any(self.first.values()):
            verdict = "first divergence: " + "; ".join(f"{rt}: {self.first.get(rt) or 'none'}" for rt in self.runtimes)
        else:
            verdict = f"no layer beyond tolerance in {', '.join(self.runtimes)}"
        return f"{format_table(head, body)}\n{verdict} (tolerance: relative error <= {self.tolerance:g})"


def _cell(err: PairError | None, ok: bool) -> str:
    if err is None:
        return "-"
    if err.problems:
        why = "non-finite" if any("NaN or Inf" in p for p in err.problems) else "shape"
        return f"{why} FAIL"
    return f"{err.rel:.2e}" + ("" if ok else " FAIL")


def _label(path: str, i: int, calls: int) -> str:
    return path if calls == 1 else f"{path}[{i}]"


def run_hooked(module: nn.Module, x: np.ndarray, modules: dict, on_output) -> None:
    """Runs NCHW ``x`` through ``module`` without gradients and in eval mode (its modes restored after),
    calling ``on_output(path, output)`` after every call of each ``{path: submodule}`` in ``modules`` whose
    output is a tensor; the hooks are removed after."""
    def hook(path):
        def fn(m, inputs, output):  # returns None: the output is left as it is
            if isinstance(output, torch.Tensor):
                on_output(path, output)
        return fn

    hooks = [m.register_forward_hook(hook(path)) for path, m in modules.items()]
    try:
        with torch.no_grad(), eval_mode(module):
            module(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()


def capture_torch(module: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """``{label: output}`` of every leaf module call, in execution order; the label is the module path, with
    ``[i]`` appended for the i-th call of a module called more than once (a shared ReLU, a shared conv).
    Outputs are copied at hook time, so a later in-place op (``ReLU(inplace=True)``) cannot alter them."""
    calls = []
    leaves = {path: m for path, m in module.named_modules() if path and not any(True for _ in m.children())}
    run_hooked(module, x, leaves, lambda path, output: calls.append((path, output.detach().clone().numpy())))
    total = {p: sum(1 for q, _ in calls if q == p) for p, _ in calls}
    seen, out = {}, {}
    for path, value in calls:
        seen[path] = seen.get(path, -1) + 1
        out[_label(path, seen[path], total[path])] = value
    return out


def capture_keras(model, x_nchw: np.ndarray, names) -> tuple[dict, dict]:
    """``({label: NCHW output}, {name: reason skipped})`` for every call of the layers of ``model`` named
    ``names`` (labels as :func:`capture_torch`: ``name``, or ``name[i]`` for a layer called several times)."""
    from tf_impl.backend import keras  # here, not at the top: torch-only users of run_hooked load no TensorFlow

    by_name = {layer.name: layer for layer in model.layers}
    taps, skipped = {}, {}
    for n in dict.fromkeys(names):
        layer = by_name.get(n)
        if layer is None:
            skipped[n] = "no Keras layer"
            continue
        nodes = layer._inbound_nodes
        layouts = getattr(layer, "torch_layouts", {})  # an automatic twin's: how each call's axes map on torch's
        for i, node in enumerate(nodes):
            taps[_label(n, i, len(nodes))] = (node.outputs[0], layouts.get(i))
    if not taps:
        return {}, skipped
    tap = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, [t for t, _ in taps.values()])
    outs = tap(to_nhwc(x_nchw), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {n: _torch_order(keras.ops.convert_to_numpy(o), taps[n][1]) for n, o in zip(taps, outs)}, skipped


def _torch_order(a: np.ndarray, layout) -> np.ndarray:
    """A Keras output in torch's axis order: NCHW for a 4-D map, or back through its layout (a channels-last
    torch tensor in ConvNeXt is NHWC on both sides)."""
    return to_nchw(a) if layout is None or len(layout) != a.ndim else a.transpose(inverse(layout))


def _flatten_to_hwc(t: np.ndarray, layer) -> np.ndarray:
    """torch's C, H, W flatten reordered to Keras's H, W, C, given the Keras Flatten's input (N, H, W, C)."""
    h, w, c = layer.input.shape[1:]
    return to_nhwc(t.reshape(t.shape[0], c, h, w)).reshape(t.shape[0], -1)


def capture_onnx(runtime: str, path, torch_model: nn.Module, keras_model, x: np.ndarray,
                 labels, names: dict) -> tuple[dict, dict]:
    """``({label: (value, layout or None)}, {label: note})`` of the ONNX file at ``path`` (``runtime``
    ``"onnx:torch"`` or ``"onnx:keras"``) for the torch leaf-call ``labels``, mapped by
    :mod:`parity.onnx_taps`; the layout is the Keras export's ``perm`` (``array = nchw.transpose(perm)``).
    ``names`` maps torch paths to Keras layer names where they differ (``weight_transfer.keras_names``)."""
    import onnx

    from parity.onnx_taps import (NHWC, keras_call_order, keras_resolver, layer_tensors, layouts, run_tapped,
                                  torch_resolver)

    exporter = runtime.split(":")[1]
    model = onnx.load(str(path), load_external_data=False)
    if exporter == "torch":
        calls = layer_tensors(model, torch_resolver(torch_model))
    else:  # the i-th call (inbound node) of a layer is the j-th the export ran
        calls = layer_tensors(model, keras_resolver(layer.name for layer in keras_model.layers))
        order = keras_call_order(keras_model)
        calls = {p: [per_call[order[p].index(i)] for i in range(len(per_call))]
                 if sorted(order.get(p, [])) == list(range(len(per_call))) else per_call
                 for p, per_call in calls.items()}
        torch_path = {k: p for p, k in names.items()}
        calls = {torch_path.get(k, k): per_call for k, per_call in calls.items()}
    notes = {}
    if exporter == "torch":  # a BatchNorm folded into its conv: the conv node computes the BatchNorm's output
        names = {m: p for p, m in torch_model.named_modules()}
        for conv, bn in folded_batchnorms(torch_model, torch.from_numpy(x)):
            conv_path, bn_path = names[conv], names[bn]
            if bn_path not in calls and conv_path in calls:
                calls[bn_path] = calls.pop(conv_path)
                notes[conv_path] = f"{bn_path} folded in, compared there"
                notes[bn_path] = f"folded into {conv_path}"
    wanted = [t for per_call in calls.values() for cands in per_call for t in cands]
    feed = x if exporter == "torch" else to_nhwc(x)
    values = run_tapped(path, {"input": feed}, wanted) if wanted else {}
    perms = layouts(model, NHWC) if exporter == "keras" else {}
    out, why = {}, {}
    for label in labels:
        p, i = label.split("[")[0], int(label[label.index("[") + 1:-1]) if "[" in label else 0
        if notes.get(p) and p not in calls:
            why[label] = notes[p]
            continue
        per_call = calls.get(p, [])
        if i >= len(per_call):
            why[label] = "not in the graph (removed or merged by the exporter)"
            continue
        floats = [t for t in per_call[i] if np.issubdtype(values[t].dtype, np.floating)]
        if not floats:
            why[label] = "no float value in the graph (merged by the exporter)"
            continue
        out[label] = (values[floats[-1]], perms.get(floats[-1]))
        if notes.get(p):
            why[label] = notes[p]
    return out, why


def trace(torch_model: nn.Module, keras_model, x: np.ndarray, tolerance: float = 1e-5,
          onnx_paths: dict | None = None) -> TraceReport:
    """Runs NCHW ``x`` through torch, Keras and each ONNX file of ``onnx_paths`` (``{"onnx:torch": path,
    "onnx:keras": path}``, optional) and compares every leaf call's output with torch's, in torch execution
    order. The torch model runs in eval mode; its modes are restored after."""
    from parity.onnx_taps import as_nchw
    from parity.weight_transfer import keras_names
    from tf_impl.backend import keras

    onnx_paths = onnx_paths or {}
    names = keras_names(torch_model)  # torch path -> Keras name, where they differ (automatic twins)
    with eval_mode(torch_model):
        t_out = capture_torch(torch_model, x)
        paths = {label: label.split("[")[0] for label in t_out}
        knames = {label: names.get(path, path) for label, path in paths.items()}
        klabels = {label: knames[label] + label[len(paths[label]):] for label in t_out}
        k_out, skipped = capture_keras(keras_model, x, knames.values())
        captured = {"keras": ({label: (k_out[klabels[label]], None) for label in t_out if klabels[label] in k_out},
                              {label: skipped.get(knames[label], "Keras layer called a different number of times")
                               for label in t_out if klabels[label] not in k_out})}
        for runtime in OTHERS[1:]:
            if runtime in onnx_paths:
                captured[runtime] = capture_onnx(runtime, onnx_paths[runtime], torch_model, keras_model, x,
                                                 t_out, names)
    runtimes = tuple(r for r in OTHERS if r in captured)
    types = {path: type(m).__name__ for path, m in torch_model.named_modules()}
    klayers = {layer.name: layer for layer in keras_model.layers}
    rows, first = [], {r: None for r in runtimes}
    for label, t in t_out.items():
        path, klayer = paths[label], klayers.get(knames[label])
        errors, notes = {}, {}
        for runtime in runtimes:
            values, why = captured[runtime]
            notes[runtime] = why.get(label, "")
            if label not in values:
                continue
            value, perm = values[label]
            ref = t
            if runtime != "onnx:torch" and isinstance(klayer, keras.layers.Flatten) and t.ndim == 2:
                ref = _flatten_to_hwc(t, klayer)  # Keras flattens H, W, C
            if runtime == "onnx:keras":
                value, layout_note = as_nchw(value, perm, ref.shape)
                if value is None:
                    notes[runtime] = layout_note
                    continue
            errors[runtime] = pair_error([ref], [value], labels=("torch", runtime))
        row = TraceRow(label, types[path], type(klayer).__name__ if klayer is not None else "-", t.shape,
                       errors, notes, tolerance)
        rows.append(row)
        for runtime in runtimes:
            if first[runtime] is None and not row.ok_in(runtime):
                first[runtime] = label
    return TraceReport(rows, tolerance, first, runtimes)
