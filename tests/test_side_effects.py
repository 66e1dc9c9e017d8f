"""Exporting and tracing leave the model as they found it. A torch model in train mode used to run a
forward in train mode: its BatchNorm running statistics moved (and the ONNX file then differed from the
model's eval output by 0.092), and the trace compared torch's batch statistics with Keras's inference."""
import numpy as np
import pytest
import torch

import parity
from parity.compare import pair_error
from parity.onnx_io import session
from parity.randomize import randomize_torch
from parity.trace import trace

NAME = "resnet_conv_bn"  # conv 7x7/2 + BatchNorm


@pytest.fixture
def train_mode_twins():
    module = randomize_torch(parity.build(NAME, "torch"), seed=5).train()
    model = parity.build(NAME, "keras")
    parity.transfer(module, model)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    return module, model, state


def _unchanged(module, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in module.state_dict().items())


def test_export_of_a_train_mode_model_changes_nothing_and_exports_inference(tmp_path, train_mode_twins):
    module, _, state = train_mode_twins
    path = parity.export_onnx(module, tmp_path / "m.onnx", (2, 3, 33, 47))
    assert module.training and all(m.training for m in module.modules())
    assert _unchanged(module, state), "running statistics moved during the export"
    x = np.random.default_rng(0).standard_normal((2, 3, 33, 47)).astype(np.float32)
    module.eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    err = pair_error([ref], session(path).run(None, {"input": x}))
    print(f"ONNX file of a train-mode model against the model's eval output: {err}")
    assert err.within(1e-5)


def test_trace_of_a_train_mode_model_changes_nothing_and_compares_inference(train_mode_twins):
    module, model, state = train_mode_twins
    x = np.random.default_rng(1).standard_normal((2, 3, 33, 47)).astype(np.float32)
    report = trace(module, model, x)
    print(report.table())
    assert module.training and _unchanged(module, state)
    assert report.first_divergence is None
