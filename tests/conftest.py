"""Small twin pairs for fast unit tests of the library."""
import numpy as np
import pytest

import parity
from parity.compare import run_twins
from parity.randomize import randomize_torch

SMALL_ASPP = dict(in_channels=8, filters=4)  # same structure as the article's ASPP, tiny


@pytest.fixture
def small_pair():
    """(torch ASPP randomised, fresh Keras ASPP) with 8 input channels and 4 filters."""
    return randomize_torch(parity.build("aspp", "torch", **SMALL_ASPP), seed=1), parity.build("aspp", "keras", **SMALL_ASPP)


def keras_weights(model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in model.weights]


def run_both(torch_model, keras_model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The single output of each twin for NCHW ``x``, both returned NCHW."""
    outs = run_twins(torch_model, keras_model, x)
    return outs["torch"][0], outs["keras"][0]
