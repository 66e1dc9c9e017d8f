"""``torch.optim``'s SGD, Adam, AdamW and RMSprop as Keras 3 optimizers: torch's formulas, torch's argument
names and defaults, so that a Keras twin keeps training as its torch original does.

Keras's own optimizers differ from torch's (read in Keras 3.15.1 and torch 2.13; measured in
``parity/test_train_traps.py``):

- Adam: torch adds eps to the bias-corrected ``sqrt(v) / sqrt(1 - beta2^t)``; Keras folds the correction
  into the step size and adds eps to the raw ``sqrt(v)``, so its eps acts as ``eps / sqrt(1 - beta2^t)`` in
  torch's terms (32x torch's at step 1). No constant Keras epsilon reproduces torch's, hence :class:`Adam`.
- RMSprop: torch adds eps outside the square root (``sqrt(v) + eps``), Keras inside (``sqrt(v + eps)``);
  torch's ``alpha`` is Keras's ``rho`` (defaults 0.99 and 0.9); with momentum, Keras's buffer holds
  ``lr * g / ...`` where torch's holds ``g / ...`` (as for SGD below).
- SGD with momentum: torch keeps a buffer of gradients and multiplies by the current learning rate;
  Keras keeps a velocity that already holds past learning rates. Equal for a constant learning rate, not
  once the rate changes mid-run.
- weight decay: torch's ``weight_decay`` is L2 added to the gradient for SGD, Adam and RMSprop (so it
  goes through momentum and Adam's moments) and decoupled (``p *= 1 - lr * wd``) for AdamW only; Keras 3's
  ``weight_decay`` is decoupled for every optimizer.

Bias corrections are computed in float64 and rounded once, as torch computes them in Python floats.
Written with ``keras.ops`` only and importing only keras, so a standalone Keras file can carry it.
"""
from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "backbone_parity"


