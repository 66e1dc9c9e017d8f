"""The Keras -> PyTorch traps of issue 10, one test each: the naive torch translation (what a straight port
writes) next to the automatic twin (``parity.twin``), both run against Keras on the same weights and inputs.
Each test prints both errors and asserts that the naive one is off by far more than the tolerance while ours
is within it, so it fails if the fix is removed. Plus what proving keras.applications turned up: Keras's
``Normalization`` ignoring assigned statistics, and onnxruntime folding a zero pad into a max-pool.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import parity
from parity.compare import pair_error
from parity.layout import to_nchw, to_nhwc
from parity.randomize import randomize_keras
from parity.registry import FLOAT32_TOLERANCE as TOL
from tf_impl.backend import keras

L = keras.layers
FAR = 10 * TOL  # "differs by far more than the tolerance": an order of magnitude at least


def keras_model(layers, shape, name="keras"):
    """A functional Keras model applying ``layers`` in order to an input of ``shape`` (H, W, C), randomised."""
    x = inp = keras.Input(shape)
    for layer in layers:
        x = layer(x)
    return randomize_keras(keras.Model(inp, x, name=name), seed=1)


def run_keras(model, x: np.ndarray) -> np.ndarray:
    """Keras output for NCHW ``x``, as NCHW."""
    return to_nchw(keras.ops.convert_to_numpy(model(to_nhwc(x), training=False)))


def run_torch(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def error(ref, out) -> float:
    """Relative error of ``out`` against ``ref``; infinite (and said why) for a shape, NaN or empty problem."""
    err = pair_error([ref], [out], labels=("keras", "torch"))
    if err.problems:
        print("  ", "; ".join(err.problems))
    return err.rel


def report(trap: str, naive: float, ours: float) -> None:
    print(f"{trap}: naive relative error {naive:.3g}, ours {ours:.3g} (tolerance {TOL:g})")
    assert naive > FAR, f"the naive variant should be off by > {FAR:g}, got {naive:.3g}"
    assert ours <= TOL, f"ours should be within {TOL:g}, got {ours:.3g}"


def inputs(shape, seed=0, low=None, high=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
    return x.astype(np.float32)


def torch_conv(kernel: np.ndarray, bias=None, **kwargs) -> nn.Conv2d:
    """A torch conv holding Keras kernel (kh, kw, in, out) as (out, in, kh, kw), the plain transpose."""
    kh, kw, cin, cout = kernel.shape
    conv = nn.Conv2d(cin * kwargs.get("groups", 1), cout, (kh, kw), bias=bias is not None, **kwargs)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
        if bias is not None:
            conv.bias.copy_(torch.from_numpy(bias))
    return conv.eval()


# --- TF's 'same' at stride 2 pads the odd pixel bottom/right -----------------------------------------------

@pytest.mark.parametrize("k", [3, 7])
def test_same_padding_at_stride_2(k):
    model = keras_model([L.Conv2D(16, k, strides=2, padding="same")], (None, None, 8))
    x = inputs((2, 8, 32, 32))  # even: TF pads (k - 2) // 2 top/left and k // 2 bottom/right
    ref = run_keras(model, x)
    naive = torch_conv(*[w.numpy() for w in model.layers[1].weights], stride=2, padding=k // 2)
    report(f"Conv2D {k}x{k}/2 'same' as padding=k//2", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


# --- BatchNorm: epsilon, momentum, and the moving variance in training mode ---------------------------------

def _bn_model(epsilon, variance_range):
    model = keras_model([L.BatchNormalization(epsilon=epsilon)], (None, None, 16))
    bn = model.layers[1]
    bn.moving_variance.assign(np.random.default_rng(2).uniform(*variance_range, 16).astype(np.float32))
    return model, bn


@pytest.mark.parametrize("epsilon, variance_range, where", [
    (1e-3, (0.5, 1.5), "Keras's default (MobileNet, Inception, EfficientNet)"),
    (1.001e-5, (1e-6, 1e-5), "keras.applications.ResNet50/DenseNet, on near-constant channels"),
])
def test_batchnorm_epsilon(epsilon, variance_range, where):
    model, bn = _bn_model(epsilon, variance_range)
    x = inputs((2, 16, 5, 7))
    ref = run_keras(model, x)
    naive = nn.BatchNorm2d(16).eval()  # torch's default eps 1e-5
    with torch.no_grad():
        for name, w in zip(("weight", "bias", "running_mean", "running_var"), bn.weights):
            getattr(naive, name).copy_(torch.from_numpy(w.numpy()))
    report(f"BatchNorm epsilon {epsilon:g} ({where}) as torch's 1e-5", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


def _train_step_stats(model, torch_bn, x):
    """Moving variance after one training step: Keras's, and ``torch_bn``'s running_var."""
    model(to_nhwc(x), training=True)
    torch_bn.train()
    with torch.no_grad():
        torch_bn(torch.from_numpy(x))
    return model.layers[1].moving_variance.numpy(), torch_bn.running_var.numpy()


def test_batchnorm_momentum_and_the_moving_variance_in_training():
    """Keras momentum 0.99 is torch momentum 0.01; and Keras moves the moving variance with the biased batch
    variance, torch with the unbiased one (n / (n - 1)). The gap grows as n shrinks (a 3x3 map: n = 18 for a
    batch of 2; measured 2.9e-4 relative after one step on 2x3x32x32, n = 2048, from moving variance 1)."""
    x = inputs((2, 3, 3, 3), seed=4)  # n = N*H*W = 18 values per channel: torch's update is 18/17 of Keras's
    results = {}
    for label, make in [
        ("naive, momentum 0.99 copied", lambda: nn.BatchNorm2d(3, eps=1e-3, momentum=0.99)),
        ("naive, momentum 0.01 (torch's unbiased update)", lambda: nn.BatchNorm2d(3, eps=1e-3, momentum=0.01)),
        ("ours", None),
    ]:
        model = keras_model([L.BatchNormalization(name="bn")], (None, None, 3))
        twin = parity.twin(model)
        bn = twin.bn if make is None else make()
        if make is not None:
            bn.load_state_dict(twin.bn.state_dict())
        keras_var, torch_var = _train_step_stats(model, bn, x)
        results[label] = float(np.max(np.abs(keras_var - torch_var)) / np.max(np.abs(keras_var)))
        print(f"moving variance after one training step, {label}: relative error {results[label]:.3g}")
    assert results["naive, momentum 0.99 copied"] > FAR
    assert results["naive, momentum 0.01 (torch's unbiased update)"] > FAR
    assert results["ours"] <= TOL


# --- Flatten + Dense on an NHWC map: the kernel rows are in H, W, C order -----------------------------------

def test_flatten_then_dense_reorders_the_rows():
    model = keras_model([L.Conv2D(6, 3), L.Flatten(), L.Dense(10)], (6, 7, 3))
    x = inputs((2, 3, 6, 7))
    ref = run_keras(model, x)
    conv, dense = model.layers[1], model.layers[3]
    naive = nn.Sequential(torch_conv(*[w.numpy() for w in conv.weights]), nn.Flatten(), nn.Linear(4 * 5 * 6, 10))
    with torch.no_grad():  # the kernel transposed, rows left in Keras's H, W, C order
        naive[2].weight.copy_(torch.from_numpy(dense.kernel.numpy().T.copy()))
        naive[2].bias.copy_(torch.from_numpy(dense.bias.numpy()))
    report("Flatten of an NHWC map into a Dense, kernel.T", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


# --- DepthwiseConv2D with depth_multiplier > 1, SeparableConv2D ------------------------------------------------

def _naive_depthwise(kernel: np.ndarray) -> torch.Tensor:
    """Keras (kh, kw, C, m) to torch (C*m, 1, kh, kw) the obvious way, multiplier-major: channel j*C + c,
    where torch's grouped conv (and Keras) put c*m + j."""
    kh, kw, c, m = kernel.shape
    return torch.from_numpy(kernel.transpose(3, 2, 0, 1).reshape(c * m, 1, kh, kw).copy())


