"""``pair_error`` cannot pass on NaN, Inf, an empty tensor, a missing output or a differing shape; a check
cannot pass on an output that cannot show an error (a saturated softmax)."""
import json

import numpy as np
import pytest

from parity.compare import pair_error, saturated

A = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)


def _with(value, at=(0, 1, 2)):
    b = A.copy()
    b[at] = value
    return b


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["ref", "other"])
def test_a_non_finite_value_on_either_side_fails(bad, side):
    ref, other = (_with(bad), A) if side == "ref" else (A, _with(bad))
    err = pair_error([ref], [other], labels=("torch", "keras"))
    print(err)
    assert not err.within(1e-5) and err.rel == float("inf")
    assert err.problems == (f"{'torch' if side == 'ref' else 'keras'} output 0: 1 of 24 values are NaN or Inf",)


def test_the_same_nan_on_both_sides_still_fails():
    err = pair_error([_with(np.nan)], [_with(np.nan)])
    assert not err.within(1.0) and len(err.problems) == 2


def test_inf_against_minus_inf_is_not_a_zero_error():  # inf/inf is NaN, which max() used to drop
    err = pair_error([np.array([np.inf, 1.0])], [np.array([-np.inf, 1.0])])
    assert err.rel == float("inf") and not err.within(1e-5)


@pytest.mark.parametrize("ref, other, why", [
    ([], [], "gives 0 outputs"),
    ([A], [], "gives 1 outputs, other 0"),
    ([A, A], [A], "gives 2 outputs, other 1"),
    ([np.zeros((0, 3))], [np.zeros((0, 3))], "empty"),
    ([A], [A.reshape(2, 12)], "shape"),
])
def test_missing_empty_or_misshapen_outputs_fail(ref, other, why):
    err = pair_error(ref, other)
    assert not err.within(1e-5) and why in " ".join(err.problems)


def test_a_finite_error_is_measured():
    err = pair_error([A], [A + np.float32(1e-3)])
    print(err)
    assert err.problems == () and err.max_abs == pytest.approx(1e-3, rel=1e-3)
    assert err.rel == pytest.approx(1e-3, rel=1e-3) and err.within(2e-3) and not err.within(5e-4)


def test_json_stays_rfc_8259_valid():
    text = json.dumps(pair_error([A], [_with(np.inf)]).to_json(), allow_nan=False)
    assert json.loads(text)["rel"] is None


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("values, expected", [
    (_softmax(np.random.default_rng(0).normal(0, 1e4, (2, 1000))), True),  # a random classifier's softmax
    (np.zeros((1, 4, 5, 5), np.float32), True),
    (_softmax(np.random.default_rng(0).normal(0, 3, (2, 1000))), False),
    (np.float32([0.0, 1.0, 0.5]), False),
    (np.zeros((0, 3), np.float32), False),  # empty: pair_error's own failure
], ids=["one-hot-softmax", "zeros", "softmax", "one-value-between", "empty"])
def test_saturated_outputs(values, expected):
    assert saturated(values) is expected


def test_a_check_fails_on_a_saturated_output():
    """Two runtimes agree to 1e-44 on a one-hot softmax whatever their weights: the check names the output
    and fails instead of printing that PASS."""
    from torch import nn

    import parity

    class Saturating(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.gate = nn.Conv2d(3, 4, 3), nn.Hardsigmoid()

        def forward(self, x):
            return self.gate(self.conv(x) * 1e4)

    report = parity.check(Saturating().eval(), input_shape=(1, 3, 9, 11), onnx=False)
    print(report)
    assert not report.ok and report.errors["torch ~ keras"].rel < 1e-12
    assert any("torch output 0 at 1x3x9x11: every value is within 1e-06 of 0 or 1" in p for p in report.problems)
