"""Tolerances of the training check, per float type, and the measurements they come from."""
from parity.training.steps import Tolerances

TOLERANCES = {
    "float64": Tolerances(loss=1e-9, grad=1e-6, update=1e-6, reason="(to be measured)"),
    "float32": Tolerances(loss=1e-5, grad=1e-4, update=1e-3, reason="(to be measured)"),
}
