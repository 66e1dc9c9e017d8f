"""Keras -> torch: the automatic torch twin of a functional Keras model (``parity.twin(keras_model)``).

The Keras functional graph is walked node by node (nested Functional and Sequential models are inlined; a
layer called several times is one module called several times). Each layer is mapped by the converter table
(:mod:`parity.convert.keras_ops`, one small function per Keras class) onto one module of the facade
``torch_impl.keras_nn``, which holds every numerics rule. The result is Python source for one class: an
``__init__`` with one attribute per Keras layer, named after it, and a ``forward`` with one line per call,
in the order a person reads the graph (each branch depth-first, inputs in order).

Why generated source rather than a ``torch.fx.GraphModule``: the very same text is compiled for the
in-memory twin and written by ``parity convert`` (:mod:`parity.convert.emit_torch`), so the two cannot
disagree; and it reads as a hand-written twin (fx's code generator adds ``x = None`` lines, names values
after ops, and spells every non-identifier path as ``getattr``).

Names: a module path is the Keras layer name. A name that is not a Python identifier, a keyword or an
``nn.Module`` attribute is sanitised (``conv-1`` -> ``conv_1``); the twin's ``KERAS_NAMES`` maps such paths
back to the Keras names, and ``parity.weight_transfer.keras_names`` is where the transfer, the trace and the
summary read it. A layer with no converter, or a setting a converter cannot map, raises
:class:`parity.UnsupportedOpError` naming the layer, its class and the supported list: never an
approximation.
"""
from __future__ import annotations

import keyword
import re

import torch
import torch.nn.functional as F
from torch import nn

import torch_impl.keras_nn as knn
from parity.convert.keras_ops import CONVERTERS, Call, Value, supported
from parity.errors import UnsupportedOpError
from tf_impl.backend import keras

ROOT_ATTRIBUTES = ("KERAS_NAMES", "SOURCE")  # class attributes of a twin: names no layer may take
_RESERVED = frozenset(dir(nn.Module)) | set(ROOT_ATTRIBUTES) | {"self", "torch", "nn", "F"}


def identifier(name: str, taken: set) -> str:
    """``name`` as a fresh Python identifier that is no attribute of ``nn.Module`` (non-word characters become
    ``_``; a leading digit gets ``layer_``; keywords and reserved names get a trailing ``_``; a clash gets
    ``_1``, ``_2``, ...). Adds it to ``taken``."""
    s = re.sub(r"\W", "_", name, flags=re.ASCII)
    if not s or s[0].isdigit():
        s = f"layer_{s}"
    if keyword.iskeyword(s) or s in _RESERVED:
        s = f"{s}_"
    base, i = s, 1
    while s in taken:
        s, i = f"{base}_{i}", i + 1
    taken.add(s)
    return s


def graph_of(model):
    """The functional graph of a Keras Functional model or of a built Sequential one, else None."""
    if isinstance(model, keras.Sequential):
        return model._functional  # built when the Sequential has an input shape
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def _producer(tensor, inputs: set):
    """The node that computes a Keras tensor, or None for an input of the graph being walked."""
    if id(tensor) in inputs:
        return None
    op, index, _ = tensor._keras_history
    return op._inbound_nodes[index]


def nodes_in_order(graph) -> list:
    """The nodes of ``graph`` that lead to its outputs, each after the nodes it reads: the outputs' branches
    depth-first, a node's inputs in their order (iterative: deep models exceed Python's recursion limit)."""
    inputs = {id(t) for t in graph.inputs}
    order, done = [], set()
    stack = [(n, False) for t in reversed(graph.outputs) if (n := _producer(t, inputs)) is not None]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for t in reversed(node.input_tensors):
            parent = _producer(t, inputs)
            if parent is not None and id(parent) not in done:
                stack.append((parent, False))
    return order


