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
from tests.faults import onnx_fault
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
    assert len(report.rows) == 30 and all(r.ok and not any(r.notes.values()) for r in report.rows)
    assert all(r.errors["keras"].within(1e-5) for r in report.rows)
    print(f"worst layer: relative error {max(r.errors['keras'].rel for r in report.rows):.2e}")


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
    with pytest.raises(parity.TransferError, match=r"3: expected padding .* \(1, 1, 1, 1\), received padding 'same'"):
        parity.transfer(module, naive)  # the settings check sees it before any number does
    parity.transfer(module, naive, allow_numerics_mismatch=True)
    ok, bad = trace(module, good, x), trace(module, naive, x)
    print(ok.table(), bad.table(), sep="\n\n")
    assert ok.first_divergence is None
    assert bad.first_divergence == "3"
    assert [r.path for r in bad.rows if r.ok] == ["0", "1", "2"]
    assert next(r for r in bad.rows if r.path == "3").errors["keras"].rel > 1e-2


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
    assert report.first_divergence is None and not any(any(r.notes.values()) for r in report.rows)
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
    assert "first divergence: keras: 0;" in message


# --- the ONNX runtimes: intermediate values of both files, mapped back to torch paths ----------------------

@pytest.fixture(scope="module")
def onnx_harness():
    with Harness("aspp", **SMALL_ASPP) as h:
        yield h


def _nudge(a):
    a.reshape(-1)[3] += np.float32(0.05)
    return a


def _conv_initializer(path, module, module_path):
    """The weight initializer of the Conv node of torch module ``module_path`` in a torch ONNX file."""
    import onnx

    from parity.onnx_taps import torch_resolver

    resolve = torch_resolver(module)
    model = onnx.load(str(path), load_external_data=False)
    return next(n.input[1] for n in model.graph.node
                if n.op_type == "Conv" and (resolve(n.name) or ("",))[0] == module_path)


def test_an_onnx_file_with_one_perturbed_initializer_is_traced_to_its_layer(onnx_harness):
    """One weight nudged inside each ONNX file in turn: that runtime's first divergence is the layer that
    holds it; the others stay clean. In the torch file the conv computes its folded BatchNorm too, so the
    divergence shows at the BatchNorm's path, and the conv's row says why it has no value of its own."""
    h, shape = onnx_harness, (1, 8, 7, 11)
    clean = h.trace(shape)
    assert clean.first == {"keras": None, "onnx:torch": None, "onnx:keras": None}
    with onnx_fault(h, "onnx:keras", "separable.1.1.0/kernel", _nudge):
        keras_file = h.trace(shape)
    name = _conv_initializer(h.paths["onnx:torch"], h.torch_model, "separable.1.1.0")
    with onnx_fault(h, "onnx:torch", name, _nudge):
        torch_file = h.trace(shape)
    print(keras_file.table(), torch_file.table(), sep="\n\n")
    assert keras_file.first == {"keras": None, "onnx:torch": None, "onnx:keras": "separable.1.1.0"}
    assert torch_file.first == {"keras": None, "onnx:torch": "separable.1.1.1", "onnx:keras": None}
    rows = {r.path: r for r in torch_file.rows}
    assert "onnx:torch" not in rows["separable.1.1.0"].errors
    assert rows["separable.1.1.0"].notes["onnx:torch"] == "separable.1.1.1 folded in, compared there"
    assert rows["separable.1.1.1"].errors["onnx:torch"].rel > 1e-3
    before = [r for r in torch_file.rows][: [r.path for r in torch_file.rows].index("separable.1.1.0")]
    assert all(r.ok for r in before)
    # every leaf has a value in some ONNX runtime, and the rows without one say why
    for r in clean.rows:
        for runtime in ("onnx:torch", "onnx:keras"):
            assert runtime in r.errors or r.notes[runtime], (r.path, runtime)
    assert sum("onnx:torch" in r.errors for r in clean.rows) >= 20 and sum(
        "onnx:keras" in r.errors for r in clean.rows) >= 25


