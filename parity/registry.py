"""The registry of twin pairs. Tests, the CLI and the benchmarks all read it.

A :class:`ModelSpec` names a torch builder and a Keras builder (``"module:attr"`` strings, imported only
when built, so listing the registry imports neither framework), the builder arguments, the input shapes to
check, the expected parameter counts with their source, and the tolerance with its reason.

A builder returns an ``nn.Module``, a ``keras.Model``, or a ``tf_impl`` facade module (which :func:`build`
wraps into a ``keras.Model`` whose layers are named after the torch module paths). One builder may be
:data:`AUTO`: that side is the automatic twin of the other (``parity.twin``), so a torchvision model or a
``keras.applications`` one is one line of registration.

Entries come from ``parity/zoo/*.py`` and from installed packages that declare an entry point in the group
``backbone_parity.zoo`` (the entry point's module is imported; it calls :func:`register`).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from parity.errors import UnknownModelError

FLOAT32_TOLERANCE = 1e-5
FLOAT32_REASON = ("float32 throughout; torch (oneDNN), TensorFlow (Eigen/oneDNN) and onnxruntime (MLAS) "
                  "sum in different orders, which moves results by ~1e-7 relative per reduction; 1e-5 "
                  "leaves room for deep stacks while a layout or eps error shows at 1e-3 or more")


PIXELS = (0.0, 255.0)  # the input range of a model that rescales its own input (a Rescaling or Normalization first)


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


AUTO = "auto"  # a builder that is the automatic twin of the other side's model
ENTRY_POINT_GROUP = "backbone_parity.zoo"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    torch: str  # "module:callable", or AUTO
    keras: str  # "module:callable", or AUTO
    input_shapes: tuple  # (N, C, H, W) each; the first is the default
    params: Counts | None  # None: no published figure; the twins' counts must still agree
    kwargs: dict = field(default_factory=dict)
    kind: str = "model"  # "model" or "block"
    channels_arg: str | None = None  # the builder argument that sets the input channels, if any
    fixed_size: bool = False  # a Flatten feeds a Dense: the Keras input needs a static H, W
    zoo: bool = False  # a heavy model-zoo entry: its tests run under `pytest -m zoo`, not by default
    input_range: tuple | None = None  # inputs uniform in [low, high] (PIXELS for models that rescale them
    # themselves); None: standard normal
    calibrate_batchnorm: bool = False  # the original's BatchNorm statistics set near the data's after the
    # randomisation (parity.randomize: calibrate_keras, randomize_torch(calibrate=...)), for deep models with
    # sigmoid gates or rescaled inputs, which random statistics cannot keep in their working range
    tolerance: float = FLOAT32_TOLERANCE
    tolerance_reason: str = FLOAT32_REASON
    # {foreign format: {foreign Keras layer name: our layer name}}: how ``parity.port`` reads a Keras file
    # whose layers another tool named (keras.applications' ``block1_conv1``); used when the file's layer names
    # are exactly one table's keys
    foreign_names: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The framework whose model is the original: randomised, then transferred to the other."""
        return "keras" if self.torch == AUTO else "torch"

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
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Adds ``spec`` to the registry; safe to call at any time, before or after the zoo is loaded."""
    if spec.torch == AUTO and spec.keras == AUTO:
        raise ValueError(f"model {spec.name!r}: at most one builder can be AUTO")
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_zoo() -> None:
    """Imports every module of ``parity.zoo`` (file name order) and every ``backbone_parity.zoo`` entry
    point, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import parity.zoo

    for info in sorted(pkgutil.iter_modules(parity.zoo.__path__), key=lambda m: m.name):
        importlib.import_module(f"parity.zoo.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


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
    from parity.loader import import_module

    module, attr = target.split(":")
    return getattr(import_module(module), attr)


def build(name: str, framework: str, *, input_size: tuple | None = None, **overrides):
    """Builds registry entry ``name`` for ``framework`` ("torch" or "keras") with the spec's arguments
    updated by ``overrides``. Returns an ``nn.Module`` in eval mode or a ``keras.Model`` (NHWC input). An
    :data:`AUTO` side is the automatic twin of the other side, built the same way.

    ``input_size=(H, W)`` gives the Keras model a static input of that size: a fixed-size entry (a Flatten
    feeding a Dense) is otherwise built at its default size, any other entry with a free H, W. The torch
    model decides which sizes are valid (``parity.sizes``); a Keras model built at a size it does not accept
    fails in Keras."""
    if framework not in ("torch", "keras"):
        raise ValueError(f"framework must be 'torch' or 'keras', got {framework!r}")
    if input_size is not None and framework != "keras":
        raise ValueError(f"input_size applies to the Keras twin (a static input size); a torch model takes "
                         f"any size, got input_size={input_size!r} for {framework!r}")
    spec = get(name)
    builder = spec.torch if framework == "torch" else spec.keras
    if builder == AUTO:
        from parity.convert import twin

        n, c, h, w = spec.sample_shape(**overrides)
        sample = (n, c, *input_size) if input_size is not None else (n, c, h, w)
        return twin(build(name, spec.source, **overrides), sample)
    model = _resolve(builder)(**{**spec.kwargs, **overrides})
    if framework == "torch":
        return model.eval()
    from tf_impl.backend import keras

    if isinstance(model, keras.Model):
        if input_size is not None and tuple(model.inputs[0].shape[1:3]) not in ((None, None), tuple(input_size)):
            raise ValueError(f"{name!r}: its Keras builder returns a model with a fixed input size "
                             f"{tuple(model.inputs[0].shape[1:3])}; cannot build it at {tuple(input_size)}")
        return model
    from tf_impl.nn import build_model

    _, c, h, w = spec.default_shape
    size = tuple(input_size) if input_size is not None else (h, w) if spec.fixed_size else (None, None)
    return build_model(model, (*size, spec.input_channels(**overrides)), name)
