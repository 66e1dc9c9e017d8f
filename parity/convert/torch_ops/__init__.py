"""Converters of the torch -> Keras direction, one file per family; importing this package fills the table
(:mod:`parity.convert.torch_ops.table`)."""
from parity.convert.torch_ops import (activation, arith, conv, linear, norm, pool, reduce, resize,  # noqa: F401
                                      shape)
from parity.convert.torch_ops.table import FUNCTIONS, METHODS, MODULES, supported  # noqa: F401
