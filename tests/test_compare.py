"""``pair_error`` cannot pass on NaN, Inf, an empty tensor, a missing output or a differing shape."""
import json

import numpy as np
import pytest

from parity.compare import pair_error

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
