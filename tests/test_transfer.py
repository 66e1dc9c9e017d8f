"""Transfer edge cases: round trips, all-or-nothing failures, strictness, layouts."""
import numpy as np
import pytest
import torch
from torch import nn as tnn

import parity
from parity.randomize import randomize_keras, randomize_torch
from tests.conftest import SMALL_ASPP, keras_weights, run_both
from tf_impl import nn as knn
from tf_impl.backend import keras
from tf_impl.layers import LocalResponseNorm as LRNKeras
from tf_impl.layers import ResizeLike as ResizeLikeKeras
from torch_impl.layers import ResizeLike as ResizeLikeTorch


def test_round_trip_torch_keras_torch_is_bit_exact(small_pair):
    src, k = small_pair
    parity.transfer(src, k)
    back = parity.build("aspp", "torch", **SMALL_ASPP)
    report = parity.transfer(k, back)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    a, b = src.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    floats = [n for n in a if a[n].is_floating_point()]
    assert len(floats) == report.tensors == 45
    for n in floats:
        assert torch.equal(a[n], b[n]), f"{n} changed in the round trip"


def test_round_trip_keras_torch_keras_is_bit_exact():
    k = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=2)
    t = parity.build("aspp", "torch", **SMALL_ASPP)
    parity.transfer(k, t)
    k2 = parity.build("aspp", "keras", **SMALL_ASPP)
    parity.transfer(t, k2)
    for a, b in zip(keras_weights(k), keras_weights(k2)):
        assert np.array_equal(a, b)


def test_shape_mismatch_names_tensor_and_shapes_and_changes_nothing():
    src = randomize_torch(parity.build("aspp", "torch", in_channels=8, filters=4), seed=1)
    dst = parity.build("aspp", "keras", in_channels=8, filters=6)
    before = keras_weights(dst)
    with pytest.raises(parity.TransferError) as info:
        parity.transfer(src, dst)
    msg = str(info.value)
    print(msg)
    assert "conv1x1.0.weight" in msg and "(1, 1, 8, 6)" in msg and "(1, 1, 8, 4)" in msg
    assert "destination unchanged" in msg
    assert info.value.report.mismatched and not info.value.report.ok
    assert all(np.array_equal(a, b) for a, b in zip(before, keras_weights(dst)))


def test_missing_and_unexpected_are_reported_both_ways():
    t3 = randomize_torch(parity.build("aspp", "torch", **SMALL_ASPP, rates=(1, 3)), seed=1)
    k3 = parity.build("aspp", "keras", **SMALL_ASPP, rates=(1, 3, 5))
    with pytest.raises(parity.TransferError) as info:
        parity.transfer(t3, k3)
    r = info.value.report
    assert "separable.2.0.0/kernel" in r.missing and not r.unexpected
    k2 = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP, rates=(1, 3, 5)), seed=1)
    t2 = parity.build("aspp", "torch", **SMALL_ASPP, rates=(1, 3))
    before = {n: v.clone() for n, v in t2.state_dict().items()}
    with pytest.raises(parity.TransferError) as info:
        parity.transfer(k2, t2)
    assert "separable.2.0.0/kernel" in info.value.report.unexpected
    assert all(torch.equal(before[n], v) for n, v in t2.state_dict().items()), "torch destination changed"


def test_numerics_mismatch_is_refused_unless_allowed(small_pair):
    src, dst = small_pair
    src.project[1].eps = 1e-5  # the twin uses Keras's 1e-3
    before = keras_weights(dst)
    with pytest.raises(parity.TransferError, match=r"project\.1: expected eps 1e-05, received epsilon 0\.001"):
        parity.transfer(src, dst)
    assert all(np.array_equal(a, b) for a, b in zip(before, keras_weights(dst)))
    report = parity.transfer(src, dst, allow_numerics_mismatch=True)
    assert [m.name for m in report.numerics] == ["project.1"] and report.ok


def test_batchnorm_momentum_convention_is_checked(small_pair):
    src, dst = small_pair
    src.conv1x1[1].momentum = 0.99  # Keras's number written on the torch side: a classic slip
    with pytest.raises(parity.TransferError, match="momentum"):
        parity.transfer(src, dst)


