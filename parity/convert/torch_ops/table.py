"""The converter table of the torch -> Keras direction, and what a converter works with.

A converter is a small function registered by a decorator under what the ``torch.fx`` node calls: a torch
module type (:func:`module`, matched by exact type, so a subclass with its own ``forward`` is traced
through), a function (:func:`function`: ``torch.add``, ``operator.add``, ``F.interpolate``, ...) or a tensor
method name (:func:`method`: ``"view"``, ``"permute"``, ...). It receives a :class:`Context` and the node's
arguments with every traced value replaced by its Keras twin (:class:`Tensor`, :class:`Held`,
:class:`SizeOf`, :class:`Dim`, or plain Python values), and returns the value of the node.

A module converter builds the ``tf_impl.nn`` facade leaf with the module's own arguments (the facade holds
every numerics rule); function and method converters build Keras layers named after the fx node.
Layouts are :mod:`parity.layout`'s: every :class:`Tensor` carries the permutation that maps its torch axes
onto its Keras axes.
"""
from __future__ import annotations

from dataclasses import dataclass

MODULES: dict = {}  # torch module type -> converter(ctx, module, *args, **kwargs)
FUNCTIONS: dict = {}  # callable, or the dotted name of one, -> converter(ctx, *args, **kwargs)
METHODS: dict = {}  # tensor method name -> converter(ctx, self, *args, **kwargs)


def module(*types):
    """Registers a converter for torch module types (exact type match)."""
    def register(fn):
        for t in types:
            MODULES[t] = fn
        return fn
    return register


def function(*fns):
    """Registers a converter for functions (the fx ``call_function`` target), given as the function or, for
    an optional package that must not be imported here (torchvision), as its dotted name
    (:func:`function_name`)."""
    def register(fn):
        for f in fns:
            FUNCTIONS[f] = fn
        return fn
    return register


def method(*names):
    """Registers a converter for tensor methods (the fx ``call_method`` target)."""
    def register(fn):
        for n in names:
            METHODS[n] = fn
        return fn
    return register


def function_name(fn) -> str:
    """``torch.nn.functional.interpolate``, ``operator.add``: how a function target is written to a user."""
    mod = getattr(fn, "__module__", None) or ""
    mod = {"_operator": "operator", "torch._C._nn": "torch.nn.functional", "torch._C._VariableFunctions": "torch",
           "torch.functional": "torch"}.get(mod, mod)
    return f"{mod}.{getattr(fn, '__name__', repr(fn))}" if mod else getattr(fn, "__name__", repr(fn))


def type_name(t: type) -> str:
    """``torch.nn.Conv2d`` (torch's public path), or the defining module's path for other types."""
    return f"torch.nn.{t.__qualname__}" if t.__module__.startswith("torch.nn.") else f"{t.__module__}.{t.__qualname__}"


def function_converter(target):
    """The converter of a ``call_function`` target: registered under the function, or under its name."""
    return FUNCTIONS.get(target) or FUNCTIONS.get(function_name(target))


def supported() -> dict[str, list[str]]:
    """The supported ops by kind, sorted: module types, functions, tensor methods."""
    return {"modules": sorted(type_name(t) for t in MODULES),
            "functions": sorted({f if isinstance(f, str) else function_name(f) for f in FUNCTIONS}),
            "methods": sorted(f"Tensor.{m}" for m in METHODS)}


@dataclass
class Tensor:
    """The Keras twin of a traced torch tensor: ``k`` the Keras tensor, ``layout`` the permutation that maps
    torch axes onto Keras axes (``k.shape[i] == shape[layout[i]]``), ``shape`` torch's shape at the traced
    input size."""

    k: object
    layout: tuple
    shape: tuple

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass
class Held:
    """A torch tensor that a module uses in its own forward (an fx ``get_attr``): ConvNeXt's ``layer_scale``,
    the weight of a ``LayerNorm2d``. It becomes a Keras variable only when a consumer says in which layout
    (:meth:`Context.materialize`), or a consumer maps it onto a facade leaf as a whole."""

    owner: str  # module path of the module that holds it
    name: str  # its name in that module (``layer_scale``)
    tensor: object  # the torch tensor

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    @property
    def rank(self) -> int:
        return self.tensor.dim()


class SizeOf(tuple):
    """``x.size()`` / ``x.shape`` (or a slice of it) of a traced tensor: the sizes at the traced input, plus
    which tensor and which of its dims they are, so that ``F.interpolate(y, size=x.shape[-2:])`` resizes to
    ``x``'s size at run time instead of the traced one."""

    def __new__(cls, sizes, source: Tensor, dims: tuple):
        obj = super().__new__(cls, sizes)
        obj.source, obj.dims = source, tuple(dims)
        return obj

    def __getitem__(self, i):
        if isinstance(i, slice):
            return SizeOf(tuple(self)[i], self.source, self.dims[i])
        return Dim(tuple(self)[i], self.source, self.dims[i])


class Dim(int):
    """One size of a traced tensor (``x.size(2)``), with the tensor and the dim it was read from. Arithmetic
    on it gives a :class:`Derived` number."""

    def __new__(cls, value, source: Tensor, dim: int):
        obj = super().__new__(cls, value)
        obj.source, obj.dim = source, dim
        return obj


class Derived(int):
    """A number computed from sizes of traced tensors (``x.size(2) * 2``): right at the traced input size
    only, so a converter that would bake it in asks for a fixed H and W."""


def _derive(name: str):
    def op(self, *args):
        out = getattr(int, name)(self, *args)
        return out if out is NotImplemented or not isinstance(out, int) else Derived(out)
    op.__name__ = name
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__",
              "__rfloordiv__", "__mod__", "__neg__"):
    setattr(Dim, _name, _derive(_name))
    setattr(Derived, _name, _derive(_name))


class NeedStaticSize(Exception):
    """Raised by a converter that cannot keep H and W free (a Flatten of a map of free size feeding a
    Linear): the twin is then rebuilt with the traced H and W fixed."""
