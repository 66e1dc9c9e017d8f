"""Bad input gets a clear error naming what was expected and what was received."""
import os
import subprocess
import sys

import pytest
import torch

import parity
from parity.engine import Harness
from parity.onnx_io import load_checked, session
from tests.conftest import SMALL_ASPP


def test_unknown_registry_name_lists_the_known_ones():
    with pytest.raises(parity.UnknownModelError, match=r"unknown model 'resnet5'; expected one of: .*aspp"):
        parity.build("resnet5", "torch")


def test_unknown_framework():
    with pytest.raises(ValueError, match=r"framework must be 'torch' or 'keras', got 'jax'"):
        parity.build("aspp", "jax")


@pytest.fixture(scope="module")
def small_harness():
    with Harness("aspp", onnx=False, **SMALL_ASPP) as h:
        yield h


@pytest.mark.parametrize("shape, expected", [
    ((1, 13, 13, 8), r"'aspp' must be \(N, C, H, W\) with C=8, got 1x13x13x8 \(that looks like NHWC"),
    ((8, 13, 13), r"'aspp' must be \(N, C, H, W\) with C=8, all positive, got 8x13x13"),
    ((1, 3, 13, 13), r"with C=8, got 1x3x13x13"),
    ((1, 8, 0, 13), r"all positive, got 1x8x0x13"),
])
def test_wrong_input_rank_or_layout(small_harness, shape, expected):
    with pytest.raises(parity.InputShapeError, match=expected):
        small_harness.compare(shape)


def test_twins_that_do_not_match_fail_the_check_with_the_tensor_named():
    with pytest.raises(parity.TransferError, match=r"conv1x1\.0\.weight: expected Keras shape"):
        parity.transfer(parity.build("aspp", "torch", in_channels=8, filters=4),
                        parity.build("aspp", "keras", in_channels=8, filters=5))


def test_missing_onnx_file(tmp_path):
    with pytest.raises(parity.OnnxFileError, match=r"expected an ONNX file at .*nothing\.onnx, found none"):
        load_checked(tmp_path / "nothing.onnx")


def test_corrupted_and_truncated_onnx_files(tmp_path):
    path = parity.export_onnx(parity.build("aspp", "torch", **SMALL_ASPP), tmp_path / "a.onnx", (1, 8, 5, 5))
    load_checked(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(parity.OnnxFileError, match="expected a valid ONNX model in .*a.onnx"):
        load_checked(path)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(parity.OnnxFileError):
        load_checked(path)
    with pytest.raises(parity.OnnxFileError, match="onnxruntime could not load"):
        session(path)


def test_export_needs_a_sample_shape_for_torch_and_a_known_model_type(tmp_path):
    with pytest.raises(ValueError, match=r"needs input_shape \(N, C, H, W\) for its trace; got None"):
        parity.export_onnx(parity.build("aspp", "torch", **SMALL_ASPP), tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="expects a torch.nn.Module or a keras.Model, got Tensor"):
        parity.export_onnx(torch.zeros(1), tmp_path / "a.onnx")


@pytest.mark.parametrize("module", ["parity.engine", "parity.weight_transfer", "parity.onnx_io"])
def test_keras_backend_is_pinned_to_tensorflow(module):
    """Whichever of our modules is imported first pins the backend, even one that also uses tensorflow
    (``import tensorflow`` can import keras before the pin)."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    code = f"import {module}, keras; print(keras.backend.backend())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tensorflow"


def test_keras_imported_first_with_another_backend_is_an_error():
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    code = "import keras; import tf_impl"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "already imported with backend 'torch'" in out.stderr
