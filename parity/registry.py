"""The registry of twin pairs. Tests, the CLI and the benchmarks all read it.

A :class:`ModelSpec` names a torch builder and a Keras builder (``"module:attr"`` strings, imported only
when built, so listing the registry imports neither framework), the builder arguments, the input shapes to
check, the expected parameter counts with their source, and the tolerance with its reason.

The Keras builder is a ``tf_impl`` facade module taking the same arguments as the torch one;
:func:`build` wraps it into a ``keras.Model`` whose layers are named after the torch module paths.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from parity.errors import UnknownModelError

FLOAT32_TOLERANCE = 1e-5
FLOAT32_REASON = ("float32 throughout; torch (oneDNN), TensorFlow (Eigen/oneDNN) and onnxruntime (MLAS) "
                  "sum in different orders, which moves results by ~1e-7 relative per reduction; 1e-5 "
                  "leaves room for deep stacks while a layout or eps error shows at 1e-3 or more")


@dataclass(frozen=True)
class Counts:
    """Expected parameter counts: trainable parameters and BatchNorm running statistics (Keras's
    non-trainable weights), with where the figures come from."""

    trainable: int
    statistics: int
    source: str

    @property
    def total(self) -> int:
        return self.trainable + self.statistics


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    torch: str
    keras: str
    input_shapes: tuple  # (N, C, H, W) each; the first is the default
    params: Counts
    kwargs: dict = field(default_factory=dict)
    kind: str = "model"  # "model" or "block"
    channels_arg: str | None = None  # the builder argument that sets the input channels, if any
    fixed_size: bool = False  # a Flatten feeds a Dense: the Keras input needs a static H, W
    tolerance: float = FLOAT32_TOLERANCE
    tolerance_reason: str = FLOAT32_REASON

    @property
    def default_shape(self) -> tuple:
        return self.input_shapes[0]

    def input_channels(self, **overrides) -> int:
        if self.channels_arg and self.channels_arg in overrides:
            return overrides[self.channels_arg]
        return self.default_shape[1]

    def sample_shape(self, **overrides) -> tuple:
        """The default (N, C, H, W) with C as the builder ``overrides`` set it."""
        n, _, h, w = self.default_shape
        return n, self.input_channels(**overrides), h, w


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_zoo() -> None:
    if not _REGISTRY:
        importlib.import_module("parity.zoo")


def names() -> list[str]:
    """Registry names, blocks and models, in registration order."""
    _load_zoo()
    return list(_REGISTRY)


def get(name: str) -> ModelSpec:
    _load_zoo()
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; expected one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _resolve(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, framework: str, **overrides):
    """Builds registry entry ``name`` for ``framework`` ("torch" or "keras") with the spec's arguments
    updated by ``overrides``. Returns an ``nn.Module`` in eval mode or a ``keras.Model`` (NHWC input)."""
    spec = get(name)
    kwargs = {**spec.kwargs, **overrides}
    if framework == "torch":
        return _resolve(spec.torch)(**kwargs).eval()
    if framework == "keras":
        from tf_impl.nn import build_model

        _, c, h, w = spec.default_shape
        size = (h, w) if spec.fixed_size else (None, None)
        return build_model(_resolve(spec.keras)(**kwargs), (*size, spec.input_channels(**overrides)), name)
    raise ValueError(f"framework must be 'torch' or 'keras', got {framework!r}")
