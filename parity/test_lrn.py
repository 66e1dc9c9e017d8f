"""LocalResponseNorm: our Keras layer against ``torch.nn.LocalResponseNorm`` for odd and even sizes, the
TensorFlow op that looks like it but is not, and the ONNX side (what each exporter writes, and ONNX's own
``LRN`` operator, whose even window is centred the other way).

With torch's default alpha (1e-4) LRN(64) is 9.3e-5 from the identity on unit-normal inputs, and a window
shifted by one channel (ONNX's) moves it by 9.6e-6: inside the tolerance. The window tests therefore also
use :func:`strong`: alpha equal to the size (the mean of the squares enters undamped), where the same
shift moves outputs by 1e-2 or more.
"""
import numpy as np
import onnx
import pytest
import tensorflow as tf
import torch
from onnx import helper

import tf_impl
from parity.compare import pair_error
from parity.onnx_io import OPSET, export_onnx, session
from parity.registry import FLOAT32_TOLERANCE
from tf_impl.nn import build_model

SIZES = (1, 2, 3, 4, 5, 7, 64)
CHANNELS = (3, 64, 192)


def strong(size: int) -> dict:
    return dict(alpha=float(size), beta=0.75, k=1.0)


def _input(channels: int, seed: int = 0) -> np.ndarray:
    """NCHW, odd H and W, scale 2 so that the squares are not all small."""
    return 2 * np.random.default_rng(seed).standard_normal((2, channels, 5, 7)).astype(np.float32)


def _torch(x: np.ndarray, size: int, **kw) -> np.ndarray:
    with torch.no_grad():
        return torch.nn.LocalResponseNorm(size, **kw)(torch.from_numpy(x)).numpy()


def _keras(x: np.ndarray, size: int, **kw) -> np.ndarray:
    y = tf_impl.LocalResponseNormLayer(size, **kw)(x.transpose(0, 2, 3, 1))
    return np.asarray(y).transpose(0, 3, 1, 2)


def _rel(ref: np.ndarray, out: np.ndarray) -> float:
    return pair_error([ref], [out]).rel


@pytest.mark.parametrize("params", ["torch defaults", "strong"])
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
def test_keras_layer_matches_torch(size, channels, params):
    kw = {} if params == "torch defaults" else strong(size)
    x = _input(channels)
    err = _rel(_torch(x, size, **kw), _keras(x, size, **kw))
    print(f"LRN size {size:3d}, {channels:3d} channels, {params}: relative error {err:.2e}")
    assert err <= FLOAT32_TOLERANCE, f"size {size}, C {channels}: relative error {err:.3g}"


@pytest.mark.parametrize("size", [2, 3, 4, 5, 64])
def test_tf_local_response_normalization_is_a_trap(size):
    """``tf.nn.local_response_normalization`` with torch's arguments read naively (radius = size, alpha as
    given) is wrong; even read carefully (radius (size-1)//2, alpha / size) it can only centre a window,
    so every even size is still wrong. Our layer is right in both cases."""
    x, kw = _input(64), strong(size)
    ref = _torch(x, size, **kw)
    x_nhwc = x.transpose(0, 2, 3, 1)
    naive = tf.nn.local_response_normalization(x_nhwc, depth_radius=size, bias=kw["k"], alpha=kw["alpha"],
                                               beta=kw["beta"])
    careful = tf.nn.local_response_normalization(x_nhwc, depth_radius=(size - 1) // 2, bias=kw["k"],
                                                 alpha=kw["alpha"] / size, beta=kw["beta"])
    errs = {name: _rel(ref, np.asarray(y).transpose(0, 3, 1, 2)) for name, y in
            (("naive", naive), ("careful", careful))}
    ours = _rel(ref, _keras(x, size, **kw))
    print(f"size {size}: tf.nn.lrn naive {errs['naive']:.2e}, careful {errs['careful']:.2e}; ours {ours:.2e}")
    assert errs["naive"] > 1e-3
    assert (errs["careful"] > 1e-3) if size % 2 == 0 else (errs["careful"] <= FLOAT32_TOLERANCE)
    assert ours <= FLOAT32_TOLERANCE


