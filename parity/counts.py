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

    def __str__(self) -> str:
        """``526,336 (525,312 trainable + 1,024 statistics)``: how counts read in messages and tables."""
        return f"{self.total:,} ({self.trainable:,} trainable + {self.statistics:,} statistics)"


def torch_count(module: nn.Module) -> ParamCount:
    stats = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return ParamCount(sum(p.numel() for p in module.parameters()), stats)


def keras_count(model) -> ParamCount:
    """Floating-point weights only: an integer counter (``Normalization``'s ``count``) is no weight, as
    torch's ``num_batches_tracked`` is not."""
    size = lambda vs: int(sum(np.prod(v.shape) for v in vs if "float" in str(v.dtype)))  # noqa: E731
    return ParamCount(size(model.trainable_weights), size(model.non_trainable_weights))


def state_bytes(model) -> int:
    """Bytes of every tensor a checkpoint of ``model`` holds: a torch state_dict (counters included) or all
    Keras weights. What a file of the model's weights needs on disk, before the format's own overhead."""
    if isinstance(model, nn.Module):
        return sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)


_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def onnx_count(model: onnx.ModelProto, stored_only: bool = False) -> int:
    """Floating-point elements held by initializers and Constant nodes of rank >= 1, less broadcast scalars
    (one element, rank >= 2) and a ``Resize``'s ``roi`` and ``scales`` inputs (op arguments: tf2onnx writes
    the scales of a resize as four floats). External data is not loaded: only the dims are read.

    ``stored_only``: only the initializers kept in the external data file, which is where our Keras exporter
    writes every weight (:func:`keras_onnx_expected`); what tf2onnx folds into the graph stays inline."""
    tensors = [(t.name, t) for t in model.graph.initializer  # (the name the graph reads it by, tensor)
               if not stored_only or t.data_location == onnx.TensorProto.EXTERNAL]
    if not stored_only:
        tensors += [(n.output[0], a.t) for n in model.graph.node if n.op_type == "Constant"
                    for a in n.attribute if a.name == "value"]
    arguments = {name for n in model.graph.node if n.op_type == "Resize" for name in n.input[1:3]}

    def is_parameter(name, t) -> bool:
        if name in arguments:
            return False
        return t.data_type in _FLOATS and len(t.dims) > 0 and not (len(t.dims) > 1 and np.prod(t.dims) == 1)

    return sum(int(np.prod(t.dims)) for name, t in tensors if is_parameter(name, t))


def _ends_in_conv(m: nn.Module) -> bool:
    """Whether a module's output is a conv's output: ``nn.Conv2d`` and the Keras -> torch facade's
    ``SeparableConv2D`` (depthwise, then pointwise), unless the facade applies an activation after it."""
    from torch_impl import keras_nn

    return isinstance(m, (nn.Conv2d, keras_nn.SeparableConv2D)) and getattr(m, "activation", "linear") == "linear"


def folded_batchnorms(module: nn.Module, sample: torch.Tensor) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, bn) pairs where the BatchNorm reads a conv's output directly, or the output of a BatchNorm folded
    into that conv (torch's exporter folds a chain: conv -> BN -> BN is one Conv node), found by running
    ``sample``."""
    producers, pairs, hooks = {}, [], []

    def on_conv(m, inputs, output):
        producers[id(output)] = (m, output)  # the output is kept alive: a freed tensor's id can be reused

    def on_bn(m, inputs, output):
        conv, produced = producers.get(id(inputs[0]), (None, None))
        if conv is not None and produced is inputs[0]:
            pairs.append((conv, m))
            producers[id(output)] = (conv, output)

    for m in module.modules():
        if _ends_in_conv(m):
            hooks.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(on_bn))
    try:
        with torch.no_grad():
            module(sample)
    finally:
        for h in hooks:
            h.remove()
    return list({id(bn): (conv, bn) for conv, bn in pairs}.values())


def torch_onnx_expected(module: nn.Module, sample: torch.Tensor) -> int:
    """Float elements torch's exporter should write: all parameters and statistics, less what folding removes
    (each folded BatchNorm's tensors: 4*C, less C for each of gamma and beta it lacks), plus the bias a conv with
    folded BatchNorms gains when it had none (once, however many fold into it), plus a scale of ones or a bias of
    zeros (C each) for each BatchNorm that lacks them and stays a BatchNormalization node (ONNX's needs both),
    plus the constants a twin of a Keras model holds (:func:`torch_constants`)."""
    count = torch_count(module).total + torch_constants(module)
    folded = folded_batchnorms(module, sample)
    for conv, bn in folded:
        count -= torch_count(bn).total  # 4*C; 3*C for a Keras BatchNormalization(scale=False), 2*C for affine=False
    count += sum(conv.out_channels for conv in {id(c): c for c, _ in folded}.values() if conv.bias is None)
    folded_ids = {id(bn) for _, bn in folded}
    count += sum(m.num_features * ((m.weight is None) + (m.bias is None)) for m in module.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in folded_ids)
    return count


def keras_onnx_expected(model) -> int:
    """Float elements of our Keras export's data file (``onnx_count(..., stored_only=True)``): every weight,
    as-is (it folds nothing; an adapted ``Normalization`` reads its variables in the export). The constants
    tf2onnx folds into the graph are not weights and stay inline: a ``Normalization``'s given mean and
    variance, a ``Rescaling``'s lists, and on a map of static size what the custom layers compute from the
    size (resize positions, AvgPool2D's divisor mask: 4 to 160 floats that a count of every initializer took
    for weights)."""
    return keras_count(model).total


def _constant_floats(values) -> int:
    return sum(len(v) for v in values if isinstance(v, (list, tuple)))


def torch_constants(module: nn.Module) -> int:
    """The same constants in a twin built on ``torch_impl.keras_nn`` (the Keras -> torch facade), which holds
    them as Python lists, as Keras does."""
    from torch_impl import keras_nn

    count = 0
    for m in module.modules():
        if isinstance(m, keras_nn.Normalization) and m.constants:
            count += _constant_floats([m.mean_value, m.variance_value])
        elif isinstance(m, keras_nn.Rescaling):
            count += _constant_floats([m.scale, m.offset])
    return count

