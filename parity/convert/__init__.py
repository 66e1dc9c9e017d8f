"""Automatic twins: a torch module or a Keras model in, its twin in the other framework out, with the
weights already transferred. The twin obeys the naming rule of the hand-written twins (a Keras layer is
named after the torch module path of its twin; a torch module path after the Keras layer name), so the
transfer, the engine, the trace, the summaries and the port treat it like any registry pair.

- torch -> Keras (:mod:`parity.convert.from_torch`): a ``torch.fx`` trace, each node mapped onto the
  ``tf_impl.nn`` facade's leaves, which hold every numerics rule.
- Keras -> torch (:mod:`parity.convert.from_keras`): the Keras functional graph, each layer mapped onto a
  torch module.

Both track which axis is channels with :mod:`parity.layout`.
"""
from __future__ import annotations


def twin(model, input_shape=None):
    """The automatic twin of ``model``, its weights already transferred: a ``keras.Model`` (NHWC) for a
    torch module, traced at ``input_shape`` (N, C, H, W; required), or a torch ``nn.Module`` (NCHW, eval
    mode) for a Keras model (``input_shape`` unused). Raises :class:`parity.UnsupportedOpError` for anything
    no converter maps."""
    from torch import nn

    from tf_impl.backend import keras

    if isinstance(model, nn.Module):
        from parity.convert.from_torch import to_keras
        from parity.errors import InputShapeError

        if input_shape is None:
            raise InputShapeError(f"the Keras twin of a torch module ({type(model).__name__}) needs "
                                  f"input_shape=(N, C, H, W) to trace it; got None")
        return to_keras(model, tuple(input_shape))
    if isinstance(model, keras.Model):
        from parity.convert.from_keras import to_torch

        return to_torch(model)
    raise TypeError(f"twin expects a torch.nn.Module or a keras.Model, got {type(model).__name__}")
