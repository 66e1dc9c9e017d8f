"""The per-layer divergence report names the layer that was broken on purpose."""
import numpy as np
import pytest
import torch
from torch import nn as tnn

import parity
from parity import cli
from parity.engine import Harness
from parity.randomize import randomize_torch
from parity.trace import trace
from tests.conftest import SMALL_ASPP
from tf_impl import nn as knn
from tf_impl.backend import keras


@pytest.fixture
def pair():
    """Small ASPP twins with the same random weights, and an odd-sized NCHW input."""
    module = randomize_torch(parity.build("aspp", "torch", **SMALL_ASPP), seed=1)
    model = parity.build("aspp", "keras", **SMALL_ASPP)
    parity.transfer(module, model)
    return module, model, np.random.default_rng(0).standard_normal((2, 8, 7, 11)).astype(np.float32)


def _rows_before(report, path):
    rows = [r for r in report.rows]
    return rows[: [r.path for r in rows].index(path)]


def test_matching_twins_have_no_divergence(pair):
    report = trace(*pair)
    print(report.table())
    assert report.first_divergence is None
    assert len(report.rows) == 30 and all(r.ok and not r.note for r in report.rows)
    assert max(r.rel for r in report.rows) <= 1e-5


def test_one_weight_perturbed_after_transfer(pair):
    module, model, x = pair
    kernel = model.get_layer("separable.1.1.0").kernel
    kernel.assign(kernel.numpy() + np.eye(1, kernel.numpy().size, 5).reshape(kernel.shape).astype(np.float32) * 0.01)
    report = trace(module, model, x)
    print(report.table())
    assert report.first_divergence == "separable.1.1.0"
    assert all(r.ok for r in _rows_before(report, "separable.1.1.0"))
    assert ">>  separable.1.1.0" in report.table() and "<-- first divergence" in report.table()


def test_one_batchnorm_eps_changed(pair):
    module, model, x = pair
    module.project[1].eps = 1e-5  # the twin uses the article's 1e-3
    report = trace(module, model, x)
    print(report.table())
    assert report.first_divergence == "project.1"
    assert all(r.ok for r in _rows_before(report, "project.1"))


# --- a padding mode swapped: TF's 'same' on a stride-2 conv pads bottom/right only ---------------------------

class TorchDown(tnn.Sequential):
    def __init__(self):
        super().__init__(tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(),
                         tnn.Conv2d(8, 8, 3, stride=2, padding=1), tnn.ReLU(), tnn.Conv2d(8, 4, 1))


class SameConv2d(knn.Conv2d):
    """The naive twin: Keras 'same' padding at stride 2."""

    def make_layers(self, name):
        return [keras.layers.Conv2D(self.out_channels, self.kernel_size, self.stride, padding="same", name=name)]


def _keras_down(conv):
    return knn.build_model(knn.Sequential(knn.Conv2d(3, 8, 3, padding=1), knn.BatchNorm2d(8), knn.ReLU(),
                                          conv(8, 8, 3, stride=2, padding=1), knn.ReLU(), knn.Conv2d(8, 4, 1)),
                           (None, None, 3), "down")


def test_padding_mode_swapped_on_a_stride_2_conv():
    module = randomize_torch(TorchDown().eval(), seed=2)
    x = np.random.default_rng(1).standard_normal((1, 3, 10, 13)).astype(np.float32)  # even H: 'same' pads 0/1
    good, naive = _keras_down(knn.Conv2d), _keras_down(SameConv2d)
    parity.transfer(module, good)
    parity.transfer(module, naive)
    ok, bad = trace(module, good, x), trace(module, naive, x)
    print(ok.table(), bad.table(), sep="\n\n")
    assert ok.first_divergence is None
    assert bad.first_divergence == "3"
    assert [r.path for r in bad.rows if r.ok] == ["0", "1", "2"]
    assert next(r for r in bad.rows if r.path == "3").rel > 1e-2


