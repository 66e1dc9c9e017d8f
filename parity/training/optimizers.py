"""The optimizer table: each name of ``parity train-check --optimizer`` is a torch optimizer and the Keras
optimizer that reproduces it (``tf_impl.optim``), with the options it takes.

An entry fixes what its name means (``sgd-momentum`` is momentum 0.9, ``nesterov`` adds Nesterov) and lists
the options a caller may change, with torch's defaults; anything else is refused with :class:`InvalidArgumentError`.
The learning rate defaults to 1e-2 for the SGD family (torch's default 1e-3 makes steps of ~1e-5 of a weight,
where float32 rounding is already 1e-2 of the step, and the step is what the check compares) and to torch's
default elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from parity.errors import InvalidArgumentError
from tf_impl import optim as keras_optim


@dataclass(frozen=True)
class Recipe:
    """A torch optimizer class, its Keras twin, the arguments the name fixes and the options with defaults."""

    torch_cls: type
    keras_cls: type
    fixed: dict
    defaults: dict = field(default_factory=dict)

    def options(self, given: dict, name: str) -> dict:
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise InvalidArgumentError(f"optimizer {name!r} takes options {', '.join(sorted(self.defaults))}; got "
                              f"{', '.join(unknown)}")
        return {**self.defaults, **given, **self.fixed}


OPTIMIZERS: dict[str, Recipe] = {}


def optimizer(name: str, torch_cls, keras_cls, fixed=None, **defaults):
    """Registers ``name`` in :data:`OPTIMIZERS`."""
    OPTIMIZERS[name] = Recipe(torch_cls, keras_cls, dict(fixed or {}), defaults)


optimizer("sgd", torch.optim.SGD, keras_optim.SGD, lr=1e-2, weight_decay=0.0)
optimizer("sgd-momentum", torch.optim.SGD, keras_optim.SGD, dict(nesterov=False), momentum=0.9, lr=1e-2,
          weight_decay=0.0, dampening=0.0)
optimizer("nesterov", torch.optim.SGD, keras_optim.SGD, dict(nesterov=True), momentum=0.9, lr=1e-2,
          weight_decay=0.0)
optimizer("adam", torch.optim.Adam, keras_optim.Adam, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          amsgrad=False)
optimizer("adamw", torch.optim.AdamW, keras_optim.AdamW, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
          weight_decay=1e-2, amsgrad=False)
optimizer("rmsprop", torch.optim.RMSprop, keras_optim.RMSprop, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
          momentum=0.0, centered=False)


def recipe(name: str) -> Recipe:
    if name not in OPTIMIZERS:
        raise InvalidArgumentError(f"unknown optimizer {name!r}; expected one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def make_pair(name: str, **options):
    """``(torch optimizer factory, Keras optimizer, resolved options)`` for optimizer ``name``; the factory
    takes the torch parameters (the Keras optimizer is built on its first step)."""
    rec = recipe(name)
    resolved = rec.options(options, name)
    try:
        rec.torch_cls([torch.zeros(1, requires_grad=True)], **resolved)  # torch's own argument checks, now
        keras_opt = rec.keras_cls(**resolved)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"optimizer {name!r} with {resolved}: {exc}") from None
    return (lambda params: rec.torch_cls(params, **resolved)), keras_opt, resolved


def set_lr(opt, lr: float) -> None:
    """The learning rate of a torch or Keras optimizer, between steps (what a torch ``lr_scheduler`` does)."""
    if isinstance(opt, torch.optim.Optimizer):
        for group in opt.param_groups:
            group["lr"] = lr
    else:
        opt.learning_rate = lr
