"""Per-layer values inside an ONNX file, mapped back to torch module paths, for the per-layer trace.

Both exporters name each node after where it comes from:

- torch (``torch.onnx.export(dynamo=False)``): ``/layer1/layer1.0/conv1/Conv``, one scope per module in the
  call stack, each by its local name (:class:`TorchScopes`); a further call of a module gets ``_k``
  (``/relu_1/Relu``).
- our Keras export (tf2onnx on a ``stateless_call`` trace): ``layer1.0.conv1_1/convolution``, the Keras
  layer name (= the torch path) with TensorFlow's name-scope suffix ``_k``, a new ``k`` per call, growing in
  the order the functional model runs its calls (:func:`keras_call_order`). Nodes that tf2onnx adds itself
  (``Transpose__443``) have no scope.

A layer's value is the last input-dependent tensor that a node of its scope produces and a node of another
scope or call (or the graph's output) reads; integer results (shape arithmetic) are dropped after the run.
Exporters drop or merge nodes, so a layer may have no value, and the trace says so: torch's exporter folds
a BatchNorm that follows a conv into the conv (the conv node then computes the BatchNorm's output, which is
therefore compared at the BatchNorm's path, the conv's row saying why it has none) and drops Dropout;
tf2onnx fuses a ``_pad`` helper into its conv and may emit a resize without the layer's scope.

Layouts: the torch export is NCHW throughout. In the Keras export tf2onnx wraps NCHW ops in Transposes and
its optimizer moves them around, so an intermediate tensor may be NHWC or NCHW. Its layout is tracked from
the NHWC input through every Transpose (the other 4-D ops in :data:`KEEPS_LAYOUT` keep their data input's
layout); where a Reshape loses it, it is read from the shape when exactly one layout fits.

The values come from a copy of the graph with those tensors as extra outputs, run by onnxruntime: the file
under test, initializers and all, not a re-export. (An extra output can keep onnxruntime from fusing the
node that produced it; the final outputs are compared by the engine on the untouched file.)
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx

from parity import safe_write
from parity.onnx_io import session

KEEPS_LAYOUT = {  # 4-D in, 4-D out, axes keep their meaning: the output has the data input's layout
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Conv", "ConvTranspose",
    "DepthToSpace", "Div", "Dropout", "Elu", "Erf", "Exp", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid",
    "Identity", "LRN", "LeakyRelu", "Max", "MaxPool", "Min", "Mul", "Neg", "Pad", "Pow", "PRelu", "Reciprocal",
    "Relu", "Resize", "Selu", "Sigmoid", "Slice", "SpaceToDepth", "Sqrt", "Sub", "Tanh",
}
NHWC = (0, 2, 3, 1)  # array = nchw.transpose(NHWC)
_SUFFIX = re.compile(r"^(?P<base>.+)_(?P<k>\d+)$")


def torch_scope(node_name: str) -> tuple[str, ...]:
    """The scope names of a torch export's node, outermost first (empty for a node of the root module):
    ``/layer1/layer1.0/conv1/Conv`` -> ``("layer1", "layer1.0", "conv1")``."""
    return tuple(node_name.split("/")[1:-1])


def keras_scope(node_name: str) -> str | None:
    """``layer1.0.conv1_1/convolution`` -> ``layer1.0.conv1_1`` (None for a node tf2onnx added)."""
    return node_name.split("/")[0] or None if "/" in node_name else None


def _strip(name: str) -> tuple[str, int]:
    """``("relu", 1)`` for ``relu_1``, ``(name, -1)`` otherwise (a first call has no suffix)."""
    m = _SUFFIX.match(name)
    return (m["base"], int(m["k"])) if m else (name, -1)


class TorchScopes:
    """Resolves a torch export's scope names to module paths.

    Each scope is the *local* name of a module in the call stack: its attribute name, or for a child of a
    container (``Sequential``, ``ModuleList``, ``ModuleDict``) the container's local name and the index
    (``layer1.0``, ``conv.0``). The stack starts at the module the root's forward called, which need not be
    a child of the root (FPN calls ``self.backbone.layer1`` itself: ``/layer1/layer1.0/conv1/Conv``). A node
    belongs to the path whose innermost local names are the scopes; when several paths fit, the one that
    skips the fewest ancestors wins (``/conv1`` is ``backbone.conv1``, not ``backbone.layer1.0.conv1``)."""

    def __init__(self, module):
        from torch import nn

        modules = dict(module.named_modules())
        local = {}
        for path, m in modules.items():
            if not path:
                continue
            parent, _, last = path.rpartition(".")
            container = parent and isinstance(modules[parent], (nn.Sequential, nn.ModuleList, nn.ModuleDict))
            local[path] = f"{local[parent]}.{last}" if container else last
        self.chains = {}  # path -> its local names and its ancestors', innermost first
        for path in local:
            chain, p = [], path
            while p:
                chain.append(local[p])
                p = p.rpartition(".")[0]
            self.chains[path] = chain
        self._cache = {}

    def resolve(self, scopes: tuple) -> tuple[str, int] | None:
        """``(module path, call key)`` of a node's scopes, or None (the root's own nodes)."""
        if not scopes:
            return None
        if scopes not in self._cache:
            wanted = [_strip(s) for s in reversed(scopes)]
            fits = [(len(chain) - len(wanted), path) for path, chain in self.chains.items()
                    if len(chain) >= len(wanted) and all(c in (s, base) for c, s, (base, _) in
                                                         zip(chain, reversed(scopes), wanted))]
            if not fits:
                self._cache[scopes] = None
            else:
                path = min(fits)[1]
                innermost = scopes[-1]
                self._cache[scopes] = (path, -1 if innermost == self.chains[path][0] else wanted[0][1])
        return self._cache[scopes]


def keras_resolver(layer_names):
    """``resolve(node name) -> (layer name, call key) or None`` for our Keras export. TensorFlow suffixes
    every call's scope (``conv_1``, ``conv_3``), so the suffixed reading is tried first."""
    names = set(layer_names)

    def resolve(node_name: str):
        scope = keras_scope(node_name)
        if scope is None:
            return None
        base, k = _strip(scope)
        return (base, k) if base in names else ((scope, -1) if scope in names else None)
    return resolve