def test_depthwise_multiplier_and_flatten_dense_reorder():
    """Depthwise with 2 outputs per channel, and a Dense after a Flatten of a 5x6x8 map: the rows must be
    reordered from torch's C,H,W to Keras's H,W,C for the outputs to agree."""
    t = tnn.Sequential(tnn.Conv2d(4, 8, 3, groups=4), tnn.ReLU(), tnn.Flatten(), tnn.Linear(8 * 5 * 6, 7))
    k = knn.build_model(knn.Sequential(knn.Conv2d(4, 8, 3, groups=4), knn.ReLU(), knn.Flatten(),
                                       knn.Linear(8 * 5 * 6, 7)), (7, 8, 4), "tiny")
    assert type(k.get_layer("0")).__name__ == "DepthwiseConv2D"
    parity.transfer(randomize_torch(t, seed=3), k)
    ref, out = run_both(t.eval(), k, np.random.default_rng(0).standard_normal((2, 4, 7, 8)).astype(np.float32))
    err = np.abs(ref - out).max() / np.abs(ref).max()
    print(f"depthwise x2 + flatten->dense: relative error {err:.2e}")
    assert err <= 1e-6
    back = tnn.Sequential(tnn.Conv2d(4, 8, 3, groups=4), tnn.ReLU(), tnn.Flatten(), tnn.Linear(8 * 5 * 6, 7))
    parity.transfer(k, back)
    assert all(torch.equal(a, b) for a, b in zip(t.state_dict().values(), back.state_dict().values()))


def test_dtype_mismatch_is_refused(small_pair):
    src, dst = small_pair
    with pytest.raises(parity.TransferError, match="expected float32, received float64"):
        parity.transfer(src.double(), dst)


def test_arguments_must_be_a_torch_module_and_a_keras_model(small_pair):
    src, dst = small_pair
    with pytest.raises(TypeError, match="got ConvBNReLU -> ConvBNReLU"):
        parity.transfer(src.conv1x1, src.conv1x1)
    with pytest.raises(TypeError):
        parity.transfer(dst, dst)


def test_facade_refuses_groups_that_torch_refuses():
    with pytest.raises(ValueError, match="must be divisible by groups"):
        knn.Conv2d(4, 8, 3, groups=3)


@pytest.mark.parametrize("shape, perm", [((2, 3, 4, 5), (2, 3, 1, 0)), ((2, 3, 4, 5), (3, 2, 0, 1)),
                                         ((2, 3, 4, 5), (0, 1, 2, 3)), ((2, 3, 4, 5), (1, 0, 3, 2)),
                                         ((6, 7), (1, 0)), ((2, 3, 4), (2, 0, 1))])
def test_move_with_merged_axes_equals_a_plain_transpose(shape, perm):
    """``Move.apply`` merges source axes that stay neighbours before transposing; the result must be
    numpy's transpose exactly, and ``Move.shape`` must predict it."""
    import tensorflow as tf

    from parity.weight_transfer import Move

    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    move = Move(perm=perm)
    out = move.apply(tf.constant(x)).numpy()
    assert np.array_equal(out, x.transpose(perm)) and move.shape(shape) == out.shape


def test_move_that_cannot_fit_is_a_mismatch_not_a_crash():
    from parity.weight_transfer import Move

    with pytest.raises(ValueError, match="cannot reshape 24 elements to \\(5, 5\\)"):
        Move(pre=(5, 5)).shape((2, 3, 4))
    with pytest.raises(ValueError, match="cannot permute a rank-3 tensor"):
        Move(perm=(1, 0)).shape((2, 3, 4))


def test_keras_to_torch_bumps_the_autograd_version_like_copy_(small_pair):
    src, k = small_pair
    parity.transfer(src, k)
    dst = parity.build("aspp", "torch", **SMALL_ASPP)
    before = {n: p._version for n, p in dst.named_parameters()}
    parity.transfer(k, dst)
    assert all(p._version > before[n] for n, p in dst.named_parameters())


