"""The layout rules (``parity.layout``), checked against numpy: whatever a plan does to the destination
tensor must equal the source op followed by the claimed layout."""
import numpy as np
import pytest

from parity import layout as L

RNG = np.random.default_rng(0)


def _dst(src: np.ndarray, p) -> np.ndarray:
    return src.transpose(p)


def _run_plan(dst: np.ndarray, plan: L.ReshapePlan) -> np.ndarray:
    if plan.pre is not None:
        dst = dst.transpose(plan.pre)
    return dst.reshape(plan.shape)


RESHAPES = [  # (source shape, target shape, layout of the input)
    ((2, 12, 5, 7), (2, 3, 4, 5, 7), L.TO_NHWC),  # ShuffleNet's split of the channels
    ((2, 4, 3, 5, 7), (2, 12, 5, 7), (0, 3, 4, 2, 1)),  # its merge after transpose(1, 2): needs a move
    ((2, 12, 5, 7), (2, 420), L.TO_NHWC),  # flatten(1) of an image: exact only after a move
    ((2, 12, 1, 1), (2, 12), L.TO_NHWC),  # flatten after a global pool: size-1 axes move nothing
    ((2, 12), (2, 12, 1, 1), (0, 1)),  # SE block's view(N, C, 1, 1)
    ((2, 5, 7, 12), (2, 35, 12), (0, 1, 2, 3)),  # tokens from channels-last
    ((1, 1, 1, 1), (1, 1), L.TO_NHWC),
    ((3, 1, 4), (1, 3, 4, 1), (2, 0, 1)),
    ((6, 5, 4), (2, 3, 20), (1, 2, 0)),
]


@pytest.mark.parametrize("src_in, src_out, p", RESHAPES)
def test_plan_reshape_equals_the_source_reshape(src_in, src_out, p):
    x = RNG.standard_normal(src_in)
    plan = L.plan_reshape(p, src_in, src_out)
    expected = _dst(x.reshape(src_out), plan.layout)
    got = _run_plan(_dst(x, p), plan)
    assert got.shape == expected.shape and np.array_equal(got, expected)
    for i, c in enumerate(plan.copies):
        if c is not None:
            pre_shape = _dst(x, p).transpose(plan.pre).shape if plan.pre else _dst(x, p).shape
            assert pre_shape[c] == plan.shape[i]


def test_plan_reshape_moves_data_only_when_it_must():
    assert L.plan_reshape(L.TO_NHWC, (2, 12, 5, 7), (2, 3, 4, 5, 7)).pre is None
    assert L.plan_reshape(L.TO_NHWC, (2, 12, 1, 1), (2, 12)).pre is None
    assert L.plan_reshape(L.TO_NHWC, (2, 12, 5, 7), (2, 420)).pre is not None
    shuffle_merge = L.plan_reshape((0, 3, 4, 2, 1), (2, 4, 3, 5, 7), (2, 12, 5, 7))
    assert shuffle_merge.pre == (0, 1, 2, 4, 3) and shuffle_merge.layout == L.TO_NHWC


def test_plan_reshape_marks_the_copied_axes():
    plan = L.plan_reshape(L.TO_NHWC, (2, 12, 5, 7), (2, 3, 4, 5, 7))
    assert plan.shape == (2, 5, 7, 3, 4)
    assert plan.copies == (0, 1, 2, None, None)  # N, H, W copied (may stay free); the channel split is fixed


def test_plan_reshape_refuses_a_size_change():
    with pytest.raises(ValueError, match="cannot reshape"):
        L.plan_reshape((0, 1), (2, 3), (7,))


@pytest.mark.parametrize("seed", range(20))
def test_random_permutes_and_transposes(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(2, 6))
    x = rng.standard_normal(tuple(int(s) for s in rng.integers(1, 5, rank)))
    p = tuple(rng.permutation(rank))
    perm = tuple(rng.permutation(rank))
    q = L.after_permute(p, perm)
    assert np.array_equal(_dst(x, p), _dst(x.transpose(perm), q))  # the destination tensor is reused as is
    target = tuple(rng.permutation(rank))
    assert np.array_equal(_dst(x, p).transpose(L.transpose_between(p, target)), _dst(x, target))


@pytest.mark.parametrize("seed", range(40))
def test_random_reshapes(seed):
    rng = np.random.default_rng(100 + seed)
    factors = [int(f) for f in rng.integers(1, 4, int(rng.integers(2, 6)))]
    src_in = tuple(factors)
    cut = sorted(rng.choice(len(factors) + 1, size=int(rng.integers(1, len(factors) + 1)), replace=False))
    src_out = tuple(int(np.prod(factors[a:b])) for a, b in zip([0, *cut], [*cut, len(factors)]) if b > a)
    for a, b in ((src_in, src_out), (src_out, src_in)):  # merges, then splits
        p = tuple(rng.permutation(len(a)))
        x = rng.standard_normal(a)
        plan = L.plan_reshape(p, a, b)
        assert np.array_equal(_run_plan(_dst(x, p), plan), _dst(x.reshape(b), plan.layout))


def test_axis_maps():
    assert L.dst_axis(L.TO_NHWC, 1) == 3 and L.dst_axis(L.TO_NHWC, -1) == 2
    assert L.dst_axis(L.TO_NCHW, -1) == 1  # Keras's channel axis is torch's dim 1
    assert L.expand_rank((0, 1, 2), 4) == (0, 1, 2, 3)
    assert L.expand_rank((1, 0), 4) == (0, 1, 3, 2)
    assert L.inverse(L.TO_NHWC) == L.TO_NCHW
    with pytest.raises(ValueError, match="out of range"):
        L.dst_axis(L.TO_NHWC, 4)


def test_array_helpers():
    x = RNG.standard_normal((2, 3, 5, 7))
    assert L.to_nhwc(x).shape == (2, 5, 7, 3) and np.array_equal(L.to_nchw(L.to_nhwc(x)), x)
    assert L.to_nhwc(x[0, 0]).shape == (5, 7)
