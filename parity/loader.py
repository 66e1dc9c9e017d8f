"""``MODULE:CALLABLE`` targets: a model from outside the registry (``torchvision.models:resnet18``,
``keras.applications:MobileNetV3Small``), imported and called with keyword arguments (``--kwargs`` JSON)."""
from __future__ import annotations

import importlib
import json

from parity.errors import UnknownModelError


def is_target(text: str) -> bool:
    """Whether ``text`` names a callable (``MODULE:CALLABLE``) rather than a registry entry."""
    return ":" in text


def parse_kwargs(text: str | None) -> dict:
    """``--kwargs``: a JSON object (``'{"weights": null}'``)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnknownModelError(f"--kwargs must be a JSON object such as '{{\"weights\": null}}', got {text!r} "
                                f"({exc.msg})") from None
    if not isinstance(value, dict):
        raise UnknownModelError(f"--kwargs must be a JSON object, got {type(value).__name__}: {text!r}")
    return value


def import_module(module: str):
    """``importlib.import_module`` with our import rules: torchvision through its shim
    (:func:`parity.torchvision_compat.import_torchvision`), keras after the TensorFlow backend pin."""
    if module == "torchvision" or module.startswith("torchvision."):
        from parity.torchvision_compat import import_torchvision

        import_torchvision()
    if module == "keras" or module.startswith("keras."):
        import tf_impl.backend  # noqa: F401  (pins the TensorFlow backend before keras is imported)
    return importlib.import_module(module)


def load(target: str, kwargs: dict | None = None):
    """Imports ``MODULE:CALLABLE``, calls it with ``kwargs`` and returns the model: a torch module (in eval
    mode) or a Keras model. Every failure is an :class:`UnknownModelError` naming the target and the cause."""
    from torch import nn

    kwargs = kwargs or {}
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UnknownModelError(f"expected a registry name or MODULE:CALLABLE (torchvision.models:resnet18), "
                                f"got {target!r}")
    try:
        module = import_module(module_name)
    except Exception as exc:  # ImportError and whatever the module raises while importing
        raise UnknownModelError(f"cannot import {module_name!r} for {target!r}: {type(exc).__name__}: {exc}") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise UnknownModelError(f"{module_name!r} has no attribute {attr!r} (from {target!r})")
    if not callable(fn):
        raise UnknownModelError(f"{target!r} is a {type(fn).__name__}, expected a callable that returns a model")
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        model = fn(**kwargs)
    except Exception as exc:  # a download refused offline, a bad keyword: the user's call, their words
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        hint = (" (pass --kwargs '{\"weights\": null}' to build it without downloading weights)"
                if "weights" not in kwargs and ("download" in first.lower() or "url" in first.lower()) else "")
        raise UnknownModelError(f"calling {target}({args}) failed: {type(exc).__name__}: {first}{hint}") from None
    from tf_impl.backend import keras

    if isinstance(model, nn.Module):
        return model.eval()
    if isinstance(model, keras.Model):
        return model
    raise UnknownModelError(f"{target}({args}) returned a {type(model).__name__}; expected a torch.nn.Module "
                            f"or a keras.Model")


def default_name(target: str) -> str:
    """The callable's own name: ``torchvision.models:resnet18`` -> ``resnet18``."""
    return target.partition(":")[2].split(".")[-1]
