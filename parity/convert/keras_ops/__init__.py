"""The Keras -> torch converter table, one module per family of layers; importing this package registers
every converter in :data:`CONVERTERS`."""
from parity.convert.keras_ops import activation, arithmetic, conv, norm, pool, shape  # noqa: F401  (they register)
from parity.convert.keras_ops.base import CONVERTERS, Call, Spec, Value, supported, torch_layout

__all__ = ["CONVERTERS", "Call", "Spec", "Value", "supported", "torch_layout"]
