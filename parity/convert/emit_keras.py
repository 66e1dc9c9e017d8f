"""Source code of a Keras twin: a standalone ``<name>_keras.py`` that reads like a hand-written twin.

The file imports ``keras`` only. It holds the custom layers the model uses, copied from their single
definition in :mod:`tf_impl.keras_layers` or :mod:`tf_impl.batch_norm` (``keras.ops`` only, so the file also runs on Keras's torch
backend), and ``build_model()``: one line per layer, named after the torch module path, with the
arguments that differ from Keras's defaults. Where the facade recorded why a setting follows torch
(``layer.torch_note``: padding, pool pad value, eps, resize rules, flatten order), the first layer with
that note carries it as a comment.

The source is generated from the in-memory twin itself (its layers' configs and call graph), so the two
cannot disagree; ``parity.convert.writer`` also executes it and compares it with the original.
"""
from __future__ import annotations

import ast
import inspect
import keyword
import math
import re

from tf_impl import batch_norm, keras_layers
from tf_impl.backend import keras

CUSTOM_MODULES = (keras_layers, batch_norm)  # plain-Keras layer modules whose classes are copied into the file

_TUPLE_KEYS = {"kernel_size", "strides", "dilation_rate", "pool_size", "size"}  # (3, 3) written as 3
_SKIP_KEYS = {"name", "trainable", "dtype"}  # name is written last; the rest are Keras's defaults here
_RETURNS_LIST = (keras_layers.Split, keras_layers.TorchTensors)


