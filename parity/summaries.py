"""Summary tables of a twin pair in one common format, a side-by-side reconciliation, and torchsummary's format.

Common format, one row per layer in execution order: module path, layer type, output shape (each framework's
own layout: torch NCHW, Keras NHWC, at a sample input), trainable parameters, non-trainable (torch: BatchNorm
running statistics; Keras: non-trainable weights, which are those statistics). ``num_batches_tracked`` is an
integer counter, not a weight, and is left out everywhere. The torch table alone loads no TensorFlow.

The side-by-side view groups Keras layers by torch module path (a facade helper ``<path>_pad`` / ``<path>_gap``
joins its leaf) and checks, row by row and in total: torch parameters = Keras trainable weights, torch
statistics = Keras non-trainable weights; then each ONNX file's float initializers against the figure
:mod:`parity.counts` expects (torch's exporter folds each BatchNorm that follows a conv into it).
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from parity import counts as C
from parity.layout import to_nhwc
from parity.tables import format_table, shape_text
from parity.trace import run_hooked

_HELPER = re.compile(r"^(?P<path>.+)_(pad|gap)$")


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    shape: tuple | None
    trainable: int
    non_trainable: int


# --- torch ------------------------------------------------------------------------------------------------

def _own_counts(m: nn.Module) -> tuple[int, int]:
    params = list(m.parameters(recurse=False))
    trainable = sum(p.numel() for p in params if p.requires_grad)
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    stats = sum(b.numel() for b in m.buffers(recurse=False) if b.is_floating_point())
    return trainable, frozen + stats


def torch_rows(module: nn.Module, x: np.ndarray) -> list[Row]:
    """Leaves (and any module holding its own weights) in execution order, output shapes at NCHW ``x``;
    modules that did not run come last with no shape."""
    shapes = {}
    keep = {path: m for path, m in module.named_modules()
            if path and (not any(True for _ in m.children()) or any(_own_counts(m)))}
    run_hooked(module, x, keep, lambda path, output: shapes.setdefault(path, tuple(output.shape)))
    order = list(shapes) + [p for p in keep if p not in shapes]
    return [Row(p, type(keep[p]).__name__, shapes.get(p), *_own_counts(keep[p])) for p in order]


# --- Keras ------------------------------------------------------------------------------------------------

def keras_rows(model, x: np.ndarray) -> list[Row]:
    """Every layer but the input, in the model's (topological) order, output shapes at NCHW ``x``."""
    from parity.trace import capture_keras
    from tf_impl.backend import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    outs, _ = capture_keras(model, x, [layer.name for layer in layers])
    size = lambda vs: int(sum(np.prod(v.shape) for v in vs))  # noqa: E731
    rows = []
    for layer in layers:
        out = outs.get(layer.name, outs.get(f"{layer.name}[0]"))  # a shared layer: its first call
        shape = None if out is None else to_nhwc(out).shape  # capture_keras gives NCHW; the table shows NHWC
        rows.append(Row(layer.name, type(layer).__name__, shape, size(layer.trainable_weights),
                        size(layer.non_trainable_weights)))
    return rows


# --- tables -----------------------------------------------------------------------------------------------

_HEADER = ("module path", "type", "output shape", "trainable", "non-trainable")


def framework_table(rows: list[Row], title: str) -> str:
    body = [(r.path, r.type, shape_text(r.shape), f"{r.trainable:,}", f"{r.non_trainable:,}") for r in rows]
    total = (sum(r.trainable for r in rows), sum(r.non_trainable for r in rows))
    body.append(("total", "", "", f"{total[0]:,}", f"{total[1]:,}"))
    return f"{title}\n" + format_table(_HEADER, body, right=(3, 4), rule=True)


def _group_keras(krows: list[Row], torch_paths) -> dict[str, list[Row]]:
    groups = {}
    for r in krows:
        m = _HELPER.match(r.path)
        key = m["path"] if m and m["path"] in torch_paths else r.path
        groups.setdefault(key, []).append(r)
    return groups