def test_depthwise_conv_with_a_depth_multiplier():
    model = keras_model([L.DepthwiseConv2D(3, padding="same", depth_multiplier=3)], (None, None, 4))
    x = inputs((2, 4, 9, 11))
    ref = run_keras(model, x)
    kernel, bias = (w.numpy() for w in model.layers[1].weights)
    naive = nn.Conv2d(4, 12, 3, padding=1, groups=4).eval()
    with torch.no_grad():
        naive.weight.copy_(_naive_depthwise(kernel))
        naive.bias.copy_(torch.from_numpy(bias))
    report("DepthwiseConv2D, depth_multiplier 3", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


def test_separable_conv():
    model = keras_model([L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2)], (None, None, 4))
    x = inputs((2, 4, 9, 11))
    ref = run_keras(model, x)
    depthwise, pointwise, bias = (w.numpy() for w in model.layers[1].weights)

    def naive(t):
        t = F.conv2d(t, _naive_depthwise(depthwise), padding=1, groups=4)
        return F.conv2d(t, torch.from_numpy(pointwise.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias))

    report("SeparableConv2D, depth_multiplier 2", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


# --- asymmetric ZeroPadding2D and Cropping2D (NASNet) ---------------------------------------------------------

def test_asymmetric_zero_padding():
    model = keras_model([L.ZeroPadding2D(((1, 2), (2, 1)))], (None, None, 3))
    x = inputs((1, 3, 6, 7))
    ref = run_keras(model, x)
    naive = lambda t: F.pad(t, (1, 2, 2, 1))  # noqa: E731  Keras's order (top, bottom, left, right)
    report("ZeroPadding2D(((1, 2), (2, 1))) as F.pad in Keras's order", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


def test_asymmetric_cropping():
    model = keras_model([L.Cropping2D(((1, 0), (1, 0)))], (None, None, 3))  # NASNet's
    x = inputs((1, 3, 6, 7))
    ref = run_keras(model, x)
    naive = lambda t: t[:, :, 1:-0, 1:-0]  # noqa: E731  "crop 1 at the top, 0 at the bottom": an empty slice
    report("Cropping2D(((1, 0), (1, 0))) as t[:, :, 1:-0, 1:-0]", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


# --- the preprocessing layers inside the models ---------------------------------------------------------------

def test_rescaling_is_part_of_the_model():
    """MobileNetV3 rescales pixels to [-1, 1] inside the model; a port of its layers without it (torchvision's
    models expect normalised inputs) is off by the whole scale."""
    model = keras_model([L.Rescaling(1 / 127.5, offset=-1), L.Conv2D(8, 3, strides=2, padding="same", name="conv")],
                        (None, None, 3))
    x = inputs((1, 3, 16, 16), low=0, high=255)
    ref = run_keras(model, x)
    twin = parity.twin(model)
    report("Rescaling(1/127.5, offset=-1) left out", error(ref, run_torch(twin.conv, x)),
           error(ref, run_torch(twin, x)))


def test_normalization_floors_the_standard_deviation():
    """Keras divides by max(sqrt(variance), epsilon), not sqrt(variance + epsilon): a channel with zero
    variance is scaled by 1e7, not by 1 / sqrt(1e-7)."""
    mean, variance = [0.485, 0.456, 0.406], [0.229 ** 2, 0.0, 0.225 ** 2]
    model = keras_model([L.Normalization(mean=mean, variance=variance)], (None, None, 3))
    x = inputs((1, 3, 5, 6))
    ref = run_keras(model, x)
    m, v = (torch.tensor(a).view(1, 3, 1, 1) for a in (mean, variance))
    naive = lambda t: (t - m) / torch.sqrt(v + keras.config.epsilon())  # noqa: E731
    report("Normalization with a zero variance as sqrt(var + eps)", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


def test_keras_normalization_reads_its_statistics_only_after_finalize_state():
    """Found proving EfficientNetB0: an adapted Keras ``Normalization`` computes from a copy of ``mean`` and
    ``variance`` taken at build time; assigning the variables (what a plain weight transfer does) leaves its
    output unchanged until ``finalize_state()``. ``parity.transfer`` and ``parity.randomize`` call it."""
    x = inputs((1, 3, 4, 5))
    mean, variance = np.array([1.0, 2.0, 3.0], np.float32), np.array([4.0, 0.25, 1.0], np.float32)
    expected = (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(variance).reshape(1, 3, 1, 1)
    source = keras_model([L.Normalization(name="norm")], (None, None, 3))
    source.layers[1].adapt_mean.assign(mean)
    source.layers[1].adapt_variance.assign(variance)
    naive = error(expected, run_keras(source, x))  # variables assigned, nothing else
    twin = parity.twin(source)  # the twin reads the variables
    fresh = keras_model([L.Normalization(name="norm")], (None, None, 3))
    parity.transfer(twin, fresh)  # torch -> Keras refreshes the layer
    report("Keras Normalization after assigning its variables", naive, error(expected, run_keras(fresh, x)))


# --- LayerNormalization over channels-last, ConvNeXt's layer scale -------------------------------------------

def test_layer_normalization_over_channels():
    model = keras_model([L.LayerNormalization(epsilon=1e-6)], (None, None, 8))
    x = inputs((2, 8, 5, 7))
    ref = run_keras(model, x)
    ln = model.layers[1]
    naive = nn.GroupNorm(1, 8, eps=1e-6).eval()  # "LayerNorm of a conv map": normalises C, H and W together
    with torch.no_grad():
        naive.weight.copy_(torch.from_numpy(ln.gamma.numpy()))
        naive.bias.copy_(torch.from_numpy(ln.beta.numpy()))
    report("LayerNormalization(axis=-1) as GroupNorm(1, C)", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


def test_layer_scale():
    """ConvNeXt's ``x * gamma`` on channels-last. On NCHW the same expression broadcasts gamma over W: an
    error when W != C, a silent one when W == C (here 8x8 with 8 channels)."""
    from keras.src.applications.convnext import LayerScale

    model = keras_model([LayerScale(1e-6, 8)], (None, None, 8))
    x = inputs((1, 8, 8, 8))
    ref = run_keras(model, x)
    gamma = torch.from_numpy(model.layers[1].weights[0].numpy())
    report("LayerScale as x * gamma on NCHW", error(ref, run_torch(lambda t: t * gamma, x)),
           error(ref, run_torch(parity.twin(model), x)))


# --- activations -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation, naive, why", [
    ("hard_sigmoid", lambda t: torch.clamp(0.2 * t + 0.5, 0, 1), "Keras 2's clip(0.2 x + 0.5)"),
    ("hard_silu", lambda t: t * torch.clamp(0.2 * t + 0.5, 0, 1), "x * Keras 2's hard sigmoid"),
    ("swish", F.hardswish, "torch's hardswish"),
    ("gelu", lambda t: F.gelu(t, approximate="tanh"), "the tanh approximation"),
])
def test_activation(activation, naive, why):
    model = keras_model([L.Activation(activation)], (None, None, 4))
    x = inputs((2, 4, 8, 8), low=-3, high=3)
    ref = run_keras(model, x)
    report(f"Activation({activation!r}) as {why}", error(ref, run_torch(naive, x)),
           error(ref, run_torch(parity.twin(model), x)))


def test_keras_ops_gelu_is_approximate():
    """``keras.ops.gelu`` defaults to the tanh approximation, torch's ``F.gelu`` to the exact one."""
    inp = keras.Input((None, None, 4))
    model = keras.Model(inp, keras.ops.gelu(inp))
    x = inputs((2, 4, 8, 8), low=-3, high=3)
    ref = run_keras(model, x)
    report("keras.ops.gelu as F.gelu", error(ref, run_torch(F.gelu, x)), error(ref, run_torch(parity.twin(model), x)))


# --- squeeze-and-excitation: GlobalAveragePooling2D(keepdims=True), Reshape, Multiply --------------------------

@pytest.mark.parametrize("keepdims", [True, False], ids=["keepdims (MobileNetV3)", "reshape (EfficientNet)"])
def test_squeeze_and_excitation(keepdims):
    """Keras's SE shapes are channels-last: GAP(keepdims) gives (N, 1, 1, C), EfficientNet reshapes (N, C) to
    (1, 1, C). Taken literally on an NCHW map, the scale lands on W: silently wrong when W == C (here 8)."""
    inp = keras.Input((None, None, 8))
    s = L.GlobalAveragePooling2D(keepdims=keepdims)(inp)
    s = s if keepdims else L.Reshape((1, 1, 8))(s)
    s = L.Conv2D(8, 1, activation="sigmoid")(s)
    model = randomize_keras(keras.Model(inp, L.Multiply()([inp, s])), seed=1)
    x = inputs((2, 8, 8, 8))
    ref = run_keras(model, x)
    kernel, bias = (torch.from_numpy(w.numpy()) for w in model.layers[-2].weights)

    def naive(t):  # Keras's axes and shapes taken literally; the 1x1 conv on the last axis, as in Keras
        g = t.mean((1, 2), keepdim=True) if keepdims else t.mean((2, 3)).reshape(-1, 1, 1, 8)
        return t * torch.sigmoid(g @ kernel[0, 0] + bias)

    report(f"SE block ({'GAP keepdims' if keepdims else 'GAP + Reshape'}) taken literally",
           error(ref, run_torch(naive, x)), error(ref, run_torch(parity.twin(model), x)))


# --- 'same' pooling -------------------------------------------------------------------------------------------

def test_max_pooling_same_at_stride_2():
    model = keras_model([L.MaxPooling2D(3, strides=2, padding="same")], (None, None, 4))  # Xception's
    x = inputs((2, 4, 16, 16))
    ref = run_keras(model, x)
    report("MaxPooling2D(3, 2, 'same') as MaxPool2d(3, 2, padding=1)", error(ref, run_torch(nn.MaxPool2d(3, 2, 1), x)),
           error(ref, run_torch(parity.twin(model), x)))


def test_average_pooling_same_leaves_the_padding_out():
    model = keras_model([L.AveragePooling2D(3, strides=1, padding="same")], (None, None, 4))  # NASNet's
    x = inputs((2, 4, 7, 9))
    ref = run_keras(model, x)
    report("AveragePooling2D(3, 1, 'same') as AvgPool2d(3, 1, padding=1)",
           error(ref, run_torch(nn.AvgPool2d(3, 1, 1), x)), error(ref, run_torch(parity.twin(model), x)))


# --- onnxruntime folds a zero Pad into a MaxPool ---------------------------------------------------------------

def test_onnxruntime_pad_fusion_into_max_pool(tmp_path):
    """Found proving ResNet50V2 (zero padding, then a 3x3/2 max-pool, on a map that can be negative):
    onnxruntime 1.31's Pad_Fusion moves the zero pad into the MaxPool's pads, which pad with -inf. Our
    sessions (``parity.onnx_io.session``) disable that fusion."""
    import onnxruntime as ort

    from parity.onnx_io import export_onnx, session

    model = keras_model([L.Conv2D(4, 3), L.ZeroPadding2D(1), L.MaxPooling2D(3, strides=2)], (None, None, 4))
    x = inputs((1, 4, 17, 19))  # the conv's output is negative in places: windows where the zero padding wins
    ref = run_keras(model, x)
    path = export_onnx(model, tmp_path / "pool.onnx")  # the Keras export: Pad, then MaxPool
    feed = {"input": to_nhwc(x)}
    naive = to_nchw(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0])
    ours = to_nchw(session(path).run(None, feed)[0])
    report("ZeroPadding2D + MaxPooling2D in onnxruntime", error(ref, naive), error(ref, ours))