def _value(v) -> str:
    """Python source for a config value (``float("-inf")`` for infinities)."""
    if isinstance(v, float) and not math.isfinite(v):
        return f'float("{"-" if v < 0 else ""}inf")'
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_value(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_value(k)}: {_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _short(key: str, v):
    """``(3, 3)`` as ``3`` for size-like arguments; ZeroPadding2D's ``((1, 1), (1, 1))`` as ``1``."""
    if key in _TUPLE_KEYS and isinstance(v, (tuple, list)) and len(set(v)) == 1 and v:
        return v[0]
    if key == "padding" and isinstance(v, (tuple, list)) and v and all(isinstance(p, (tuple, list)) for p in v):
        if all(len(set(p)) == 1 for p in v):
            sym = tuple(p[0] for p in v)
            return sym[0] if len(set(sym)) == 1 else sym
    return v


class _Defaults:
    """The config a layer class gives when built with only its required arguments, per class and values."""

    def __init__(self):
        self.cache = {}

    def required(self, cls) -> list[str]:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [p.name for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def config(self, cls, required: dict) -> dict:
        """The reference config; for a class that cannot be built from its required arguments alone
        (``Upsample2D`` needs a size or a scale factor), its signature's defaults."""
        key = (cls, repr(required))
        if key not in self.cache:
            try:
                self.cache[key] = cls(**required).get_config()
            except (ValueError, TypeError):
                params = list(inspect.signature(cls.__init__).parameters.values())[1:]
                self.cache[key] = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        return self.cache[key]


def _class_ref(layer) -> str:
    cls = type(layer)
    if getattr(keras.layers, cls.__name__, None) is cls:
        return f"keras.layers.{cls.__name__}"
    if any(getattr(m, cls.__name__, None) is cls for m in CUSTOM_MODULES):
        return cls.__name__
    raise ValueError(f"cannot emit layer {layer.name!r} of type {cls.__module__}.{cls.__qualname__}: only "
                     f"keras.layers classes and those of {', '.join(m.__name__ for m in CUSTOM_MODULES)} can be "
                     f"written out")


def _constructor(layer, defaults: _Defaults) -> str:
    """``keras.layers.Conv2D(64, 7, strides=2, use_bias=False, name=path("conv1"))``: required arguments
    positionally, then the arguments whose value differs from the default, then the name. The arguments are
    checked by building the layer from them: its config must equal the twin's layer's (a default can depend
    on another argument: ``MaxPooling2D``'s strides default to its pool size)."""
    cls, config = type(layer), layer.get_config()
    required = defaults.required(cls)
    base = defaults.config(cls, {k: config[k] for k in required})
    chosen = [k for k, v in config.items() if k not in _SKIP_KEYS and k not in required
              and not (k in base and base[k] == v)]
    for _ in range(len(config)):
        rebuilt = cls(**{k: config[k] for k in required + chosen}).get_config()
        missing = [k for k, v in config.items() if k not in _SKIP_KEYS and k not in required + chosen
                   and rebuilt.get(k) != v]
        if not missing:
            break
        chosen += missing
    short = _short if getattr(keras.layers, cls.__name__, None) is cls else (lambda k, v: v)  # Keras takes ints
    parts = [_value(short(k, config[k])) for k in required]
    parts += [f"{k}={_value(short(k, config[k]))}" for k in config if k in chosen]
    parts.append(f"name=path({layer.name!r})")
    return f"{_class_ref(layer)}({', '.join(parts)})"


def _identifier(name: str, taken: set) -> str:
    ident = re.sub(r"\W", "_", name).strip("_") or "x"
    if ident[0].isdigit() or keyword.iskeyword(ident) or ident in ("keras", "inputs", "build_model"):
        ident = f"x_{ident}"
    out, i = ident, 1
    while out in taken:
        i += 1
        out = f"{ident}_{i}"
    taken.add(out)
    return out


def _nodes(model) -> list:
    """Every call (node) in ``model``, inputs before use, in depth-first order from the outputs."""
    order, seen = [], set()

    def visit(tensor):
        op, node_index, _ = tensor._keras_history
        node = op._inbound_nodes[node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        for t in node.arguments.keras_tensors:
            visit(t)
        order.append(node)

    for t in model.outputs:
        visit(t)
    return order


def _custom_source(classes: list) -> list[str]:
    """The source of the custom layer classes, their bases in :data:`CUSTOM_MODULES`, and the module-level
    helpers they use, module by module in each module's own order."""
    out = []
    for module in CUSTOM_MODULES:
        out += _module_source(module, [c for c in classes if c.__module__ == module.__name__])
    return out


def _module_source(module, classes: list) -> list[str]:
    module_names = {n: obj for n, obj in vars(module).items() if not n.startswith("__")
                    and getattr(obj, "__module__", module.__name__) == module.__name__
                    and n not in ("annotations", "keras")}
    wanted, stack = set(), [c.__name__ for c in classes]
    while stack:
        n = stack.pop()
        if n in wanted:
            continue
        wanted.add(n)
        obj = module_names[n]
        if inspect.isclass(obj):
            stack += [b.__name__ for b in obj.__mro__[1:] if b.__name__ in module_names and b is not object]
        if inspect.isclass(obj) or inspect.isfunction(obj):
            stack += [node.id for node in ast.walk(ast.parse(inspect.getsource(obj)))
                      if isinstance(node, ast.Name) and node.id in module_names and node.id != n]
    source = inspect.getsource(module)
    lines = source.splitlines()
    out = []
    for node in ast.parse(source).body:
        names = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                 [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)])
        if any(n in wanted for n in names):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            out.append("\n".join(lines[first - 1:node.end_lineno]))  # decorators included
    return out


def emit(model, name: str) -> str:
    """Standalone Keras 3 source that rebuilds ``model`` (a Keras twin) as ``build_model()``."""
    defaults, taken, notes_seen = _Defaults(), set(), set()
    nodes = _nodes(model)
    calls = {}  # id(layer) -> number of calls in this model
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    var = {}  # id(KerasTensor) -> variable name
    layer_var, done = {}, {}
    body, custom = [], []
    for node in nodes:
        layer = node.operation
        if isinstance(layer, keras.layers.InputLayer):
            taken.add("inputs")
            shape = tuple(layer.batch_shape[1:])
            body.append(f"inputs = keras.Input(shape={_value(shape)}, name={layer.name!r})")
            var[id(node.outputs[0])] = "inputs"
            continue
        if type(layer).__module__ in {m.__name__ for m in CUSTOM_MODULES} and type(layer) not in custom:
            custom.append(type(layer))
        note = getattr(layer, "torch_note", None)
        if note and note not in notes_seen and id(layer) not in layer_var:
            notes_seen.add(note)
            body.append(f"# {note}")
        shared = calls[id(layer)] > 1
        if shared and id(layer) not in layer_var:
            layer_var[id(layer)] = _identifier(layer.name, taken)
            body.append(f"{layer_var[id(layer)]} = {_constructor(layer, defaults)}")
        callee = layer_var[id(layer)] if shared else _constructor(layer, defaults)
        args = keras.tree.map_structure(
            lambda v: _Code(var[id(v)]) if isinstance(v, keras.KerasTensor) else v, node.arguments.args)
        kwargs = keras.tree.map_structure(
            lambda v: _Code(var[id(v)]) if isinstance(v, keras.KerasTensor) else v, node.arguments.kwargs)
        arg_code = ", ".join([_code(a) for a in args] + [f"{k}={_code(v)}" for k, v in kwargs.items()
                                                        if v is not None])  # Keras records mask=None
        i = done.get(id(layer), 0)
        done[id(layer)] = i + 1
        base = layer.name if not shared else f"{layer.name}_{i}"
        outs = [_identifier(base if len(node.outputs) == 1 else f"{base}_{j}", taken)
                for j in range(len(node.outputs))]
        for t, o in zip(node.outputs, outs):
            var[id(t)] = o
        target = outs[0] if len(outs) == 1 and not isinstance(layer, _RETURNS_LIST) else (
            f"[{outs[0]}]" if len(outs) == 1 else ", ".join(outs))
        body.append(f"{target} = {callee}({arg_code})")
    outputs = [var[id(t)] for t in model.outputs]
    out_code = outputs[0] if len(outputs) == 1 else f"[{', '.join(outputs)}]"
    body.append(f"return keras.Model(inputs, {out_code}, name={model.name!r})")
    header = (f'"""{name}: the Keras 3 twin of torch\'s {model.name}, written by backbone-parity (`parity convert`).\n\n'
              f"Every layer is named after its torch module path, so torch checkpoints map by name. Input: NHWC\n"
              f"(N, H, W, C); torch's NCHW input transposed. Weights: ``build_model().load_weights(\"{name}.weights.h5\")``.\n"
              f"Runs on any Keras 3 backend; the custom layers below are torch's ops written with keras.ops.\n"
              f'"""\n')
    parts = [header, "import keras\n", _PATH_HELPER]
    parts += ["\n" + src.rstrip() + "\n" for src in _custom_source(custom)]
    parts.append("\n\ndef build_model():\n" + "".join(f"    {line}\n" for line in body))
    return "".join(parts)


_PATH_HELPER = '''

def path(torch_path):
    """The layer name for a torch module path: the path itself, except on Keras's torch backend, which keeps
    variables in a torch ParameterDict that refuses '.' (there '.' becomes '_'; weights load by layer order)."""
    return torch_path.replace(".", "_") if keras.backend.backend() == "torch" else torch_path
'''


class _Code(str):
    """A variable name inside a call's arguments (written as it is, not quoted)."""


def _code(v) -> str:
    if isinstance(v, _Code):
        return str(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_code(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    return _value(v)