def side_by_side(trows: list[Row], krows: list[Row], names: dict | None = None) -> tuple[str, bool]:
    """The reconciliation table and whether every row and the totals agree; ``names`` maps torch paths to
    Keras layer names where they differ (``parity.weight_transfer.keras_names``)."""
    names = names or {}
    groups = _group_keras(krows, {names.get(r.path, r.path) for r in trows})
    body, ok = [], True
    for r in trows:
        kname = names.get(r.path, r.path)
        ks = groups.pop(kname, [])
        kt, kn = sum(k.trainable for k in ks), sum(k.non_trainable for k in ks)
        kshape = next((k.shape for k in ks if k.path == kname), None)
        match = (r.trainable, r.non_trainable) == (kt, kn) and bool(ks)
        ok &= match
        body.append((r.path, r.type, "+".join(k.type for k in ks) or "-", shape_text(r.shape), shape_text(kshape),
                     f"{r.trainable:,}", f"{kt:,}", f"{r.non_trainable:,}", f"{kn:,}", "ok" if match else "DIFFERS"))
    for path, ks in groups.items():  # Keras layers with no torch module (a torch.cat in forward, ...)
        kt, kn = sum(k.trainable for k in ks), sum(k.non_trainable for k in ks)
        match = kt == kn == 0
        ok &= match
        body.append((path, "-", "+".join(k.type for k in ks), "-", shape_text(ks[-1].shape), "0", f"{kt:,}", "0",
                     f"{kn:,}", "ok (no weights)" if match else "DIFFERS"))
    tt, tn = sum(r.trainable for r in trows), sum(r.non_trainable for r in trows)
    kt, kn = sum(r.trainable for r in krows), sum(r.non_trainable for r in krows)
    body.append(("total", "", "", "", "", f"{tt:,}", f"{kt:,}", f"{tn:,}", f"{kn:,}",
                 "ok" if (tt, tn) == (kt, kn) else "DIFFERS"))
    ok &= (tt, tn) == (kt, kn)
    header = ("module path", "torch", "keras", "torch output", "keras output", "torch params", "keras trainable",
              "torch stats", "keras non-trainable", "")
    return format_table(header, body, right=(5, 6, 7, 8), rule=True), ok


def onnx_lines(torch_model, keras_model, sample: np.ndarray) -> tuple[list[str], bool]:
    """Each ONNX export's float initializer count against the expected figure, BatchNorm folding spelled out."""
    from parity.onnx_io import export_onnx, load_checked

    t = torch.from_numpy(sample)
    folded = C.folded_batchnorms(torch_model, t)
    removed = sum(4 * bn.num_features for _, bn in folded)
    gained = sum(conv.out_channels for conv, _ in folded if conv.bias is None)
    total = C.torch_count(torch_model).total
    lines, ok = [], True
    with tempfile.TemporaryDirectory(prefix="parity-summary-") as tmp:
        for key, model, expected, how in (
                ("onnx:torch", torch_model, C.torch_onnx_expected(torch_model, t),
                 f"{total:,} torch - {removed:,} (4*C of {len(folded)} BatchNorms folded into their conv) + "
                 f"{gained:,} (bias gained by the folded convs that had none)"),
                ("onnx:keras", keras_model, C.keras_onnx_expected(keras_model),
                 f"{C.keras_count(keras_model).total:,} Keras weights in its data file, nothing folded")):
            path = export_onnx(model, f"{tmp}/{key.split(':')[1]}.onnx", sample.shape)
            got = C.onnx_count(load_checked(path), stored_only=key == "onnx:keras")
            ok &= got == expected
            lines.append(f"{key}: {got:,} float initializer elements; expected {expected:,} = {how}: "
                         f"{'ok' if got == expected else 'DIFFERS'}")
    return lines, ok


