"""Parameter counts in each framework and in each ONNX file, reconciled.

- torch: ``trainable`` = parameters; ``statistics`` = floating buffers (BatchNorm running mean and
  variance). ``num_batches_tracked`` is an integer counter and is not counted.
- Keras: ``trainable`` = trainable weights; ``statistics`` = non-trainable weights. Keras's ``weights``
  leave out Dropout's seed-generator state, as ``count_params()`` does.
- ONNX: the number of floating-point elements in initializers and Constant nodes of rank 1 or more
  (rank-0 scalars are operator constants, such as the BatchNorm eps that tf2onnx writes), less
  single-element tensors of rank 2 or more: scalars that tf2onnx's transpose optimizer broadcast to
  ``(1, 1, 1, 1)`` (the ``+ k`` of LocalResponseNorm). A weight of shape ``(1, 1)`` would be missed; none of
  our twins has one. torch's exporter folds a BatchNorm that follows a conv into that conv: its 4*C
  statistics and affine terms vanish and the conv gains a C bias if it had none.
  :func:`torch_onnx_expected` computes that figure from the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn


@dataclass(frozen=True)
class ParamCount:
    trainable: int
    statistics: int

    @property
    def total(self) -> int:
        return self.trainable + self.statistics


def torch_count(module: nn.Module) -> ParamCount:
    stats = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return ParamCount(sum(p.numel() for p in module.parameters()), stats)


def keras_count(model) -> ParamCount:
    size = lambda vs: int(sum(np.prod(v.shape) for v in vs))  # noqa: E731
    return ParamCount(size(model.trainable_weights), size(model.non_trainable_weights))


_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def onnx_count(model: onnx.ModelProto) -> int:
    """Floating-point elements held by initializers and Constant nodes of rank >= 1, less broadcast scalars
    (one element, rank >= 2). External data is not loaded: only the dims are read."""
    tensors = list(model.graph.initializer) + [a.t for n in model.graph.node if n.op_type == "Constant"
                                               for a in n.attribute if a.name == "value"]
    def is_parameter(t) -> bool:
        return t.data_type in _FLOATS and len(t.dims) > 0 and not (len(t.dims) > 1 and np.prod(t.dims) == 1)

    return sum(int(np.prod(t.dims)) for t in tensors if is_parameter(t))


def folded_batchnorms(module: nn.Module, sample: torch.Tensor) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, bn) pairs where the BatchNorm reads a conv's output directly, found by running ``sample``."""
    producers, pairs, hooks = {}, [], []

    def on_conv(m, inputs, output):
        producers[id(output)] = (m, output)  # the output is kept alive: a freed tensor's id can be reused

    def on_bn(m, inputs):
        conv, output = producers.get(id(inputs[0]), (None, None))
        if conv is not None and output is inputs[0]:
            pairs.append((conv, m))

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_pre_hook(on_bn))
    try:
        with torch.no_grad():
            module(sample)
    finally:
        for h in hooks:
            h.remove()
    return list({id(bn): (conv, bn) for conv, bn in pairs}.values())


def torch_onnx_expected(module: nn.Module, sample: torch.Tensor) -> int:
    """Float elements torch's exporter should write: all parameters and statistics, less what folding
    removes (a folded BatchNorm's 4*C, or 2*C without affine terms), plus the bias each folded conv gains
    when it had none, plus a scale of ones and a bias of zeros (2*C) for each BatchNorm without affine terms
    that stays a BatchNormalization node (ONNX's needs them)."""
    count = torch_count(module).total
    folded = folded_batchnorms(module, sample)
    for conv, bn in folded:
        count -= (4 if bn.affine else 2) * bn.num_features
        if conv.bias is None:
            count += conv.out_channels
    folded_ids = {id(bn) for _, bn in folded}
    count += sum(2 * m.num_features for m in module.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.affine and id(m) not in folded_ids)
    return count


def keras_onnx_expected(model) -> int:
    """Float elements our Keras exporter writes: every weight, as-is (it folds nothing)."""
    return keras_count(model).total

