"""Keras ``BatchNormalization`` that trains like torch's ``BatchNorm2d``: the moving variance takes the
unbiased batch variance.

In training mode both frameworks normalise with the biased batch variance (divide by n = N*H*W), but torch
updates ``running_var`` with the unbiased one (divide by n - 1) while Keras updates ``moving_variance``
with the biased one. The gap is a factor n / (n - 1) on each update: 2.9e-4 relative on ``resnet_conv_bn``'s
running variance after one step at 2x3x32x32, 1.0 at n = 2 (``parity/test_batch_norm.py``).

Inference is Keras's own code path, unchanged, so ONNX exports and inference outputs are identical to
those of ``keras.layers.BatchNormalization``. Written with ``keras`` and ``keras.ops`` only,
so that ``parity convert`` copies it into a standalone Keras file as it is (any backend).
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="backbone_parity")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training-mode update is torch's::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * mean(batch)
        moving_variance = momentum * moving_variance + (1 - momentum) * var(batch) * n / (n - 1)

    with ``momentum`` in Keras's convention (torch's momentum is ``1 - momentum``) and n the number of
    values per channel. Like torch, a batch with one value per channel cannot train (its unbiased variance
    is undefined). ``renorm`` and ``synchronized`` have no torch ``BatchNorm2d`` counterpart and are refused.

    ``trainable = False`` still means Keras's inference mode (moving statistics, no update), as for the base
    class; torch's equivalent is ``module.eval()`` on that BatchNorm, not ``requires_grad_(False)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.renorm or self.synchronized:
            raise ValueError(f"TorchBatchNormalization mirrors torch's BatchNorm2d, which has neither renorm nor "
                             f"synchronized statistics; got renorm={self.renorm}, synchronized={self.synchronized}")

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        if mask is not None:
            raise ValueError("TorchBatchNormalization does not take a mask in training mode (torch's BatchNorm2d "
                             "has none)")
        x = keras.ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # as the base class: float32 at least
        rank = len(x.shape)
        axes = [a for a in range(rank) if a != self.axis % rank]
        n = _count(x, axes)
        mean, variance = keras.ops.moments(x, axes=axes)
        m = self.momentum
        unbiased = variance * (n / (n - 1))  # a Python float n stays exact in float64 (keras.ops.cast would go via float32)
        self.moving_mean.assign(keras.ops.cast(self.moving_mean, x.dtype) * m + mean * (1.0 - m))
        self.moving_variance.assign(keras.ops.cast(self.moving_variance, x.dtype) * m + unbiased * (1.0 - m))
        gamma = keras.ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = keras.ops.cast(self.beta, x.dtype) if self.center else None
        outputs = keras.ops.batch_normalization(x, mean, variance, axis=self.axis, offset=beta, scale=gamma,
                                          epsilon=self.epsilon)
        return keras.ops.cast(outputs, self.compute_dtype)


def _count(x, axes):
    """Values per channel: an int when the shape is known (a count of 1 raises, as torch does), else a
    tensor."""
    dims = [x.shape[a] for a in axes]
    if None not in dims:
        n = 1
        for d in dims:
            n *= d
        if n <= 1:
            raise ValueError(f"expected more than 1 value per channel when training, got input shape "
                             f"{tuple(x.shape)} (torch's BatchNorm2d raises the same)")
        return float(n)
    shape, n = keras.ops.shape(x), 1
    for a in axes:
        n = n * shape[a]
    return keras.ops.cast(n, x.dtype)
