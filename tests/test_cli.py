"""The ``parity`` command: list, check, exit codes, JSON, streaming, quiet start-up, help."""
import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

import parity
from parity import cli, engine, registry
from parity.registry import Counts


def test_python_dash_m_parity_list_is_fast_and_lists_the_registry():
    out = subprocess.run([sys.executable, "-m", "parity", "list"], capture_output=True, text=True, check=True)
    for name in registry.names():
        assert name in out.stdout
    assert "3,984,384" in out.stdout


def test_list_filters_by_pattern(capsys):
    assert cli.main(["list", "resnet_*", "lrn_?"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["lrn_5", "resnet_conv_bn", "resnet_bottleneck"]
    assert cli.main(["list", "nothing*"]) == 2
    assert "no registry name matches 'nothing*'" in capsys.readouterr().err


def test_check_streams_each_model_with_a_counter(capsys, monkeypatch):
    """Model 1's rows and verdict are on stdout before model 2 starts its report; rows stay under 120
    characters; the BatchNorm folding of torch's ONNX export is named in its rows."""
    seen_before_second = []
    report = engine.Harness.report

    def spy(self, *args, **kwargs):
        if self.name == "lrn_5":
            seen_before_second.append(capsys.readouterr().out)
        return report(self, *args, **kwargs)

    monkeypatch.setattr(engine.Harness, "report", spy)
    assert cli.main(["check", "aspp_conv_bn_relu", "lrn_5"]) == 0
    first = seen_before_second[0]
    out = first + capsys.readouterr().out
    print(out)
    assert first.index("[1/2] aspp_conv_bn_relu: running at 1x1024x13x13, 3x1024x7x11") < \
        first.index("aspp_conv_bn_relu  torch ~ keras") < first.index("[1/2] aspp_conv_bn_relu: PASS in")
    assert "[2/2] lrn_5: running at 1x64x7x9, 2x64x5x5" in first
    assert out.splitlines()[1].split() == ["model", "pair", "max", "abs", "relative", "result", "parameters", "(a",
                                           "|", "b)"]
    rows = [line for line in out.splitlines() if line.startswith("aspp_conv_bn_relu ")]
    assert len(rows) == 6 and all(" PASS " in r for r in rows)
    assert all(len(line) <= 120 for line in out.splitlines())
    folded = [r for r in rows if "onnx:torch" in r]
    assert len(folded) == 3 and all(r.endswith("(BN folded, expected)") for r in folded)
    assert "524,800" in folded[0] and "ParamCount" not in out
    assert out.rstrip().splitlines()[-1].startswith("2 passed, 0 failed in")


def test_check_json_without_onnx(capsys):
    assert cli.main(["check", "aspp_conv_bn_relu", "--no-onnx", "--json", "--input-shape", "2,1024,5,7"]) == 0
    captured = capsys.readouterr()
    (report,) = json.loads(captured.out)
    assert captured.err == ""
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


def test_a_wrong_count_fails_its_rows_with_the_numbers(capsys, monkeypatch):
    spec = registry.get("aspp_conv_bn_relu")
    monkeypatch.setitem(registry._REGISTRY, spec.name,
                        dataclasses.replace(spec, params=Counts(525_312, 1_000, "a wrong figure")))
    assert cli.main(["check", spec.name, "--no-onnx"]) == 1
    out = capsys.readouterr().out
    print(out)
    (row,) = [line for line in out.splitlines() if line.startswith("aspp_conv_bn_relu ")]
    assert " FAIL " in row and row.endswith("526,336 | 526,336 (torch expected 526,312 (525,312 trainable + "
                                            "1,000 statistics); keras expected 526,312 (525,312 trainable + "
                                            "1,000 statistics))")
    assert "FAIL aspp_conv_bn_relu: torch parameters: expected 526,312 (525,312 trainable + 1,000 statistics) " \
           "(a wrong figure), counted 526,336 (525,312 trainable + 1,024 statistics)" in out
    assert "ParamCount" not in out


def test_unknown_name_and_bad_shape_exit_2(capsys):
    assert cli.main(["check", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert cli.main(["check", "aspp_conv_bn_relu", "--no-onnx", "--input-shape", "1,13,13,1024"]) == 2
    assert "looks like NHWC" in capsys.readouterr().err
    assert cli.main(["check", "aspp_conv_bn_relu", "vgg_stage", "--input-shape", "1,3,1,1"]) == 2  # both, up front
    err = capsys.readouterr()
    assert "'aspp_conv_bn_relu' must be (N, C, H, W) with C=1024" in err.err and err.out == ""
    assert cli.main(["check", "vgg_stage", "--input-shape", "1,3,1,1"]) == 2
    assert "the smallest input is 1x3x2x2" in capsys.readouterr().err


def test_trace_reuses_the_harness_and_prints_on_stdout(capsys, monkeypatch):
    built = []
    init = engine.Harness.__init__
    monkeypatch.setattr(engine.Harness, "__init__", lambda self, *a, **k: built.append(a) or init(self, *a, **k))
    assert cli.main(["check", "lrn_5", "--no-onnx", "--trace"]) == 0
    captured = capsys.readouterr()
    assert len(built) == 1 and captured.err == ""
    heading = captured.out.index("lrn_5: per-layer errors against torch at 1x64x7x9")
    header = captured.out[heading:].splitlines()[1].split()
    assert header[-3:] == ["keras", "rel", "status"]


def test_check_report_reads_as_a_table():
    report = parity.check("lrn_5", onnx=False)
    text = str(report)
    print(text)
    lines = text.splitlines()
    assert lines[0].startswith("lrn_5: PASS at 1x64x7x9, 2x64x5x5 (tolerance: relative error <= 1e-05; ")
    assert lines[1:] == report.table().splitlines() and len(lines) == 3
    assert "float32 throughout" not in text  # the tolerance's reason stays in report.tolerance_reason
    assert report.rows()[0][:2] == ("lrn_5", "torch ~ keras") and report.rows()[0][4] == "PASS"


def test_summary_is_exported():
    text, ok = parity.summary("lrn_5", "torch")
    assert ok and text.startswith("lrn_5: torch (input 1x64x7x9)\n")


def test_version_help_and_bare_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"parity {cli._version()}"
    assert cli.main([]) == 0
    bare = capsys.readouterr().out
    assert bare.startswith("usage: parity") and "check" in bare and "exit codes:" in bare
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "exit codes:" in out and "2  bad input" in out


def test_every_option_has_help_text():
    p = cli.parser()
    subparsers = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in [("parity", p), *subparsers.items()]:
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"
    assert cli.parser().parse_args(["check", "-v"]).verbose and cli.parser().parse_args(["-v", "check"]).verbose


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_commands_import_only_the_frameworks_they_need():
    """``check nosuch`` loads neither torch nor TensorFlow; ``summary --framework torch`` loads torch only."""
    out = _run("import sys; from parity import cli\n"
               "rc = cli.main(['check', 'nosuch'])\n"
               "print(rc, 'torch' in sys.modules, 'tensorflow' in sys.modules)\n"
               "rc = cli.main(['summary', 'vgg_stage', '--framework', 'torch', '--input-shape', '1,3,8,8'])\n"
               "print(rc, 'torch' in sys.modules, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    lines = out.stdout.splitlines()
    assert lines[0] == "2 False False" and lines[-1] == "0 True False False", out.stdout + out.stderr


def test_start_up_lines_are_filtered_without_changing_a_number():
    """The same check, quiet and with -v: TensorFlow's start-up lines only in the second, identical errors."""
    cmd = "import sys; from parity import cli; sys.exit(cli.main(sys.argv[1:]))"
    args = ["check", "lrn_5", "aspp_conv_bn_relu", "--no-onnx", "--json"]
    runs = [subprocess.Popen([sys.executable, "-c", cmd, *args, *extra], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for extra in ([], ["-v"])]
    quiet, verbose = [subprocess.CompletedProcess(r.args, 0, *r.communicate()) for r in runs]
    quiet.returncode, verbose.returncode = runs[0].returncode, runs[1].returncode
    print("quiet stderr:", repr(quiet.stderr), "\nverbose stderr:", verbose.stderr)
    assert quiet.returncode == verbose.returncode == 0
    assert quiet.stderr == ""
    assert "absl::InitializeLog()" in verbose.stderr and "oneDNN custom operations are on" in verbose.stderr
    errors = [[(r["errors"], [s["errors"] for s in r["per_shape"]]) for r in json.loads(p.stdout)]
              for p in (quiet, verbose)]
    assert errors[0] == errors[1]  # every figure equal to the last bit
