"""torch -> Keras: the automatic twin of a torch module.

1. **Trace** with ``torch.fx`` (:class:`Tracer`): a module is a leaf of the graph exactly when the converter
   table has its type, so torchvision's own wrappers (``Conv2dNormActivation``, ``SqueezeExcitation``,
   ``LayerNorm2d``, ``Permute``, ``StochasticDepth``) are traced through down to modules and functions we
   map. Shapes come from ``torch.fx.passes.shape_prop.ShapeProp`` at the given input shape.
2. **Convert** each node with the converter table (:mod:`parity.convert.torch_ops`): module nodes onto
   ``tf_impl.nn`` facade leaves built with the module's own arguments and named after its path (a module
   called twice reuses its layers), function and method nodes onto Keras layers named after the fx node.
   Every value carries its layout (:mod:`parity.layout`), so a ``permute`` moves no data and a ``view``
   moves only what it must.
3. **Transfer** the module's weights (:func:`parity.transfer`: one naming rule, one layout table).

H and W stay free (``None``) unless a Flatten of a map of free size feeds a Linear (or a size computed from
tensor sizes is used): then the twin is rebuilt with the traced H and W. The module is traced in eval mode
(its training flags are restored after): the twin computes inference.
"""
from __future__ import annotations

import inspect
import time

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode  # ShapeProp's documented way to skip the compute
from torch.fx.passes.shape_prop import ShapeProp

from parity import layout as L
from parity.convert.torch_ops import METHODS, MODULES, function_converter
from parity.convert.torch_ops.context import Build, Context
from parity.convert.torch_ops.table import Held, NeedStaticSize, Tensor, type_name
from parity.errors import InputShapeError, UnsupportedOpError
from tf_impl.backend import keras


class Tracer(fx.Tracer):
    """``torch.fx`` tracer whose leaves are the module types the converter table maps (exact type), with
    source lines recorded for error messages."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m) in MODULES

    def create_node(self, *args, **kwargs):
        """Records the module whose forward made the node (``(path, type)``), for error messages."""
        node = super().create_node(*args, **kwargs)
        if self.module_stack:
            node.meta["module_path"] = next(reversed(self.module_stack.values()))
        return node


def trace(module: nn.Module) -> fx.GraphModule:
    """The fx graph of ``module``; a model fx cannot trace raises :class:`UnsupportedOpError` with the
    tracer's reason and the module path it was in."""
    tracer = Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # fx raises TraceError, TypeError, RuntimeError... from the user's forward
        where = next(reversed(tracer.module_stack.values()), None) if tracer.module_stack else None
        path = f"module {where[0]!r} ({type_name(where[1])})" if isinstance(where, tuple) and where[0] else (
            f"the top-level module ({type_name(type(module))})")
        raise UnsupportedOpError(f"torch.fx cannot trace {type(module).__name__}: in {path}: "
                                 f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                                 f" (data-dependent control flow or Python on tensor values cannot be traced)"
                                 ) from exc
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


class _Lone(nn.Module):
    """A container for a root module that is itself a table leaf, so that it becomes one graph node."""

    def __init__(self, name: str, module: nn.Module):
        super().__init__()
        self.leaf_name = name
        self.add_module(name, module)

    def forward(self, x):
        return getattr(self, self.leaf_name)(x)


def _wrap_leaf_root(module: nn.Module) -> nn.Module:
    """``nn.LocalResponseNorm(5)`` as a whole model is traced inside :class:`_Lone`, its layer named after
    its class; a weighted one cannot keep its module path (``""``: no Keras layer has that name)."""
    if type(module) not in MODULES:
        return module
    if any(True for _ in module.parameters()) or any(b.is_floating_point() for b in module.buffers()):
        raise UnsupportedOpError(f"a lone {type_name(type(module))} with weights has the module path '' and no "
                                 f"Keras layer can be named ''; wrap it: nn.Sequential(module)")
    return _Lone(type(module).__name__.lower(), module)


def _convert_node(build: Build, node, env: dict):
    ctx = Context(build, node)
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
    if node.op == "call_module":
        mod = build.gm.get_submodule(node.target)
        fn, args = MODULES[type(mod)], (mod, *args)
    elif node.op == "call_function":
        fn = function_converter(node.target)
    elif node.op == "call_method":
        fn = METHODS.get(node.target)
    else:
        raise ctx.unsupported(f"fx op {node.op!r}")
    if fn is None:
        raise ctx.unsupported("no converter")
    try:
        inspect.signature(fn).bind(ctx, *args, **kwargs)
    except TypeError as exc:
        raise ctx.unsupported(f"arguments not supported: {exc}") from None
    return fn(ctx, *args, **kwargs)


