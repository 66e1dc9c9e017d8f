"""Training parity: do the twins train alike? BatchNorm updates, gradients and optimizer steps compared
step by step (``parity.train_check``, ``parity train-check``).

- :mod:`parity.training.optimizers`: the optimizer table (torch optimizer <-> ``tf_impl.optim`` twin);
- :mod:`parity.training.losses`: the loss table and the classifier rule;
- :mod:`parity.training.steps`: the step loop and the comparisons;
- :mod:`parity.training.check`: :func:`train_check` and :class:`TrainReport`.
"""
from parity.training.check import TrainReport, train_check

__all__ = ["train_check", "TrainReport"]
