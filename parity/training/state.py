"""Both twins' tensors under torch's names and in torch's layout: weights, statistics and gradients.

The Keras side goes through the transfer (``parity.transfer``, exact): its weights are transferred into a
scratch copy of the torch model (the *probe*), its gradients likewise (written into the Keras variables for
the transfer, then the weights are put back bit for bit). So every comparison of the training check is
made tensor by tensor, named as torch names it (``layer1.0.bn1.running_var``).
"""
from __future__ import annotations

import numpy as np
import torch

from parity.weight_transfer import torch_tensors, transfer
from tf_impl.backend import tf


def as_list(out) -> list:
    """A model's outputs as a list: a tensor, or a tuple / list / dict of them in order."""
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def statistic_names(module: torch.nn.Module) -> set:
    """``path.name`` of every floating buffer (BatchNorm running statistics)."""
    return {f"{p}.{n}" if p else n for p, m in module.named_modules()
            for n, b in m.named_buffers(recurse=False) if b is not None and b.is_floating_point()}


def flat_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """Every parameter and floating buffer of ``module`` as a numpy copy, keyed ``path.name``, in definition
    order (``num_batches_tracked`` has no Keras twin and is left out)."""
    return {n: t.detach().numpy().copy() for n, t in flat_tensors(module).items()}


def keras_state(keras_model, probe: torch.nn.Module, move=transfer) -> dict[str, np.ndarray]:
    """The Keras model's weights in torch's layout and names, through ``probe`` (a torch twin) and
    ``move`` (``parity.transfer``)."""
    move(keras_model, probe)
    return flat_state(probe)


def keras_grads(keras_model, grads, probe: torch.nn.Module, move=transfer) -> dict[str, np.ndarray]:
    """The Keras gradients in torch's layout and names: written into the trainable variables, transferred
    into ``probe``, and the weights put back (bit for bit, also when the transfer raises)."""
    variables = keras_model.trainable_variables
    saved = [v.numpy() for v in variables]
    try:
        for v, g in zip(variables, grads):
            v.assign(tf.zeros_like(v) if g is None else g)
        return keras_state(keras_model, probe, move)
    finally:
        for v, s in zip(variables, saved):
            v.assign(s)


def trainable(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """``path.name`` -> parameter, for every parameter that requires a gradient, in definition order."""
    return {f"{p}.{n}" if p else n: t for p, m in module.named_modules()
            for n, t in m.named_parameters(recurse=False) if t.requires_grad}


def torch_grads(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The gradient of every parameter that requires one (zeros where backward left none)."""
    return {n: (torch.zeros_like(t) if t.grad is None else t.grad).numpy().copy()
            for n, t in trainable(module).items()}


def flat_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and floating buffer of ``module`` (the tensors themselves), keyed ``path.name``."""
    return {f"{p}.{n}" if p else n: t for p, tensors in torch_tensors(module).items() for n, t in tensors.items()}
