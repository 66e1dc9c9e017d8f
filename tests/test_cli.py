"""The ``parity`` command: list, check, exit codes, JSON."""
import dataclasses
import json
import subprocess
import sys

from parity import cli, registry


def test_python_dash_m_parity_list_is_fast_and_lists_the_registry():
    out = subprocess.run([sys.executable, "-m", "parity", "list"], capture_output=True, text=True, check=True)
    for name in registry.names():
        assert name in out.stdout
    assert "3,984,384" in out.stdout


def test_check_prints_a_row_per_runtime_pair(capsys):
    assert cli.main(["check", "aspp_conv_bn_relu"]) == 0
    out = capsys.readouterr().out
    print(out)
    rows = [line for line in out.splitlines() if line.startswith("aspp_conv_bn_relu ")]
    assert len(rows) == 6 and all(r.rstrip().endswith("PASS") for r in rows)
    assert "torch ~ keras" in out and "onnx:torch ~ onnx:keras" in out
    assert "1 passed, 0 failed" in out


def test_check_json_without_onnx(capsys):
    assert cli.main(["check", "aspp_conv_bn_relu", "--no-onnx", "--json", "--input-shape", "2,1024,5,7"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and list(report["errors"]) == ["torch ~ keras"]
    assert report["per_shape"][0]["input_shape"] == [2, 1024, 5, 7]
    assert report["counts"]["keras"] == {"trainable": 525_312, "statistics": 1_024, "total": 526_336}
    assert report["errors"]["torch ~ keras"]["rel"] <= 1e-5


def test_failing_check_exits_1_and_says_why(capsys, monkeypatch):
    spec = registry.get("aspp_conv_bn_relu")
    monkeypatch.setitem(registry._REGISTRY, spec.name, dataclasses.replace(spec, tolerance=1e-12))
    assert cli.main(["check", spec.name, "--no-onnx"]) == 1
    out = capsys.readouterr().out
    assert "FAIL aspp_conv_bn_relu: torch ~ keras at 1x1024x13x13: relative error" in out
    assert "0 passed, 1 failed" in out


def test_unknown_name_and_bad_shape_exit_2(capsys):
    assert cli.main(["check", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert cli.main(["check", "aspp_conv_bn_relu", "--no-onnx", "--input-shape", "1,13,13,1024"]) == 2
    assert "looks like NHWC" in capsys.readouterr().err
