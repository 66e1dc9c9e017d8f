"""What a Keras -> torch converter is: a small function, registered for a Keras layer (or op) class by
:func:`converts`, that reads one call of the layer (:class:`Call`) and returns the facade module that computes
it (:class:`Spec`: a class of ``torch_impl.keras_nn`` and its arguments). Converters hold no numerics rule:
those live in the facade. They translate Keras's arguments, and Keras axes into torch dims through
:mod:`parity.layout`.

Every value has its canonical torch layout between layers (:func:`torch_layout`): NCHW for a Keras NHWC map,
Keras's own axis order for any other rank. So each torch module's output is the Keras layer's output in
that layout, which is what ``parity.trace`` and ``parity.summary`` compare layer by layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.errors import UnsupportedOpError
from parity.layout import TO_NCHW, dst_axis, identity

CONVERTERS: dict[type, object] = {}  # Keras layer / op class -> converter function


def converts(*classes):
    """Registers the decorated function as the converter of each Keras class in ``classes`` (exact class:
    a subclass may override ``call``, so it is not assumed to compute the same)."""
    def register(fn):
        for cls in classes:
            if cls in CONVERTERS:
                raise ValueError(f"{cls.__name__} has two converters")
            CONVERTERS[cls] = fn
        return fn
    return register


def supported() -> list[str]:
    """The Keras classes that have a converter: layers by name, ops (``x + 3.0`` in a functional graph) as
    ``ops.<Name>``."""
    from tf_impl.backend import keras

    return sorted({cls.__name__ if issubclass(cls, keras.layers.Layer) else f"ops.{cls.__name__}"
                   for cls in CONVERTERS}, key=lambda n: (n.startswith("ops."), n))


def torch_layout(rank: int) -> tuple:
    """The layout of a Keras value of ``rank`` in the torch twin: NCHW for an image map, else Keras's order."""
    return TO_NCHW if rank == 4 else identity(rank)


def plain(value):
    """Python ints, floats, tuples and lists for numpy values read from a Keras config, so that a
    :class:`Spec` prints as literal source."""
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


@dataclass
class Value:
    """A tensor of the Keras graph: its local name in the generated ``forward`` and its Keras shape (batch
    first, None for a size known only at run time)."""

    name: str
    shape: tuple

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class Spec:
    """One facade module: ``torch_impl.keras_nn.<cls>(*args, **kwargs)``, with a source comment where a
    numerics rule needed care."""

    cls: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    comment: str | None = None

    def source(self) -> str:
        """The constructor call as Python source (its arguments are literals)."""
        parts = [repr(plain(a)) for a in self.args] + [f"{k}={plain(v)!r}" for k, v in self.kwargs.items()]
        return f"{self.cls}({', '.join(parts)})"


@dataclass
class Call:
    """One call of a Keras layer, as a converter sees it: the layer, its input and output values, and the
    graph's ``readers`` (the nodes that read a Keras tensor) for rules that depend on what comes next."""

    layer: object
    inputs: list
    outputs: list
    node: object
    readers: object  # callable: Keras tensor -> list of nodes reading it

    @property
    def config(self) -> dict:
        return self.layer.get_config()

    def refuse(self, why: str) -> UnsupportedOpError:
        """The error for a setting no converter maps (raise it)."""
        kind = type(self.layer)
        return UnsupportedOpError(f"layer {self.layer.name!r} ({kind.__module__}.{kind.__qualname__}): {why}")

    def require(self, condition: bool, why: str) -> None:
        if not condition:
            raise self.refuse(why)

    @property
    def x(self) -> Value:
        """The single input."""
        self.require(len(self.inputs) == 1, f"expected one input, got {len(self.inputs)}")
        return self.inputs[0]

    def image(self) -> Value:
        """The single input, a 4-D channels-last map with a known channel count."""
        x = self.x
        self.require(x.rank == 4, f"expected a 4-D (N, H, W, C) input, got shape {x.shape}")
        self.require(x.shape[-1] is not None, f"expected a known channel count, got shape {x.shape}")
        return x

    def channels_last(self) -> None:
        """Refuses ``data_format='channels_first'``: the twin's layouts assume Keras's channels-last maps."""
        fmt = self.config.get("data_format", "channels_last")
        self.require(fmt == "channels_last", f"data_format={fmt!r} is not supported (expected 'channels_last')")

    def dim(self, axis: int, value: Value | None = None) -> int:
        """The torch dim that holds Keras ``axis`` of ``value`` (default: the single input)."""
        value = value or self.x
        return dst_axis(torch_layout(value.rank), axis)

    def activation(self, name) -> str:
        """A Keras activation that the facade knows (by name; a custom function is refused)."""
        from torch_impl.keras_nn import ALONG_AXIS, ELEMENTWISE

        if not isinstance(name, str) or (name not in ELEMENTWISE and name not in ALONG_AXIS):
            shown = repr(name) if isinstance(name, str) else "a custom function"
            raise self.refuse(f"activation {shown} is not supported; supported: "
                              f"{', '.join(sorted([*ELEMENTWISE, *ALONG_AXIS]))}")
        return name