def test_shared_modules_are_matched_call_by_call_in_both_onnx_files(tmp_path):
    """A conv and a ReLU called twice: torch's exporter names the second call ``/conv_1``, tf2onnx's scopes
    are ``conv_1`` and ``conv_3``; each call is compared with its own torch call."""
    module = randomize_torch(TorchShared().eval(), seed=3)
    model = knn.build_model(KerasShared(), (None, None, 4), "shared")
    parity.transfer(module, model)
    x = np.random.default_rng(3).standard_normal((1, 4, 6, 5)).astype(np.float32)
    paths = {"onnx:torch": parity.export_onnx(module, tmp_path / "t.onnx", x.shape),
             "onnx:keras": parity.export_onnx(model, tmp_path / "k.onnx")}
    report = trace(module, model, x, onnx_paths=paths)
    print(report.table())
    assert [r.path for r in report.rows] == ["conv[0]", "relu[0]", "conv[1]", "relu[1]", "out"]
    assert all(set(r.errors) == {"keras", "onnx:torch", "onnx:keras"} and r.ok for r in report.rows)
    with onnx_fault(_Files(paths), "onnx:keras", "conv/kernel", _nudge):  # shared: both calls change
        assert trace(module, model, x, onnx_paths=paths).first["onnx:keras"] == "conv[0]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.onnx", "k.onnx.data", "t.onnx"]  # no tap left


class _Files:
    """What :func:`tests.faults.onnx_fault` needs of a harness: the paths and a sessions dict."""

    def __init__(self, paths):
        self.paths, self.sessions = paths, {}


def test_a_layout_that_the_shape_cannot_tell_is_a_note_not_a_guess():
    from parity.onnx_taps import NHWC, as_nchw

    cube = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)
    value, note = as_nchw(cube, None, (2, 3, 3, 3))
    assert value is None and "fits torch's (2, 3, 3, 3) as NCHW and as NHWC" in note
    value, note = as_nchw(cube, NHWC, (2, 3, 3, 3))  # the graph says NHWC: no guess needed
    assert np.array_equal(value, cube.transpose(0, 3, 1, 2)) and note == ""
    value, _ = as_nchw(np.zeros((2, 5, 7, 3)), None, (2, 3, 5, 7))
    assert value.shape == (2, 3, 5, 7)


def test_cli_check_trace_shows_every_runtime(capsys):
    assert cli.main(["check", "resnet_conv_bn", "--trace", "--input-shape", "1,3,17,19"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "keras rel  onnx:torch rel  onnx:keras rel" in out
    assert "no layer beyond tolerance in keras, onnx:torch, onnx:keras" in out


class TorchReaching(tnn.Module):
    """FPN's shape: the root calls its backbone's children itself, and one conv runs on two map sizes."""

    def __init__(self):
        super().__init__()
        self.backbone = tnn.Module()
        self.backbone.conv1 = tnn.Conv2d(3, 4, 3, padding=1)
        self.backbone.layer1 = tnn.Sequential(tnn.Conv2d(4, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU())
        self.pool, self.smooth = tnn.MaxPool2d(2), tnn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        c = self.backbone.layer1(self.backbone.conv1(x))
        return self.smooth(c), self.smooth(self.pool(c))


class KerasReaching(knn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = knn.Module()
        self.backbone.conv1 = knn.Conv2d(3, 4, 3, padding=1)
        self.backbone.layer1 = knn.Sequential(knn.Conv2d(4, 4, 3, padding=1), knn.BatchNorm2d(4), knn.ReLU())
        self.pool, self.smooth = knn.MaxPool2d(2), knn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        c = self.backbone.layer1(self.backbone.conv1(x))
        return self.smooth(c), self.smooth(self.pool(c))


def test_onnx_scopes_map_back_when_the_root_reaches_into_a_child_and_keras_reorders_calls(tmp_path):
    """torch's exporter names ``backbone.conv1`` just ``/conv1`` when the root calls it; Keras runs the two
    calls of the shared conv in the other order (both feed an output), and TensorFlow numbers its scopes in
    that order. Every row still gets the right value in every runtime."""
    from parity.onnx_taps import keras_call_order

    module = randomize_torch(TorchReaching().eval(), seed=4)
    model = knn.build_model(KerasReaching(), (None, None, 3), "reaching")
    parity.transfer(module, model)
    assert keras_call_order(model)["smooth"] == [1, 0]
    x = np.random.default_rng(4).standard_normal((1, 3, 10, 14)).astype(np.float32)
    paths = {"onnx:torch": parity.export_onnx(module, tmp_path / "t.onnx", x.shape),
             "onnx:keras": parity.export_onnx(model, tmp_path / "k.onnx")}
    report = trace(module, model, x, onnx_paths=paths)
    print(report.table())
    assert [r.path for r in report.rows] == ["backbone.conv1", "backbone.layer1.0", "backbone.layer1.1",
                                             "backbone.layer1.2", "smooth[0]", "pool", "smooth[1]"]
    assert report.first == {"keras": None, "onnx:torch": None, "onnx:keras": None}
    missing = {(r.path, rt) for r in report.rows for rt in ("onnx:torch", "onnx:keras") if rt not in r.errors}
    assert missing == {("backbone.layer1.0", "onnx:torch")}  # its BatchNorm is folded in: compared at .1