def test_flatten_rows_are_compared_in_keras_order():
    """A Flatten's output is C, H, W-ordered in torch and H, W, C in Keras; the trace reorders torch's before
    comparing, so a correct twin shows no false divergence there (compared as-is, it would differ)."""
    module = randomize_torch(tnn.Sequential(tnn.Conv2d(3, 4, 3), tnn.Flatten(), tnn.Linear(4 * 3 * 5, 6)).eval())
    model = knn.build_model(knn.Sequential(knn.Conv2d(3, 4, 3), knn.Flatten(), knn.Linear(4 * 3 * 5, 6)),
                            (5, 7, 3), "flat")
    parity.transfer(module, model)
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 7)).astype(np.float32)
    report = trace(module, model, x)
    print(report.table())
    assert report.first_divergence is None and [r.path for r in report.rows] == ["0", "1", "2"]
    with torch.no_grad():
        torch_flat = module[1](module[0](torch.from_numpy(x))).numpy()
    keras_flat = keras.Model(model.inputs[0], model.get_layer("1").output)(x.transpose(0, 2, 3, 1)).numpy()
    assert np.abs(torch_flat - keras_flat).max() > 1e-2  # the naive comparison would flag it


class TorchShared(tnn.Module):
    """One conv and one ReLU applied twice, as FPN's shared smoothing conv and torchvision's shared ReLU."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.out = tnn.Conv2d(4, 4, 3, padding=1), tnn.ReLU(), tnn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.out(self.relu(self.conv(self.relu(self.conv(x)))))


class KerasShared(knn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.out = knn.Conv2d(4, 4, 3, padding=1), knn.ReLU(), knn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.out(self.relu(self.conv(self.relu(self.conv(x)))))


def test_shared_modules_are_compared_call_by_call():
    module = randomize_torch(TorchShared().eval(), seed=3)
    model = knn.build_model(KerasShared(), (None, None, 4), "shared")
    parity.transfer(module, model)
    x = np.random.default_rng(3).standard_normal((1, 4, 6, 5)).astype(np.float32)
    report = trace(module, model, x)
    print(report.table())
    assert [r.path for r in report.rows] == ["conv[0]", "relu[0]", "conv[1]", "relu[1]", "out"]
    assert report.first_divergence is None and not any(r.note for r in report.rows)
    module.relu.forward = lambda t: torch.nn.functional.leaky_relu(t, 0.1)  # breaks both calls of the ReLU
    assert trace(module, model, x).first_divergence == "relu[0]"


# --- through the engine, the CLI and the parity test ------------------------------------------------------

def test_check_report_names_the_first_divergence():
    with Harness("aspp", onnx=False, **SMALL_ASPP) as h:
        assert h.report([(1, 8, 5, 5)]).first_divergence is None
        bn = h.keras_model.get_layer("separable.2.0.1")
        bn.moving_variance.assign(bn.moving_variance.numpy() * 1.5)
        report = h.report([(1, 8, 5, 5)])
    assert not report.ok and report.first_divergence == "separable.2.0.1"
    assert any("first diverges at layer separable.2.0.1" in p for p in report.problems)


def test_cli_check_trace_prints_the_table(capsys):
    assert cli.main(["check", "aspp_conv_bn_relu", "--no-onnx", "--trace", "--input-shape", "1,1024,5,7"]) == 0
    out = capsys.readouterr().out
    print(out)
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["module", "path"])
    assert [line.split()[0] for line in lines[start + 1:start + 4]] == ["0", "1", "2"]
    assert "no layer beyond tolerance" in out


def test_failing_parity_test_attaches_the_trace(monkeypatch):
    from parity import test_parity
    from parity.test_parity import test_outputs_match

    monkeypatch.setattr(test_parity, "record", lambda *args: None)  # deliberate fault: not a measured error
    with Harness("aspp_conv_bn_relu", in_channels=8, out_channels=4) as h:
        conv = h.keras_model.get_layer("0")
        conv.kernel.assign(conv.kernel.numpy() * 1.001)
        with pytest.raises(pytest.fail.Exception) as failure:
            test_outputs_match(h, (1, 8, 5, 5))
    message = str(failure.value)
    print(message)
    assert "torch ~ keras at 1x8x5x5: relative error" in message
    assert "first divergence: 0" in message