def _onnx_lrn_model(size: int, alpha: float, beta: float, k: float) -> onnx.ModelProto:
    """A graph holding ONNX's ``LRN`` operator alone."""
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=alpha, beta=beta, bias=k)
    spec = lambda n: helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)  # noqa: E731
    graph = helper.make_graph([node], "lrn", [spec("x")], [spec("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)  # opset 17's IR


def _onnx_spec_lrn(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """ONNX's ``LRN`` as its specification words it (float64): the sum runs over channels
    ``max(0, c - floor((size-1)/2)) <= i <= min(C-1, c + ceil((size-1)/2))``. (onnx 1.23's
    ``onnx.reference`` LRN loops over the batch axis instead of the channels, so it is not used here.)"""
    x64, channels = x.astype(np.float64), x.shape[1]
    before, after = (size - 1) // 2, -(-(size - 1) // 2)
    square_sum = np.stack([np.sum(x64[:, max(0, c - before):min(channels, c + after + 1)] ** 2, axis=1)
                           for c in range(channels)], axis=1)
    return (x64 / (k + alpha / size * square_sum) ** beta).astype(np.float32)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 64])
def test_onnx_lrn_operator_centres_even_windows_differently(size):
    """Why no exporter may write ONNX ``LRN`` for torch's layer: it agrees with torch for odd sizes only.
    For an even size the specification centres the window the other way (one more channel after ``c``) and
    onnxruntime's CPU kernel refuses to load the node at all."""
    import onnxruntime as ort

    x, kw = _input(64), strong(size)
    ref = _torch(x, size, **kw)
    err = _rel(ref, _onnx_spec_lrn(x, size, **kw))
    model = _onnx_lrn_model(size, **kw).SerializeToString()
    if size % 2:
        ort_err = _rel(ref, ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0])
        print(f"size {size}: ONNX LRN vs torch, relative error {err:.2e} (specification), {ort_err:.2e} (onnxruntime)")
        assert err <= FLOAT32_TOLERANCE and ort_err <= FLOAT32_TOLERANCE
        return
    print(f"size {size}: ONNX LRN vs torch, relative error {err:.2e} (specification); onnxruntime refuses it")
    assert err > 1e-3
    with pytest.raises(Exception, match="size_ % 2 == 1"):
        ort.InferenceSession(model, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [4, 5, 64])
def test_both_onnx_exports_compute_torch_lrn(size, tmp_path):
    """torch's exporter (dynamo=False) decomposes ``LocalResponseNorm`` into Pad + AveragePool, as our Keras
    layer does through tf2onnx; neither writes ``LRN``. Both files match torch for even sizes too."""
    channels, kw = 64, strong(size)
    module = torch.nn.LocalResponseNorm(size, **kw)
    keras_model = build_model(tf_impl.LocalResponseNorm(size, **kw), (None, None, channels), "lrn")
    files = {"onnx:torch": export_onnx(module, tmp_path / "lrn.torch.onnx", (1, channels, 5, 7)),
             "onnx:keras": export_onnx(keras_model, tmp_path / "lrn.keras.onnx")}
    x = _input(channels, seed=1)  # another batch size and input than the export's trace
    ref = _torch(x, size, **kw)
    for key, path in files.items():
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert "LRN" not in ops and {"Pad", "AveragePool"} <= ops, f"{key}: ops {sorted(ops)}"
        feed = x if key == "onnx:torch" else x.transpose(0, 2, 3, 1)
        y = session(path).run(None, {"input": feed})[0]
        err = _rel(ref, y if key == "onnx:torch" else y.transpose(0, 3, 1, 2))
        print(f"size {size}: {key} vs torch, relative error {err:.2e}")
        assert err <= FLOAT32_TOLERANCE


def test_bad_size_is_refused():
    with pytest.raises(ValueError, match="positive integer, got 0"):
        tf_impl.LocalResponseNormLayer(0)


def test_layer_round_trips_through_keras_safe_mode(tmp_path):
    from tf_impl.backend import keras

    model = build_model(tf_impl.LocalResponseNorm(4, **strong(4)), (None, None, 8), "lrn")
    model.save(tmp_path / "lrn.keras")
    loaded = keras.saving.load_model(tmp_path / "lrn.keras", safe_mode=True)
    x = _input(8).transpose(0, 2, 3, 1)
    assert loaded.layers[-1].get_config()["size"] == 4
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
