"""What a converter works with: the twin being built (:class:`Build`) and one node's view of it
(:class:`Context`), with the helpers that several converter families share (layout changes, reshapes,
broadcasting, tensors held by modules)."""
from __future__ import annotations

import os

import numpy as np
import torch

from parity import layout as L
from parity.convert.torch_ops.table import Held, NeedStaticSize, Tensor, function_name, supported, type_name
from parity.errors import UnsupportedOpError
from tf_impl import keras_layers as KL
from tf_impl.backend import keras
from tf_impl.nn import UnsupportedArgumentError


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_CONVERT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # our tracer's own frames


class Build:
    """The state of one conversion: the traced ``GraphModule`` and the original module (``GraphModule``
    keeps only the modules it calls, with plain ``nn.Module`` parents), the Keras input, the facade leaves made so
    far (one per module path: a module called twice reuses its Keras layers), the layer names in use, the
    held-tensor layers, and whether H and W are free."""

    def __init__(self, graph_module, module, keras_input, dynamic: bool, reserved):
        self.gm, self.module, self.input, self.dynamic = graph_module, module, keras_input, dynamic
        self.leaves: dict = {}
        self.names: set = set(reserved)  # every module path: function nodes must not take one
        self.held: dict = {}  # owner path -> (layer outputs by tensor name, layouts by tensor name)
        self.initializers: list = []  # (layer, attribute, its own initializer) while built with zeros

    def zero_initialized(self, layers) -> None:
        """Builds ``layers`` with zero initializers: the transfer overwrites every weight, and Keras's random
        initializers cost half the weights' bytes again at peak (ResNet-50: 2.0x -> 1.5x). The layers' own
        initializers are put back by :meth:`restore_initializers`, so their configs stay Keras's defaults."""
        for layer in layers:
            for attr in [a for a in vars(layer) if a.endswith("_initializer")]:
                self.initializers.append((layer, attr, getattr(layer, attr)))
                setattr(layer, attr, keras.initializers.Zeros())

    def restore_initializers(self) -> None:
        for layer, attr, initializer in self.initializers:
            setattr(layer, attr, initializer)
        self.initializers.clear()

    def unique(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``... if taken; the name is then taken."""
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name


def source_line(stack_trace: str | None) -> str | None:
    """``file:line (code)`` of the innermost frame of an fx stack trace outside torch and this converter."""
    lines = (stack_trace or "").splitlines()
    frames = [(lines[i].strip(), lines[i + 1].strip() if i + 1 < len(lines) else "")
              for i in range(len(lines)) if lines[i].strip().startswith("File ")]
    user = ([(f, code) for f, code in frames if _TORCH_DIR not in f and _CONVERT_DIR not in f]
            or [(f, code) for f, code in frames if "/torch/fx/" not in f and _CONVERT_DIR not in f])
    if not user:
        return None
    frame, code = user[-1]
    parts = frame.split('"')
    where = f"{parts[1]}:{frame.split('line ')[-1].split(',')[0]}" if len(parts) > 2 else frame
    return f"{where} ({code})" if code else where


class Context:
    """One fx node being converted: its Keras name (the module path of a ``call_module`` node, else the fx
    node's name), its torch output shape (from ``ShapeProp``), and the helpers converters share."""

    def __init__(self, build: Build, node):
        self.build, self.node = build, node
        self.path = node.target if node.op == "call_module" else None
        self.name = self.path if self.path is not None else build.unique(node.name)
        meta = node.meta.get("tensor_meta")
        self.out_shape = tuple(meta.shape) if hasattr(meta, "shape") else None

    # --- errors --------------------------------------------------------------------------------------------

    def where(self) -> str:
        """The module path of the node, or the function and the source line that called it."""
        if self.path is not None:
            return f"module {self.path!r} ({type_name(type(self.build.gm.get_submodule(self.path)))})"
        op = self.op_name()
        line = source_line(self.node.stack_trace)
        inside = self.node.meta.get("module_path")
        owner = f" in module {inside[0]!r} ({type_name(inside[1])})" if inside and inside[0] else ""
        return f"{op}{owner} called at {line}" if line else f"{op}{owner}"

    def op_name(self) -> str:
        node = self.node
        if node.op == "call_module":
            return type_name(type(self.build.gm.get_submodule(node.target)))
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        if node.op == "call_function":
            return function_name(node.target)
        return f"{node.op} {node.target}"

    def unsupported(self, why: str) -> UnsupportedOpError:
        """The error for this node: its name, where it comes from, the op, why, and what is supported."""
        ops = supported()
        listing = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in ops.items())
        return UnsupportedOpError(f"cannot convert fx node {self.node.name!r} ({self.where()}): op "
                                  f"{self.op_name()}: {why}. Supported: {listing}")

    def facade(self, make):
        """The facade leaf of this node, made by ``make()`` once per module path (a module called again reuses
        its leaf, so its Keras layers and weights are shared), named after the path or the node."""
        key = self.path if self.path is not None else self.name
        leaf = self.build.leaves.get(key)
        if leaf is None:
            try:
                leaf = make()
            except UnsupportedArgumentError as exc:
                raise self.unsupported(str(exc)) from None
            object.__setattr__(leaf, "path", key)
            self.build.zero_initialized(leaf.layers())
            self.build.leaves[key] = leaf
        return leaf

    def static(self, why: str) -> None:
        """Asks for fixed H and W: the twin is rebuilt at the traced size (see :class:`NeedStaticSize`)."""
        if self.build.dynamic:
            raise NeedStaticSize(why)
        raise self.unsupported(why)

    # --- values --------------------------------------------------------------------------------------------

    def out(self, k, layout) -> Tensor:
        """The node's value; the layer that made ``k`` records its layout per call (``torch_layouts``), so the
        per-layer trace compares it in torch's axis order."""
        op, node_index, _ = k._keras_history
        if not hasattr(op, "torch_layouts"):
            op.torch_layouts = {}
        op.torch_layouts[node_index] = tuple(layout)
        return Tensor(k, tuple(layout), self.out_shape)

    def image(self, k) -> Tensor:
        """A 4-D output in NHWC (torch NCHW)."""
        return self.out(k, L.TO_NHWC)

    def tensor(self, value, what: str = "input") -> Tensor:
        """``value`` as a :class:`Tensor`; a held tensor is laid out as torch's (identity)."""
        if isinstance(value, Held):
            return self.materialize(value, L.identity(value.rank))
        if not isinstance(value, Tensor):
            raise self.unsupported(f"expected a tensor as {what}, got {type(value).__name__} {value!r}")
        return value

    def in_layout(self, t: Tensor, layout, suffix: str = "transpose"):
        """The Keras tensor of ``t`` in ``layout`` (a transpose layer ``<name>_<suffix>`` if it differs)."""
        perm = L.transpose_between(t.layout, tuple(layout))
        return self.transpose(t.k, perm, suffix)

    def nhwc(self, value):
        """A 4-D input in NHWC, as every facade leaf on images expects it."""
        t = self.tensor(value)
        if t.rank != 4:
            raise self.unsupported(f"expected a 4-D (N, C, H, W) input, got shape {t.shape}")
        return self.in_layout(t, L.TO_NHWC)

    def last_axis_last(self, value):
        """``(Keras tensor, layout)`` of ``value`` with torch's last dim as the Keras last axis, where
        ``Dense`` and ``LayerNormalization`` act (a transpose only when it is elsewhere)."""
        t = self.tensor(value)
        layout = tuple(a for a in t.layout if a != t.rank - 1) + (t.rank - 1,)
        return self.in_layout(t, layout), layout

    def transpose(self, k, perm, suffix: str = "transpose"):
        """``k`` transposed by ``perm`` (a no-op for the identity): Keras ``Permute`` when the batch axis
        stays first, else :class:`tf_impl.keras_layers.Transpose`."""
        perm = tuple(perm)
        if perm == L.identity(len(perm)):
            return k
        name = self.build.unique(f"{self.name}_{suffix}")
        if perm[0] == 0:
            return keras.layers.Permute(perm[1:], name=name)(k)
        return KL.Transpose(perm, name=name)(k)

    def materialize(self, held: Held, layout) -> Tensor:
        """``held`` as a Keras tensor in ``layout``: a permutation of its rank, or of a higher rank, where it
        is seen with leading size-1 axes as broadcasting sees it, and stored at that rank (Keras's merge
        layers take the first axis of every input for a batch axis). All tensors of one module live in one
        :class:`tf_impl.keras_layers.TorchTensors` layer named after the module's path, each variable named
        like the torch tensor and stored in the layout of its first use; later uses in another layout
        transpose."""
        layout = tuple(layout)
        outs, layouts = self.build.held.get(held.owner, (None, None))
        if outs is None:
            outs, layouts = self._hold(held.owner, {held.name: layout})
        mine = layouts[held.name]
        shape = (1,) * (len(mine) - held.rank) + held.shape
        t = Tensor(outs[held.name], mine, shape)
        if len(layout) < len(mine):
            raise self.unsupported(f"{held.owner}.{held.name} is used at rank {len(layout)} after rank {len(mine)}")
        if len(layout) > len(mine):
            return broadcast_to_layout(self, t, layout)
        return Tensor(self.in_layout(t, layout), layout, shape)

    def _hold(self, owner: str, wanted: dict):
        """Makes the ``TorchTensors`` layer of module ``owner``: every parameter and floating buffer of it
        (the transfer is strict), each in the layout ``wanted`` names; the others as the first where their
        rank allows (ConvNeXt-like ``(C, 1, 1)`` tensors), else torch's."""
        if owner in self.build.leaves or owner in self.build.held:
            raise self.unsupported(f"module {owner!r} is converted as a layer and also read directly")
        mod = self.build.module.get_submodule(owner)
        params = dict(mod.named_parameters(recurse=False))
        tensors = {**params, **{n: b for n, b in mod.named_buffers(recurse=False)
                                if b is not None and b.is_floating_point()}}
        first = next(iter(wanted.values()))
        specs, layouts = {}, {}
        for n, t in tensors.items():
            shape = tuple(t.shape)
            perm = wanted.get(n, first if len(first) >= len(shape) else L.identity(len(shape)))
            full = (1,) * (len(perm) - len(shape)) + shape
            specs[n] = {"shape": tuple(full[a] for a in perm), "torch_shape": shape, "perm": perm,
                        "trainable": n in params}
            layouts[n] = perm
        layer = KL.TorchTensors(specs, name=owner or self.build.unique("tensors"))
        self.build.names.add(layer.name)
        outs = dict(zip(specs, layer(self.build.input)))
        self.build.held[owner] = (outs, layouts)
        return outs, layouts


def broadcast_to_layout(ctx: Context, t: Tensor, layout) -> Tensor:
    """``t`` seen at the higher rank of ``layout`` with leading size-1 axes (torch's broadcasting), as a Keras
    tensor in ``layout``: free when ``t``'s layout expands to it (Keras broadcasting aligns trailing axes),
    else a reshape to the full rank and a transpose."""
    layout = tuple(layout)
    if L.expand_rank(t.layout, len(layout)) == layout:
        return t
    full = (1,) * (len(layout) - t.rank) + tuple(t.shape)
    expanded = reshape(ctx, t, full, ctx.build.unique(f"{ctx.name}_expand"))
    return Tensor(ctx.in_layout(expanded, layout), layout, full)


def reshape(ctx: Context, t: Tensor, shape, name: str | None = None) -> Tensor:
    """torch ``t.reshape(shape)`` on the Keras tensor, by :func:`parity.layout.plan_reshape`: the fewest axes
    moved first (a transpose ``<name>_transpose``), axes copied one to one keep their run-time size (a free
    batch, H or W), other sizes are fixed; when free axes are merged, the one output axis that is not a copy
    is left to the reshape (-1). Anything else needs the traced H and W. The layer is named ``name``
    (default: the node's name); a reshape that changes nothing adds no layer."""
    shape = tuple(int(s) for s in shape)
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        shape = tuple(int(np.prod(t.shape)) // known if s == -1 else s for s in shape)
    plan = L.plan_reshape(t.layout, t.shape, shape)
    k = t.k if plan.pre is None else ctx.transpose(t.k, plan.pre)
    static = tuple(k.shape)
    if len(static) == len(plan.shape) and all(c == i for i, c in enumerate(plan.copies)):
        return Tensor(k, plan.layout, shape)  # every axis kept as it is: nothing to do
    target = list(plan.shape)
    copies = [c if c is not None and static[c] is None else None for c in plan.copies]
    merged_free = [a for a, s in enumerate(static) if s is None and a not in plan.copies]
    if merged_free:
        open_axes = [i for i, c in enumerate(plan.copies) if c is None]
        if len(open_axes) != 1:
            ctx.static(f"a reshape from {t.shape} to {shape} splits or merges sizes that are free in Keras")
        target[open_axes[0]] = -1
    name = name or ctx.name
    if copies[0] == 0 and not any(c is not None for c in copies[1:]):
        k = keras.layers.Reshape(tuple(target[1:]), name=name)(k)
    else:
        k = KL.TorchReshape(target, copies, name=name)(k)
    return Tensor(k, plan.layout, shape)