def torch_resolver(module):
    scopes = TorchScopes(module)
    return lambda node_name: scopes.resolve(torch_scope(node_name))


def keras_call_order(model) -> dict[str, list[int]]:
    """``{layer name: [inbound node index, in the order the functional model runs them]}``. Keras runs its
    graph by depth, not in the order the layers were called when it was built (FPN's shared smoothing conv
    runs its fourth call first), and TensorFlow numbers the scopes of an export in the order it runs."""
    order, by_depth = {}, getattr(model, "_nodes_by_depth", {})  # a functional model's; else suffix order
    for depth in sorted(by_depth, reverse=True):  # as keras.Functional._run_through_graph
        for node in by_depth[depth]:
            layer = node.operation
            order.setdefault(layer.name, []).append(layer._inbound_nodes.index(node))
    return order


def layer_tensors(model: onnx.ModelProto, resolve) -> dict[str, list[list[str]]]:
    """``{path: [[candidate tensors of call 0], [of call 1], ...]}`` (calls in the order the export ran them)
    for every node that ``resolve(node name) -> (path, call key) or None`` maps to a path."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    live = {i.name for i in graph.input if i.name not in weights}  # tensors that depend on the input
    where, readers = {}, {}
    for node in graph.node:
        where[node.name] = resolve(node.name)
        if any(i in live for i in node.input):
            live.update(node.output)
        for i in node.input:
            readers.setdefault(i, set()).add(where[node.name])
    outputs = {o.name for o in graph.output}
    calls: dict[str, dict[int, list[str]]] = {}
    for node in graph.node:
        at = where[node.name]
        if at is None:
            continue
        for o in node.output:
            if o in live and (o in outputs or readers.get(o, set()) - {at}):
                calls.setdefault(at[0], {}).setdefault(at[1], []).append(o)
    return {p: [by_call[k] for k in sorted(by_call)] for p, by_call in calls.items()}


def layouts(model: onnx.ModelProto, input_layout: tuple) -> dict[str, tuple]:
    """``{tensor: perm}`` with ``array = nchw.transpose(perm)`` for every 4-D tensor whose layout follows
    from the input's (``input_layout``) through Transposes and the ops of :data:`KEEPS_LAYOUT`."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    perm = {i.name: input_layout for i in graph.input if i.name not in weights}
    for node in graph.node:
        if node.op_type == "Transpose":
            p = perm.get(node.input[0])
            q = next((tuple(a.ints) for a in node.attribute if a.name == "perm"), None)
            if p is not None and q is not None and len(q) == 4:
                perm[node.output[0]] = tuple(p[i] for i in q)
        elif node.op_type in KEEPS_LAYOUT:
            p = next((perm[i] for i in node.input if i in perm), None)
            if p is not None:
                perm[node.output[0]] = p
    return perm


def run_tapped(path, feeds: dict, tensors: list[str]) -> dict[str, np.ndarray]:
    """``{tensor: value}`` of ``tensors`` for ``feeds``, from a copy of the ONNX file at ``path`` that has
    them as extra outputs. The copy is written beside ``path`` (so that its external data is found) under
    a temporary name of ours, and removed once onnxruntime has loaded it."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    have = {o.name for o in model.graph.output}
    extra = [t for t in dict.fromkeys(tensors) if t not in have]
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in extra)
    tmp = path.parent / safe_write.temp_name(".onnx")
    try:
        onnx.save(model, str(tmp))
        sess = session(tmp)
    finally:
        if tmp.exists():
            os.remove(tmp)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def as_nchw(value: np.ndarray, perm, shape: tuple) -> tuple[np.ndarray | None, str]:
    """``value`` in torch's layout for a torch output of ``shape``, and a note: through ``perm`` when the
    graph says the layout and it fits, else the one of NCHW / NHWC whose shape fits (None, with the reason,
    when both or neither fit)."""
    if value.ndim != 4 or len(shape) != 4:
        return value, ""
    if perm is not None:
        out = value.transpose(np.argsort(perm))
        if out.shape == tuple(shape):
            return out, ""
    fits = [v for v in (value, value.transpose(np.argsort(NHWC))) if v.shape == tuple(shape)]
    if len(fits) == 1:
        return fits[0], ""
    why = "as NCHW and as NHWC" if fits else "in neither NCHW nor NHWC"
    return None, f"layout unknown: shape {value.shape} fits torch's {tuple(shape)} {why}"
