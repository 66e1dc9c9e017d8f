"""Per-layer divergence: where do a torch module and its Keras twin first disagree?

Every leaf module's output is captured in both frameworks and matched by module path: torch forward hooks
keyed by ``named_modules`` path; on the Keras side a model over the intermediate outputs of the layers named
by those paths (the facade names the layer that produces a leaf's output after the leaf's torch path; helper
layers ``<path>_pad`` / ``<path>_gap`` are inputs to it, not outputs). Rows follow torch's execution order.
A module called several times (a shared ReLU or conv) gives one row per call, ``path[i]``, matched with
the i-th call of its Keras layer. A layer's error is ``max|t - k|`` and, relative, ``max|t - k| / max|t|`` (Keras NHWC outputs are transposed
to NCHW; a Flatten's output is compared after reordering torch's C, H, W rows to Keras's H, W, C). The first
row beyond tolerance is the first divergence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from parity.compare import pair_error
from parity.layout import inverse, to_nchw, to_nhwc
from parity.tables import format_table
from tf_impl.backend import keras


@dataclass(frozen=True)
class TraceRow:
    path: str
    torch_type: str
    keras_type: str
    shape: tuple  # torch's (NCHW) output shape
    max_abs: float
    rel: float
    ok: bool
    note: str = ""


@dataclass
class TraceReport:
    rows: list
    tolerance: float
    first_divergence: str | None

    def table(self) -> str:
        """The per-layer table, the first failing row marked ``<-- first divergence``."""
        head = ("", "module path", "torch", "keras", "output (NCHW)", "max abs", "rel", "")
        body = []
        for r in self.rows:
            first = r.path == self.first_divergence
            status = ("skipped" if r.note and r.ok else "ok" if r.ok else "FAIL") + (f" ({r.note})" if r.note else "")
            body.append((">>" if first else "", r.path, r.torch_type, r.keras_type, "x".join(map(str, r.shape)),
                         f"{r.max_abs:.2e}", f"{r.rel:.2e}", status + (" <-- first divergence" if first else "")))
        verdict = (f"first divergence: {self.first_divergence}" if self.first_divergence
                   else "no layer beyond tolerance")
        return f"{format_table(head, body)}\n{verdict} (tolerance: relative error <= {self.tolerance:g})"


def _label(path: str, i: int, calls: int) -> str:
    return path if calls == 1 else f"{path}[{i}]"


def run_hooked(module: nn.Module, x: np.ndarray, modules: dict, on_output) -> None:
    """Runs NCHW ``x`` through ``module`` without gradients, calling ``on_output(path, output)`` after every
    call of each ``{path: submodule}`` in ``modules`` whose output is a tensor; the hooks are removed after."""
    def hook(path):
        def fn(m, inputs, output):  # returns None: the output is left as it is
            if isinstance(output, torch.Tensor):
                on_output(path, output)
        return fn

    hooks = [m.register_forward_hook(hook(path)) for path, m in modules.items()]
    try:
        with torch.no_grad():
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
    return t.reshape(t.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(t.shape[0], -1)


def trace(torch_model: nn.Module, keras_model, x: np.ndarray, tolerance: float = 1e-5) -> TraceReport:
    """Runs NCHW ``x`` through both twins and compares every leaf call's output in torch execution order."""
    t_out = capture_torch(torch_model, x)
    paths = {label: label.split("[")[0] for label in t_out}
    k_out, skipped = capture_keras(keras_model, x, paths.values())
    types = {path: type(m).__name__ for path, m in torch_model.named_modules()}
    klayers = {layer.name: layer for layer in keras_model.layers}
    rows, first = [], None
    for label, t in t_out.items():
        path = paths[label]
        ktype = type(klayers[path]).__name__ if path in klayers else "-"
        if label not in k_out:
            note = skipped.get(path, "Keras layer called a different number of times")
            rows.append(TraceRow(label, types[path], ktype, t.shape, float("nan"), float("nan"), True, note))
            continue
        k = k_out[label]
        if isinstance(klayers[path], keras.layers.Flatten) and t.shape == k.shape and t.ndim == 2:
            t = _flatten_to_hwc(t, klayers[path])
        if t.shape != k.shape:
            row = TraceRow(label, types[path], ktype, t.shape, float("inf"), float("inf"), False,
                           f"shape: torch {t.shape}, Keras (as NCHW) {k.shape}")
        else:
            err = pair_error([t], [k], labels=("torch", "keras"))
            row = TraceRow(label, types[path], ktype, t.shape, err.max_abs, err.rel, err.within(tolerance),
                           "; ".join(err.problems))
        rows.append(row)
        if not row.ok and first is None:
            first = label
    return TraceReport(rows, tolerance, first)