def test_transferred_weights_do_not_share_memory_with_the_source():
    """Training one twin after a transfer must leave the other as it was, in both directions. The modules
    cover an identity move (BatchNorm, biases), a transpose that only moves size-1 axes (depthwise 1x1 with
    multiplier 1; a Linear with one input) and a real transpose."""
    src = randomize_torch(tnn.Sequential(tnn.Conv2d(3, 3, 1, groups=3), tnn.BatchNorm2d(3), tnn.Conv2d(3, 4, 3),
                                         tnn.Flatten(), tnn.Linear(4, 1), tnn.Linear(1, 2)), seed=2)
    k = knn.build_model(knn.Sequential(knn.Conv2d(3, 3, 1, groups=3), knn.BatchNorm2d(3), knn.Conv2d(3, 4, 3),
                                       knn.Flatten(), knn.Linear(4, 1), knn.Linear(1, 2)), (3, 3, 3), "alias")
    parity.transfer(src, k)
    before = keras_weights(k)
    with torch.no_grad():
        for t in src.state_dict().values():
            t.add_(1)
    changed = [v.path for v, b in zip(k.weights, before) if not np.array_equal(np.asarray(v.numpy()), b)]
    assert not changed, f"Keras weights changed with the torch source: {changed}"
    back = randomize_torch(src, seed=3)
    parity.transfer(k, back)
    saved = {n: t.clone() for n, t in back.state_dict().items()}
    for v in k.weights:
        v.assign(v.numpy() + 1)
    changed = [n for n, t in back.state_dict().items() if not torch.equal(t, saved[n])]
    assert not changed, f"torch tensors changed with the Keras source: {changed}"


# --- all or nothing on every path: storage, device, dtype checks run in the plan --------------------------

def _torch_state(module) -> dict:
    return {k: (v.clone() if v.device.type != "meta" else v) for k, v in module.state_dict().items()}


def _unchanged(module, before: dict) -> bool:
    return all(v.device.type == "meta" or torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_a_meta_parameter_changes_nothing_in_either_direction(small_pair):
    """The last conv's weight on the meta device (no data): refused with its name before the first write,
    whether it is the source or the destination."""
    src, dst = small_pair
    src.project[0].weight = tnn.Parameter(torch.empty_like(src.project[0].weight, device="meta"))
    before = keras_weights(dst)
    with pytest.raises(parity.TransferError, match=r"project\.0\.weight: expected a dense CPU tensor, received a "
                                                   r"tensor on the meta device \(device: a meta tensor holds no data"):
        parity.transfer(src, dst)
    assert all(np.array_equal(a, b) for a, b in zip(before, keras_weights(dst)))
    keras_src = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=4)
    before = _torch_state(src)
    with pytest.raises(parity.TransferError, match=r"project\.0\.weight: expected a dense CPU tensor"):
        parity.transfer(keras_src, src)
    assert _unchanged(src, before)


def test_one_wrong_dtype_at_the_end_changes_nothing(small_pair):
    src, dst = small_pair
    src.project[1].running_var.data = src.project[1].running_var.data.double()
    before = keras_weights(dst)
    with pytest.raises(parity.TransferError, match=r"project\.1\.running_var: expected float32, received float64"):
        parity.transfer(src, dst)
    assert all(np.array_equal(a, b) for a, b in zip(before, keras_weights(dst)))
    keras_src = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=4)
    before = _torch_state(src)
    with pytest.raises(parity.TransferError, match=r"project\.1\.running_var: expected float64, received float32"):
        parity.transfer(keras_src, src)
    assert _unchanged(src, before)


def test_destinations_that_cannot_be_written_in_place_are_refused(small_pair):
    src, _ = small_pair
    keras_src = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=4)
    bias = src.project[1].bias
    src.project[1].bias = tnn.Parameter(bias.detach()[:1].expand(bias.shape[0]), requires_grad=False)
    before = _torch_state(src)
    with pytest.raises(parity.TransferError, match=r"project\.1\.bias: expected a dense CPU tensor, received an "
                                                   r"expanded view \(stride 0\)"):
        parity.transfer(keras_src, src)
    assert _unchanged(src, before)
    with torch.inference_mode():
        frozen = torch.zeros(4)
    src.project[1].bias = tnn.Parameter(frozen, requires_grad=False)
    with pytest.raises(parity.TransferError, match=r"project\.1\.bias: .* received an inference tensor"):
        parity.transfer(keras_src, src)