def summary(name: str, framework: str = "both", onnx: bool = True, input_shape=None, **overrides) -> tuple[str, bool]:
    """``(text, ok)`` for registry entry ``name``: the torch table, the Keras table, or (``both``) both tables
    plus the side-by-side reconciliation and the ONNX counts. ``ok`` is False when counts disagree."""
    from parity.randomize import randomize_torch
    from parity.registry import build, get
    from parity.sizes import check_entry

    if framework not in ("torch", "keras", "both"):
        raise ValueError(f"framework must be 'torch', 'keras' or 'both', got {framework!r}")
    spec = get(name)
    shape = check_entry(name, input_shape or spec.sample_shape(**overrides), **overrides)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    parts, ok = [], True
    # random weights, as the engine uses: the torch exporter merges initializers that are equal, and the
    # default ones (BatchNorm weight 1, bias 0, ...) are, which would hide what folding removed
    torch_model = randomize_torch(build(name, "torch", **overrides))
    if framework in ("torch", "both"):
        trows = torch_rows(torch_model, x)
        counters = sum(1 for k in torch_model.state_dict() if k.endswith("num_batches_tracked"))
        note = f"; {counters} num_batches_tracked counter{'s' * (counters > 1)} not counted" if counters else ""
        parts.append(framework_table(trows, f"{name}: torch (input {shape_text(shape)}{note})"))
    if framework in ("keras", "both"):
        from parity.weight_transfer import keras_names, transfer

        keras_model = build(name, "keras", input_size=shape[2:] if spec.fixed_size else None, **overrides)
        transfer(torch_model, keras_model)
        krows = keras_rows(keras_model, x)
        parts.append(framework_table(krows, f"{name}: keras (input {shape_text((shape[0], *shape[2:], shape[1]))})"))
    if framework == "both":
        table, ok = side_by_side(trows, krows, keras_names(torch_model))
        parts.append(f"{name}: side by side\n{table}")
        if onnx:
            lines, onnx_ok = onnx_lines(torch_model, keras_model, x)
            parts.append("\n".join(lines))
            ok &= onnx_ok
    return "\n\n".join(parts), ok


# --- torchsummary's format --------------------------------------------------------------------------------

def torchsummary_table(module: nn.Module, input_size: tuple, batch_size: int = -1) -> str:
    """``torchsummary.summary(module, input_size)``'s table, reproduced: one row per module other than the
    root and ``Sequential``/``ModuleList`` containers, in forward-completion order, named ``<Type>-<i>``;
    ``Param #`` counts the module's own ``weight`` and ``bias``; batch shown as ``batch_size``; sizes in MB of
    float32 (the pass size counts every row's output twice, for the gradients)."""
    rows = []
    counted = {path: m for path, m in module.named_modules()
               if m is not module and not isinstance(m, (nn.Sequential, nn.ModuleList))}

    def on_output(path, out):
        own = [p for n, p in counted[path].named_parameters(recurse=False) if n in ("weight", "bias")]
        rows.append((f"{type(counted[path]).__name__}-{len(rows) + 1}", [batch_size, *out.shape[1:]],
                     sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad)))

    run_hooked(module, np.zeros((2, *input_size), dtype=np.float32), counted, on_output)
    line = "{:>20}  {:>25} {:>15}"
    out = ["-" * 64, line.format("Layer (type)", "Output Shape", "Param #"), "=" * 64]
    out += [line.format(name, str(shape), f"{params:,}") for name, shape, params, _ in rows]
    total, trainable = sum(r[2] for r in rows), sum(r[3] for r in rows)
    mb = lambda n: abs(n * 4.0 / 1024 ** 2)  # noqa: E731
    input_mb, pass_mb = mb(np.prod(input_size) * batch_size), mb(2.0 * sum(np.prod(r[1]) for r in rows))
    out += ["=" * 64, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}", "-" * 64, f"Input size (MB): {input_mb:.2f}",
            f"Forward/backward pass size (MB): {pass_mb:.2f}", f"Params size (MB): {mb(total):.2f}",
            f"Estimated Total Size (MB): {input_mb + pass_mb + mb(total):.2f}", "-" * 64]
    return "\n".join(out)