class _TorchOptimizer(keras.optimizers.Optimizer):
    """Shared plumbing: torch's ``lr`` is Keras's ``learning_rate``; Keras's own (decoupled) weight decay
    stays off, each subclass applies torch's."""

    def __init__(self, lr, weight_decay, name, **kwargs):
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: expected lr >= 0 and weight_decay >= 0, got lr={lr}, "
                             f"weight_decay={weight_decay}")
        super().__init__(learning_rate=lr, name=name, **kwargs)
        self.torch_weight_decay = float(weight_decay)

    def slot(self, slots, variable):
        return slots[self._get_variable_index(variable)]

    def l2(self, gradient, variable):
        """torch's coupled weight decay: ``grad + weight_decay * param``."""
        return gradient + variable * self.torch_weight_decay if self.torch_weight_decay else gradient

    def get_config(self):
        config = super().get_config()
        for key in ("learning_rate", "weight_decay"):
            config.pop(key, None)
        return {**config, "lr": float(ops.convert_to_numpy(self.learning_rate)),
                "weight_decay": self.torch_weight_decay}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SGD(_TorchOptimizer):
    """``torch.optim.SGD``: ``buf = momentum * buf + (1 - dampening) * g`` (the first buffer is ``g``),
    ``p -= lr * (g + momentum * buf if nesterov else buf)``; ``weight_decay`` is L2 in ``g``."""

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, name="SGD",
                 **kwargs):
        super().__init__(lr, weight_decay, name, **kwargs)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening (torch's rule), got "
                             f"momentum={momentum}, dampening={dampening}")
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.buffers = self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = self.l2(ops.cast(gradient, variable.dtype), variable)
        if self.momentum:
            buf = self.slot(self.buffers, variable)
            new = ops.where(ops.equal(self.iterations, 0), g, buf * self.momentum + g * (1.0 - self.dampening))
            self.assign(buf, new)
            g = g + new * self.momentum if self.nesterov else new
        self.assign_sub(variable, g * lr)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Adam(_TorchOptimizer):
    """``torch.optim.Adam``: ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g^2``,
    ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``. ``weight_decay`` is L2 in ``g``
    unless ``decoupled_weight_decay`` (then ``p *= 1 - lr * weight_decay`` first: :class:`AdamW`)."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 decoupled_weight_decay=False, name="Adam", **kwargs):
        super().__init__(lr, weight_decay, name, **kwargs)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.amsgrad, self.decoupled_weight_decay = bool(amsgrad), bool(decoupled_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.exp_avgs, self.exp_avg_sqs = self.add_optimizer_variables(variables, ["exp_avg", "exp_avg_sq"])
        self.max_exp_avg_sqs = self.add_optimizer_variables(variables, "max_exp_avg_sq") if self.amsgrad else []

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        g = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, "float64")
        beta1, beta2 = self.betas
        bias_correction1 = 1.0 - ops.power(ops.convert_to_tensor(beta1, "float64"), step)
        bias_correction2_sqrt = ops.sqrt(1.0 - ops.power(ops.convert_to_tensor(beta2, "float64"), step))
        lr = ops.cast(learning_rate, "float64")
        if self.decoupled_weight_decay:
            if self.torch_weight_decay:
                self.assign(variable, variable * ops.cast(1.0 - lr * self.torch_weight_decay, dtype))
        else:
            g = self.l2(g, variable)
        m, v = self.slot(self.exp_avgs, variable), self.slot(self.exp_avg_sqs, variable)
        self.assign(m, m + (g - m) * (1.0 - beta1))
        self.assign(v, v * beta2 + g * g * (1.0 - beta2))
        if self.amsgrad:
            v_max = self.slot(self.max_exp_avg_sqs, variable)
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        denom = ops.sqrt(v) / ops.cast(bias_correction2_sqrt, dtype) + self.eps
        self.assign_sub(variable, ops.cast(lr / bias_correction1, dtype) * m / denom)

    def get_config(self):
        return {**super().get_config(), "betas": self.betas, "eps": self.eps, "amsgrad": self.amsgrad,
                "decoupled_weight_decay": self.decoupled_weight_decay}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AdamW(Adam):
    """``torch.optim.AdamW``: :class:`Adam` with decoupled weight decay, default 1e-2 (torch's)."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, name="AdamW",
                 **kwargs):
        kwargs.pop("decoupled_weight_decay", None)  # always True; a saved config carries it
        super().__init__(lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True, name=name, **kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RMSprop(_TorchOptimizer):
    """``torch.optim.RMSprop``: ``v = alpha * v + (1 - alpha) * g^2``, ``avg = sqrt(v - mean_g^2 if
    centered else v) + eps`` (eps outside the root), ``p -= lr * g / avg``, or with momentum
    ``buf = momentum * buf + g / avg``, ``p -= lr * buf``. ``weight_decay`` is L2 in ``g``."""

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 name="RMSprop", **kwargs):
        super().__init__(lr, weight_decay, name, **kwargs)
        self.alpha, self.eps, self.momentum, self.centered = float(alpha), float(eps), float(momentum), bool(centered)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.square_avgs = self.add_optimizer_variables(variables, "square_avg")
        self.grad_avgs = self.add_optimizer_variables(variables, "grad_avg") if self.centered else []
        self.buffers = self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = self.l2(ops.cast(gradient, variable.dtype), variable)
        square_avg = self.slot(self.square_avgs, variable)
        self.assign(square_avg, square_avg * self.alpha + g * g * (1.0 - self.alpha))
        if self.centered:
            grad_avg = self.slot(self.grad_avgs, variable)
            self.assign(grad_avg, grad_avg + (g - grad_avg) * (1.0 - self.alpha))
            avg = ops.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = ops.sqrt(square_avg)
        avg = avg + self.eps
        if self.momentum:
            buf = self.slot(self.buffers, variable)
            self.assign(buf, buf * self.momentum + g / avg)
            self.assign_sub(variable, buf * lr)
        else:
            self.assign_sub(variable, g / avg * lr)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}
