"""Converters of the torch -> Keras direction, one file per family; importing this package fills the table
(:mod:`parity.convert.torch_ops.table`)."""
from parity.convert.torch_ops import (activation, arith, conv, keras_nn, linear, norm, pool, reduce,  # noqa: F401
                                      resize, shape)
from parity.convert.torch_ops.table import METHODS, MODULES, function_converter, supported  # noqa: F401