class _Builder:
    """Walks a Keras graph and collects the twin: one :class:`Spec` per layer, one forward line per call."""

    def __init__(self):
        self.specs = {}  # attribute -> Spec, in the order of first calls
        self.keras_names = {}  # attribute -> Keras layer name, where they differ
        self.attribute_of = {}  # id(layer) -> attribute
        self.layers_named = {}  # Keras name -> layer
        self.attributes, self.locals = set(), set()
        self.lines = []

    def value(self, name: str, shape) -> Value:
        return Value(identifier(name, self.locals), tuple(shape))

    def run(self, graph, inputs: list) -> list:
        """Walks ``graph`` with ``inputs`` (values) bound to its inputs; returns its output values."""
        values = {id(t): v for t, v in zip(graph.inputs, inputs)}
        nodes = nodes_in_order(graph)
        readers = {}
        for node in nodes:
            for t in node.input_tensors:
                readers.setdefault(id(t), []).append(node)
        for node in nodes:
            args = [values[id(t)] for t in node.input_tensors]
            inner = graph_of(node.operation) if isinstance(node.operation, keras.Model) else None
            if inner is not None:
                outs = self.run(inner, args)
            else:
                outs = [self.call(node, args, lambda t: readers.get(id(t), []))]
            for t, v in zip(node.outputs, outs):
                values[id(t)] = v
        return [values[id(t)] for t in graph.outputs]

    def call(self, node, inputs: list, readers) -> Value:
        op = node.operation
        kind = f"{type(op).__module__}.{type(op).__qualname__}"
        if isinstance(op, keras.Model):
            raise UnsupportedOpError(f"model {op.name!r} ({kind}) has no functional graph (a subclassed model, or "
                                     f"a Sequential that was never built); its call cannot be read")
        convert = CONVERTERS.get(type(op))
        if convert is None:
            raise UnsupportedOpError(f"layer {op.name!r} ({kind}) has no torch converter; supported: "
                                     f"{', '.join(supported())}")
        self._check(node, kind)
        outputs = [Value("", tuple(t.shape)) for t in node.outputs]
        spec = convert(Call(op, inputs, outputs, node, readers))
        attribute = self.attribute_of.get(id(op))
        if attribute is None:
            attribute = self._name(op, kind)
            self.specs[attribute] = spec
        elif self.specs[attribute] != spec:
            raise UnsupportedOpError(f"layer {op.name!r} ({kind}) is shared, and its calls need different torch "
                                     f"modules: {self.specs[attribute].source()} and {spec.source()}")
        out = self.value(attribute, outputs[0].shape)
        self.lines.append(f"{out.name} = self.{attribute}({', '.join(v.name for v in inputs)})")
        return out

    def _name(self, op, kind: str) -> str:
        other = self.layers_named.setdefault(op.name, op)
        if other is not op:
            raise UnsupportedOpError(f"layer {op.name!r} ({kind}): two layers are named {op.name!r} (in nested "
                                     f"models); the twin's module paths are the Keras names, so they must be unique")
        attribute = identifier(op.name, self.attributes)
        self.attribute_of[id(op)] = attribute
        if attribute != op.name:
            self.keras_names[attribute] = op.name
        return attribute

    @staticmethod
    def _check(node, kind: str) -> None:
        """Settings that no converter sees: the call's keyword arguments, the dtype, the number of outputs."""
        op = node.operation
        where = f"layer {op.name!r} ({kind})"
        # Keras records a default training= for a plain call (False, or True for preprocessing layers), which
        # the model's own training= overrides; a Dropout or BatchNormalization called with training=True is
        # in training mode even at inference, which the twin's eval mode is not
        kwargs = dict(node.arguments.kwargs)
        forced = kwargs.pop("training", None) and isinstance(op, (keras.layers.Dropout,
                                                                   keras.layers.BatchNormalization))
        extra = {k: v for k, v in kwargs.items() if v is not None} | ({"training": True} if forced else {})
        if extra:
            raise UnsupportedOpError(f"{where} is called with {extra}; only plain calls are supported (training=True "
                                     f"or a mask changes what the layer computes)")
        policy = getattr(op, "dtype_policy", None)
        if policy is not None and policy.name != "float32":
            raise UnsupportedOpError(f"{where} computes in {policy.name}; only float32 is supported")
        if len(node.outputs) != 1:
            raise UnsupportedOpError(f"{where} has {len(node.outputs)} outputs; only single-output layers are "
                                     f"supported")


def class_name(model_name: str) -> str:
    """A CamelCase class name from the Keras model name (``convnext_tiny`` -> ``ConvnextTiny``), clear of the
    facade's names."""
    parts = [p for p in re.split(r"[\W_]+", model_name, flags=re.ASCII) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    if name[0].isdigit():
        name = f"Model{name}"
    return f"{name}Model" if hasattr(knn, name) or keyword.iskeyword(name) else name


def class_source(name: str, model_name: str, builder: _Builder, inputs: list, outputs: list) -> str:
    """The twin's class as Python source: one attribute per Keras layer, one forward line per call."""
    lines = [f"class {name}(nn.Module):",
             f'    """The torch twin of the Keras model {model_name!r}: NCHW input, one module per Keras layer, '
             f'named after it."""', ""]
    if builder.keras_names:
        lines.append(f"    KERAS_NAMES = {builder.keras_names!r}  # module path -> Keras layer name, where they "
                     f"differ")
        lines.append("")
    lines += ["    def __init__(self):", "        super().__init__()"]
    for attribute, spec in builder.specs.items():
        comment = f"  # {spec.comment}" if spec.comment else ""
        lines.append(f"        self.{attribute} = {spec.source()}{comment}")
    lines += ["", f"    def forward(self, {', '.join(v.name for v in inputs)}):"]
    lines += [f"        {line}" for line in builder.lines]
    lines.append(f"        return {', '.join(v.name for v in outputs)}")
    return "\n".join(lines) + "\n"


def compile_class(source: str, name: str) -> type:
    """Executes the class source with the facade's names in scope; the class keeps its source in ``SOURCE``
    (what the emitter writes)."""
    namespace = {k: v for k, v in vars(knn).items() if not k.startswith("_")}
    namespace |= {"torch": torch, "nn": nn, "F": F}
    exec(compile(source, f"<torch twin {name}>", "exec"), namespace)  # noqa: S102 (source we generated)
    cls = namespace[name]
    cls.SOURCE = source
    return cls


def to_torch(model) -> nn.Module:
    """The torch twin of Keras model ``model`` (Functional or built Sequential), in eval mode, with the Keras
    weights transferred (``parity.transfer``). Raises :class:`UnsupportedOpError` for anything unmapped."""
    from parity.weight_transfer import transfer

    graph = graph_of(model)
    if graph is None:
        raise UnsupportedOpError(f"model {model.name!r} ({type(model).__qualname__}) has no functional graph: "
                                 f"expected a Functional model or a built Sequential one")
    if isinstance(model.output, dict):
        raise UnsupportedOpError(f"model {model.name!r} returns a dict; expected one output or a list of outputs")
    builder = _Builder()
    inputs = [builder.value(t._keras_history.operation.name, t.shape) for t in graph.inputs]
    outputs = builder.run(graph, inputs)
    name = class_name(model.name)
    twin = compile_class(class_source(name, model.name, builder, inputs, outputs), name)().eval()
    transfer(model, twin)
    return twin