def _held(build: Build, module: nn.Module, node) -> Held:
    owner, _, name = node.target.rpartition(".")
    try:
        mod = module.get_submodule(owner)
    except AttributeError:
        mod = None
    tensors = {} if mod is None else {**dict(mod.named_parameters(recurse=False)), **dict(mod.named_buffers(recurse=False))}
    if name not in tensors:
        raise Context(build, node).unsupported(f"{node.target!r} is not a parameter or buffer of the model (a "
                                               f"tensor made in forward): only module tensors can be held")
    return Held(owner, name, tensors[name])


def _outputs(ctx: Context, value) -> list:
    """The model's outputs in order (a dict by its keys' order, tuples and lists in order): 4-D maps NHWC,
    anything else in torch's axis order."""
    if isinstance(value, dict):
        return [k for v in value.values() for k in _outputs(ctx, v)]
    if isinstance(value, (tuple, list)):
        return [k for v in value for k in _outputs(ctx, v)]
    t = ctx.tensor(value, "output")
    return [ctx.in_layout(t, L.TO_NHWC if t.rank == 4 else L.identity(t.rank), "output_transpose")]


def _build(gm: fx.GraphModule, module: nn.Module, input_shape: tuple, dynamic: bool) -> keras.Model:
    n, c, *spatial = input_shape
    size = (None,) * len(spatial) if dynamic else tuple(spatial)
    rank = len(input_shape)
    keras_input = keras.Input(shape=(*size, c) if rank == 4 else tuple(input_shape[1:]), name="input")
    build = Build(gm, module, keras_input, dynamic, reserved=[p for p, _ in module.named_modules() if p] + ["input"])
    env, outputs, placeholders = {}, None, 0
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                raise Context(build, node).unsupported("a second input: one input tensor is supported")
            layout = L.TO_NHWC if rank == 4 else L.identity(rank)
            env[node] = Tensor(keras_input, layout, tuple(input_shape))
        elif node.op == "get_attr":
            env[node] = _held(build, module, node)
        elif node.op == "output":
            outputs = _outputs(Context(build, node), fx.node.map_arg(node.args[0], lambda a: env[a]))
        else:
            env[node] = _convert_node(build, node, env)
    build.restore_initializers()
    return keras.Model(keras_input, outputs[0] if len(outputs) == 1 else outputs, name=type(module).__name__)


def to_keras(module: nn.Module, input_shape: tuple, timings: dict | None = None) -> keras.Model:
    """The Keras twin of ``module`` (NHWC input; H and W free where the model allows), traced at
    ``input_shape`` (N, C, H, W), with the module's weights transferred. Raises :class:`UnsupportedOpError`
    for anything no converter maps. ``timings``, if given, receives the seconds of each step (``trace``:
    fx trace and shape propagation, ``build``, ``transfer``), for ``benchmarks/convert.py``."""
    from parity.weight_transfer import transfer

    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) < 2 or min(input_shape) < 1:
        raise InputShapeError(f"input_shape must be (N, C, H, W) with positive sizes, got {input_shape}")
    # traced at batch 2 at least: a batch of 1 looks like any other size-1 axis to a reshape plan
    input_shape = (max(input_shape[0], 2), *input_shape[1:])
    t0 = time.perf_counter()
    traced = _wrap_leaf_root(module)
    flags = {m: m.training for m in module.modules()}
    module.eval()
    try:
        gm = trace(traced)
        fake = FakeTensorMode(allow_non_fake_inputs=True)  # shapes only: nothing is computed
        with torch.no_grad():
            ShapeProp(gm, fake_mode=fake).propagate(torch.empty(input_shape))
    finally:
        for m, flag in flags.items():
            m.training = flag
    t1 = time.perf_counter()
    try:
        model = _build(gm, module, input_shape, dynamic=True)
    except NeedStaticSize:
        model = _build(gm, module, input_shape, dynamic=False)
    t2 = time.perf_counter()
    transfer(module, model)
    if timings is not None:
        timings.update(trace=t1 - t0, build=t2 - t1, transfer=time.perf_counter() - t2)
    return model