class TiedBN(tnn.Module):
    """Two BatchNorms that share one gamma Parameter, as tied weights do."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn1, self.bn2 = tnn.Conv2d(3, 4, 3), tnn.BatchNorm2d(4), tnn.BatchNorm2d(4)
        self.bn2.weight = self.bn1.weight

    def forward(self, x):
        return self.bn2(self.bn1(self.conv(x)))


def _keras_tied():
    class Twin(knn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn1, self.bn2 = knn.Conv2d(3, 4, 3), knn.BatchNorm2d(4), knn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn2(self.bn1(self.conv(x)))

    return knn.build_model(Twin(), (None, None, 3), "tied")


def test_tied_torch_parameters_are_written_once_when_equal_and_refused_when_not():
    """torch -> Keras gives the two Keras gammas one value. Keras -> torch writes the shared gamma once when
    the two Keras gammas are equal (then exactly), and refuses when they differ: the last write would win
    and the torch twin would compute something else (the issue measured 0.40)."""
    torch_model = randomize_torch(TiedBN().eval(), seed=1)
    keras_model = _keras_tied()
    parity.transfer(torch_model, keras_model)
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 9)).astype(np.float32)
    back = TiedBN().eval()
    report = parity.transfer(keras_model, back)
    assert report.tied == [("bn1.weight", "bn2.weight")] and report.tensors == 9
    ref, out = run_both(back, keras_model, x)
    print(f"tied gammas, equal in Keras: relative error {np.abs(ref - out).max() / np.abs(ref).max():.2e}")
    assert np.abs(ref - out).max() / np.abs(ref).max() <= 1e-6
    gamma = keras_model.get_layer("bn2").gamma
    gamma.assign(gamma.numpy() * 1.5)
    before = _torch_state(back)
    with pytest.raises(parity.TransferError, match=r"bn2\.weight: expected the value of bn1\.weight, the same "
                                                   r"torch tensor, received another value \(tied parameters"):
        parity.transfer(keras_model, back)
    assert _unchanged(back, before)
    flat = torch.zeros(6)  # two gammas that are overlapping views of one buffer
    back.bn1.weight, back.bn2.weight = tnn.Parameter(flat[0:4]), tnn.Parameter(flat[2:6])
    with pytest.raises(parity.TransferError, match=r"bn2\.weight: expected a torch tensor with memory of its own, "
                                                   r"received memory overlapping bn1\.weight"):
        parity.transfer(keras_model, back)
    assert torch.equal(flat, torch.zeros(6))


def test_an_unbuilt_keras_sequential_is_named_as_such():
    unbuilt = keras.Sequential([keras.layers.Dense(3)], name="head")
    with pytest.raises(parity.TransferError, match=r"the Keras model is not built: 'head' has no variables yet"):
        parity.transfer(tnn.Sequential(tnn.Linear(2, 3)), unbuilt)
    with pytest.raises(parity.TransferError, match="not built"):
        parity.transfer(unbuilt, tnn.Sequential(tnn.Linear(2, 3)))


# --- settings that hold no weights ------------------------------------------------------------------------

class KerasZeroPadMaxPool(knn.MaxPool2d):
    """A naive max-pool twin: zero padding, where torch pads with -inf."""

    def make_layers(self, name):
        return [keras.layers.ZeroPadding2D(self.padding, name=f"{name}_pad"),
                keras.layers.MaxPooling2D(self.kernel_size, self.stride, name=name)]


class TorchResize(tnn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.pool, self.up = tnn.MaxPool2d(2), ResizeLikeTorch(**kw)

    def forward(self, x):
        return self.up(self.pool(x), x)


class KerasResize(knn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.pool, self.up = knn.MaxPool2d(2), ResizeLikeKeras(**kw)

    def forward(self, x):
        return self.up(self.pool(x), x)


SETTING_CASES = {  # kind: (torch module, facade module, the message expected)
    "dropout rate": (lambda: tnn.Sequential(tnn.Dropout(0.4)), lambda: knn.Sequential(knn.Dropout(0.5)),
                     r"0: expected p 0\.4, received rate 0\.5"),
    "pool kernel": (lambda: tnn.Sequential(tnn.MaxPool2d(3, 2)), lambda: knn.Sequential(knn.MaxPool2d(2, 2)),
                    r"0: expected kernel_size \(3, 3\), received pool_size \(2, 2\)"),
    "pool stride": (lambda: tnn.Sequential(tnn.MaxPool2d(2, 1)), lambda: knn.Sequential(knn.MaxPool2d(2)),
                    r"0: expected stride \(1, 1\), received strides \(2, 2\)"),
    "pool padding": (lambda: tnn.Sequential(tnn.AvgPool2d(3, 1, 1)), lambda: knn.Sequential(knn.AvgPool2d(3, 1)),
                     r"0: expected padding \(top, bottom, left, right\) \(1, 1, 1, 1\), received padding "
                     r"\(0, 0, 0, 0\)"),
    "pool pad value": (lambda: tnn.Sequential(tnn.MaxPool2d(3, 1, 1)),
                       lambda: knn.Sequential(KerasZeroPadMaxPool(3, 1, 1)),
                       r"0: expected pad value -inf, received pad value 0 \(pool pad value\)"),
    "ceil mode": (lambda: tnn.Sequential(tnn.MaxPool2d(3, 2, ceil_mode=True)),
                  lambda: knn.Sequential(knn.MaxPool2d(3, 2)), r"0: expected ceil_mode True, received ceil mode False"),
    "count_include_pad": (lambda: tnn.Sequential(tnn.AvgPool2d(3, 1, 1, count_include_pad=False)),
                          lambda: knn.Sequential(knn.AvgPool2d(3, 1, 1)),
                          r"0: expected count_include_pad False, received padding counted in the mean True"),
    "pool type": (lambda: tnn.Sequential(tnn.MaxPool2d(2)), lambda: knn.Sequential(knn.AvgPool2d(2)),
                  r"0: expected a Keras MaxPooling2D or DilatedMaxPool2D, received AveragePooling2D"),
    "lrn": (lambda: tnn.Sequential(tnn.LocalResponseNorm(5, alpha=1e-4, k=2.0)),
            lambda: knn.Sequential(LRNKeras(5, alpha=1e-4, k=1.0)), r"0: expected k 2, received k 1"),
    "upsampling align_corners": (lambda: TorchResize(mode="bilinear", align_corners=True),
                                 lambda: KerasResize(mode="bilinear", align_corners=False),
                                 r"up: expected align_corners True, received align_corners False"),
    "upsampling mode": (lambda: TorchResize(mode="nearest"), lambda: KerasResize(mode="bilinear"),
                        r"up: expected mode nearest, received mode bilinear"),
    "conv padding": (lambda: tnn.Sequential(tnn.Conv2d(3, 4, 3, padding=1)),
                     lambda: knn.Sequential(knn.Conv2d(3, 4, 3)),
                     r"0: expected padding \(top, bottom, left, right\) \(1, 1, 1, 1\), received padding "
                     r"\(0, 0, 0, 0\)"),
}


@pytest.mark.parametrize("kind", SETTING_CASES)
def test_a_setting_that_holds_no_weight_is_compared(kind):
    """Each weightless setting, differing between otherwise matching twins: refused like a numerics
    mismatch (Dropout never shows at inference, a pool's geometry only at some sizes), accepted with
    ``allow_numerics_mismatch=True``, and not reported when the twins agree."""
    make_torch, make_facade, message = SETTING_CASES[kind]
    torch_model = randomize_torch(make_torch().eval(), seed=0)
    keras_model = knn.build_model(make_facade(), (None, None, 3), "m")
    with pytest.raises(parity.TransferError, match="numerics differ " + message):
        parity.transfer(torch_model, keras_model)
    report = parity.transfer(torch_model, keras_model, allow_numerics_mismatch=True)
    assert len(report.numerics) == 1, report.numerics
    print(f"{kind}: {report.numerics[0]}")


def test_settings_of_matching_twins_agree_and_the_table_is_per_type():
    from parity.weight_transfer import SETTINGS

    assert {t.__name__ for t in SETTINGS} >= {"Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "Dropout",
                                             "LocalResponseNorm", "ResizeLike", "AdaptiveAvgPool2d", "Flatten"}
    torch_model = tnn.Sequential(tnn.Conv2d(3, 4, 3, stride=2, padding=1), tnn.MaxPool2d(3, 2, 1),
                                 tnn.AvgPool2d(3, 1, 1), tnn.LocalResponseNorm(3), tnn.Dropout(0.2),
                                 tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
    facade = knn.Sequential(knn.Conv2d(3, 4, 3, stride=2, padding=1), knn.MaxPool2d(3, 2, 1), knn.AvgPool2d(3, 1, 1),
                            LRNKeras(3), knn.Dropout(0.2), knn.AdaptiveAvgPool2d(1), knn.Flatten())
    report = parity.transfer(randomize_torch(torch_model.eval()), knn.build_model(facade, (None, None, 3), "ok"))
    assert report.numerics == []
