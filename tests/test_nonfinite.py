"""NaN and Inf are divergences, end to end, in each of the four runtimes.

A NaN in one weight, or a BatchNorm gamma of 1e38 (which overflows float32 to Inf), is put into one runtime
at a time: the torch twin, the Keras twin, the torch ONNX file, the Keras ONNX file (an initializer
rewritten in the file). The check must fail, say which runtime and output holds how many non-finite values,
keep ``--json`` strict RFC 8259 JSON, and the per-layer trace must name the first layer whose output is
non-finite. (Before: ``np.max`` of an array with a NaN is NaN and ``max(0.0, nan)`` is 0.0, so a NaN
passed every tolerance; inf / inf is NaN, so an Inf did too; ``json.dump`` wrote ``Infinity``.)
"""
import json

import numpy as np
import pytest
import torch

import parity
from parity import cli
from parity.engine import Harness
from tests.faults import conv_weight_initializer, huge, keras_fault, one_nan, onnx_fault, torch_fault

SHAPE = (1, 8, 13, 13)


@pytest.fixture(scope="module")
def harness():
    """``aspp_conv_bn_relu`` (conv 1x1 ``0``, BatchNorm ``1``, ReLU ``2``), 8 -> 4 channels, four runtimes."""
    with Harness("aspp_conv_bn_relu", in_channels=8, out_channels=4) as h:
        yield h


def _fault(h, runtime: str, kind: str):
    """The context that breaks ``runtime``: ``nan`` puts one NaN into the conv weight, ``huge`` multiplies
    the BatchNorm gamma (in the torch ONNX file: the conv it was folded into) by 1e38."""
    change = one_nan if kind == "nan" else huge
    if runtime == "torch":
        tensor = (lambda m: m[0].weight) if kind == "nan" else (lambda m: m[1].weight)
        return torch_fault(h.torch_model, lambda m: tensor(m).copy_(torch.from_numpy(change(tensor(m).numpy()))))
    if runtime == "keras":
        layer = h.keras_model.get_layer("0" if kind == "nan" else "1")
        return keras_fault(layer.kernel if kind == "nan" else layer.gamma, change)
    if runtime == "onnx:torch":  # the BatchNorm is folded into the conv: both faults go to its weight
        return onnx_fault(h, runtime, conv_weight_initializer(h.paths[runtime]), change)
    return onnx_fault(h, runtime, "0/kernel" if kind == "nan" else "1/gamma", change)


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not RFC 8259 JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


RUNTIMES = ("torch", "keras", "onnx:torch", "onnx:keras")


@pytest.mark.parametrize("kind", ["nan", "huge"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_non_finite_runtime_fails_the_check_and_says_where(harness, runtime, kind, monkeypatch, capsys):
    with _fault(harness, runtime, kind):
        report = harness.report([SHAPE])
    with capsys.disabled():
        print(f"\n{runtime} {kind}:\n  " + "\n  ".join(report.problems))
    assert not report.ok
    bad = {pair: e for pair, e in report.errors.items() if not e.within(report.tolerance)}
    assert set(bad) == {pair for pair in report.errors if runtime in pair.split(" ~ ")}, sorted(bad)
    where = [p for p in report.problems if f"{runtime} output 0: " in p and "values are NaN or Inf" in p]
    assert where, report.problems
    count = int(where[0].split(f"{runtime} output 0: ")[1].split(" of ")[0])
    assert 0 < count <= np.prod(SHAPE) // 2  # 4 of 8 channels: the output has half the input's elements
    # the trace names the first layer whose output is non-finite, in the runtime that holds it (a torch
    # fault shows in every runtime, as each is compared with torch); the conv of the torch ONNX file also
    # computes its folded BatchNorm, so its value is compared at the BatchNorm's path "1"
    layer = "0" if kind == "nan" else "1"
    runtimes = ("keras", "onnx:torch", "onnx:keras") if runtime == "torch" else (runtime,)
    for other in runtimes:
        assert report.first_divergences[other] == ("1" if other == "onnx:torch" else layer), report.first_divergences
        assert f"torch ~ {other} first diverges at layer" in " ".join(report.problems)
    # --json stays strict JSON: the CLI writes this very report
    monkeypatch.setattr("parity.engine.Harness.report", lambda self, shapes=None: report)
    capsys.readouterr()
    assert cli.main(["check", "aspp_conv_bn_relu", "--json", "--no-onnx"]) == 1
    (written,) = _strict_json(capsys.readouterr().out)
    pair = next(iter(bad))
    assert written["errors"][pair]["rel"] is None and written["errors"][pair]["problems"]


def test_the_trace_names_the_first_non_finite_layer_in_each_onnx_file(harness):
    with onnx_fault(harness, "onnx:keras", "1/gamma", lambda a: np.full_like(a, np.nan)):
        report = harness.trace(SHAPE)
    print(report.table())
    assert report.first == {"keras": None, "onnx:torch": None, "onnx:keras": "1"}
    row = next(r for r in report.rows if r.path == "1")
    assert row.errors["onnx:keras"].problems == ("onnx:keras output 0: 676 of 676 values are NaN or Inf",)
    assert "non-finite FAIL" in report.table() and "first divergence (onnx:keras)" in report.table()


def test_port_refuses_a_checkpoint_holding_a_non_finite_tensor(tmp_path):
    module = parity.build("aspp_conv_bn_relu", "torch", in_channels=8, out_channels=4)
    with torch.no_grad():
        module[1].running_var[2] = float("inf")
    torch.save(module.state_dict(), tmp_path / "bad.pt")
    with pytest.raises(parity.CheckpointError, match=r"^1\.running_var: expected finite values, received 1 of 4 "
                                                     r"NaN or Inf"):
        parity.port("aspp_conv_bn_relu", tmp_path / "bad.pt", tmp_path / "out.weights.h5", in_channels=8,
                    out_channels=4)
    keras_model = parity.build("aspp_conv_bn_relu", "keras", in_channels=8, out_channels=4)
    kernel = keras_model.get_layer("0").kernel
    kernel.assign(one_nan(kernel.numpy()))
    keras_model.save_weights(tmp_path / "bad.weights.h5")
    with pytest.raises(parity.CheckpointError, match=r"^0/kernel: expected finite values, received 1 of 32 NaN"):
        parity.port("aspp_conv_bn_relu", tmp_path / "bad.weights.h5", tmp_path / "out.pt", in_channels=8,
                    out_channels=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "bad.weights.h5"]
