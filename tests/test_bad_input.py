"""Bad input never gives a traceback: every command and every public function, swept with the same bad
inputs. At the command line: exit code 2, one line on stderr naming what was expected and what was
received, nothing left on disk. From Python: the documented exception, with a one-line message.

Small registry blocks keep the sweep fast (``vgg_stage``, ``resnet_conv_bn``, ``aspp_conv_bn_relu``), the
commands run in-process through ``parity.cli.main``, and a few run as real processes to see their stderr.
Bad input must be refused before anything is built, so most cases take milliseconds.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import parity
from parity import cli
from parity.summaries import summary

NAME = "vgg_stage"  # 3 input channels, 224 x 224 by default
SHAPES = {  # kind: (--input-shape text, the message expected)
    "wrong rank": ("1,3,224", r"must be \(N, C, H, W\) with C=3, all positive, got 1x3x224"),
    "NHWC instead of NCHW": ("1,224,224,3", r"with C=3, got 1x224x224x3 \(that looks like NHWC; pass NCHW\)"),
    "zero dimension": ("1,3,0,224", r"with C=3, all positive, got 1x3x0x224"),
    "negative dimension": ("1,3,-5,224", r"with C=3, all positive, got 1x3x-5x224"),
    "non-integer shape": ("1,3,a,b", r"argument --input-shape: expected N,C,H,W \(for example 1,3,224,224\), "
                                     r"got '1,3,a,b'"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A real checkpoint of the block, a folder named like a checkpoint, and a folder no file can be made in."""
    from tests.test_safe_write import unwritable_folder

    root = tmp_path_factory.mktemp("bad")
    torch.save(parity.build(NAME, "torch").state_dict(), root / "src.pt")
    (root / "dir.pt").mkdir()
    (root / "afile").write_text("x")
    return {"root": root, "src": str(root / "src.pt"), "dir": str(root / "dir.pt"),
            "ro": unwritable_folder(root), "afile": str(root / "afile")}


def _cases(f):
    root = f["root"]
    port = ["port", NAME, "--from", f["src"], "--to"]
    cases = {
        "list: a pattern matching nothing": (["list", "nope"], r"no registry name matches 'nope'"),
        "list: unknown option": (["list", "--nope"], r"unrecognized arguments: --nope"),
        "check: unknown name": (["check", "nope"], r"unknown model 'nope'; expected one of: .*vgg_stage"),
        "check: --seed not an integer": (["check", NAME, "--seed", "abc"],
                                         r"argument --seed: expected a non-negative integer, got 'abc'"),
        "check: --seed negative": (["check", NAME, "--seed", "-1"],
                                   r"argument --seed: expected a non-negative integer, got '-1'"),
        "check: a shape that fits only the first name": (
            ["check", NAME, "aspp_conv_bn_relu", "--input-shape", "1,3,17,19"],
            r"input_shape for 'aspp_conv_bn_relu' must be \(N, C, H, W\) with C=1024, got 1x3x17x19"),
        "port: unknown name": (["port", "nope", "--from", f["src"], "--to", str(root / "o.keras")],
                               r"unknown model 'nope'"),
        "port: missing file": (["port", NAME, "--from", str(root / "missing.pt"), "--to", str(root / "o.keras")],
                               r"expected a checkpoint file at .*missing\.pt, found none"),
        "port: directory as checkpoint": (["port", NAME, "--from", f["dir"], "--to", str(root / "o.keras")],
                                          r"expected a checkpoint file at .*dir\.pt, found a directory"),
        "port: unwritable destination": (port + [os.path.join(f["ro"], "o.keras")],
                                         r"expected a writable folder for .*o\.keras, cannot create a file in"),
        "port: destination in a file": (port + [os.path.join(f["afile"], "o.keras")],
                                        r"expected a folder for .*o\.keras, .*afile is not a directory"),
        "port: destination with another extension": (port + [str(root / "o.txt")],
                                                     r"unknown checkpoint extension for .*o\.txt: expected one of "
                                                     r"\.weights\.h5, \.h5, \.keras"),
        "port: source with another extension": (["port", NAME, "--from", f["afile"], "--to", str(root / "o.pt")],
                                                r"unknown checkpoint extension for .*afile"),
        "port: --seed not an integer": (port + [str(root / "o.keras"), "--seed", "1.5"],
                                        r"argument --seed: expected a non-negative integer, got '1\.5'"),
        "summary: unknown name": (["summary", "nope"], r"unknown model 'nope'"),
        "convert: not MODULE:CALLABLE": (["convert", "nope", "--out", str(root / "out")],
                                         r"convert takes MODULE:CALLABLE \(torchvision\.models:resnet18\), got 'nope'"),
        "convert: module not found": (["convert", "no_such_module:f", "--out", str(root / "out")],
                                      r"cannot import 'no_such_module' for 'no_such_module:f'"),
        "convert: --out is a file": (["convert", "torch.nn:Identity", "--out", f["afile"], "--input-shape",
                                      "1,3,8,8"], r"expected a folder for --out, .*afile is a file"),
        "convert: --out in a folder no file can be made in": (
            ["convert", "torch.nn:Identity", "--out", os.path.join(f["ro"], "out"), "--input-shape", "1,3,8,8"],
            r"expected a writable folder for .*out, cannot create a file in"),
        "convert: --seed not an integer": (["convert", "torch.nn:Identity", "--out", str(root / "out"), "--seed",
                                            "x"], r"argument --seed: expected a non-negative integer, got 'x'"),
    }
    for kind, (text, expected) in SHAPES.items():
        cases[f"check: {kind}"] = (["check", NAME, "--no-onnx", "--input-shape", text], expected)
        cases[f"port: {kind}"] = (port + [str(root / "o.keras"), "--input-shape", text], expected)
        cases[f"summary: {kind}"] = (["summary", NAME, "--input-shape", text], expected)
    return cases


_NAMES_ONLY = {"root": Path("/x"), "src": "/x", "dir": "/x", "ro": "/x", "afile": "/x"}  # to list the cases
CLI_CASES = sorted(_cases(_NAMES_ONLY))


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input_is_one_line_and_exit_2(case, files, capsys, monkeypatch):
    argv, expected = _cases(files)[case]

    def no_work(*args, **kwargs):
        raise AssertionError("bad input reached the computation")

    monkeypatch.setattr("parity.engine.Harness.__init__", no_work)
    monkeypatch.setattr("parity.porting.build", no_work)
    before = sorted(p.name for p in files["root"].iterdir())
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    print(f"{case}: exit {code}: {err.strip()}")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(expected, err), f"{expected!r} not in {err!r}"
    assert sorted(p.name for p in files["root"].iterdir()) == before, "something was written"


# --- the public functions ---------------------------------------------------------------------------------

SHAPE_VALUES = {
    "wrong rank": ((1, 3, 224), parity.InputShapeError, r"got 1x3x224"),
    "NHWC instead of NCHW": ((1, 224, 224, 3), parity.InputShapeError, r"looks like NHWC"),
    "zero dimension": ((1, 3, 0, 224), parity.InputShapeError, r"got 1x3x0x224"),
    "negative dimension": ((1, 3, 224, -1), parity.InputShapeError, r"got 1x3x224x-1"),
    "non-integer dimension": ((1, 3, 2.5, 224), parity.InputShapeError, r"integers, got \(1, 3, 2\.5, 224\)"),
    "a string": ("1,3,224,224", parity.InputShapeError, r"integers, got '1,3,224,224'"),
}


def _api_cases(f):
    root, src = f["root"], f["src"]
    port = lambda dst, **kw: lambda: parity.port(NAME, src, dst, **kw)  # noqa: E731
    block = lambda: parity.build("resnet_conv_bn", "torch")  # noqa: E731
    cases = {
        "check: unknown name": (lambda: parity.check("nope"), parity.UnknownModelError, r"unknown model 'nope'"),
        "check: negative seed": (lambda: parity.check(NAME, seed=-1), parity.InvalidArgumentError,
                                 r"seed must be a non-negative integer, got -1"),
        "check: seed not an integer": (lambda: parity.check(NAME, seed="7"), parity.InvalidArgumentError,
                                       r"seed must be a non-negative integer, got '7'"),
        "port: unknown name": (lambda: parity.port("nope", src, root / "o.keras"), parity.UnknownModelError,
                               r"unknown model 'nope'"),
        "port: missing file": (lambda: parity.port(NAME, root / "missing.pt", root / "o.keras"),
                               parity.CheckpointError, r"expected a checkpoint file at .*missing\.pt, found none"),
        "port: directory as checkpoint": (lambda: parity.port(NAME, f["dir"], root / "o.keras"),
                                          parity.CheckpointError, r"found a directory"),
        "port: unwritable destination": (port(os.path.join(f["ro"], "o.keras")), parity.CheckpointError,
                                         r"expected a writable folder"),
        "port: destination with another extension": (port(root / "o.onnx"), parity.CheckpointError,
                                                     r"unknown checkpoint extension for .*o\.onnx"),
        "port: negative seed": (port(root / "o.keras", seed=-3), parity.InvalidArgumentError, r"got -3"),
        "transfer: not a model": (lambda: parity.transfer(block(), "model.keras"), TypeError,
                                  r"transfer needs a torch\.nn\.Module and a keras\.Model \(either order\), got "
                                  r"\w+ -> str"),
        "export_onnx: not a model": (lambda: parity.export_onnx("model.pt", root / "o.onnx"), TypeError,
                                     r"expects a torch\.nn\.Module or a keras\.Model, got str"),
        "export_onnx: no input_shape for torch": (lambda: parity.export_onnx(block(), root / "o.onnx"),
                                                  parity.InputShapeError, r"needs input_shape .* got None"),
        "export_onnx: destination is a directory": (
            lambda: parity.export_onnx(block(), root / "d.onnx", (1, 3, 8, 8)),
            parity.OnnxFileError, r"d\.onnx is a directory"),
        "export_onnx: unwritable destination": (
            lambda: parity.export_onnx(block(), os.path.join(f["ro"], "o.onnx"), (1, 3, 8, 8)),
            parity.OnnxFileError, r"expected a writable folder for .*o\.onnx"),
        "export_onnx: destination with another extension": (
            lambda: parity.export_onnx(block(), root / "o.pt", (1, 3, 8, 8)), parity.OnnxFileError,
            r"expected a destination ending in \.onnx, \.onnx\.data, got .*o\.pt"),
        "export_onnx: NHWC instead of NCHW": (
            lambda: parity.export_onnx(block(), root / "o.onnx", (1, 8, 8, 3)), parity.InputShapeError,
            r"input_shape \(1, 8, 8, 3\) does not fit \w+: .*expected input\[1, 8, 8, 3\] to have 3 channels, "
            r"but got 8 channels"),
        "summary: unknown name": (lambda: summary("nope"), parity.UnknownModelError, r"unknown model 'nope'"),
        "summary: unknown framework": (lambda: summary(NAME, "jax"), ValueError,
                                       r"framework must be 'torch', 'keras' or 'both', got 'jax'"),
    }
    for kind, (shape, error, expected) in SHAPE_VALUES.items():
        cases[f"check: {kind}"] = (lambda s=shape: parity.check(NAME, input_shape=s), error, expected)
        cases[f"port: {kind}"] = (lambda s=shape: parity.port(NAME, src, root / "o.keras", input_shape=s), error,
                                  expected)
        cases[f"summary: {kind}"] = (lambda s=shape: summary(NAME, input_shape=s), error, expected)
        cases[f"export_onnx: {kind}"] = (lambda s=shape: parity.export_onnx(block(), root / "o.onnx", s),
                                         error, r"input_shape .*(got|does not fit)")
    return cases


API_CASES = sorted(_api_cases(_NAMES_ONLY))


@pytest.mark.parametrize("case", API_CASES)
def test_public_function_bad_input_raises_the_documented_error(case, files, monkeypatch):
    (files["root"] / "d.onnx").mkdir(exist_ok=True)
    call, error, expected = _api_cases(files)[case]
    before = sorted(p.name for p in files["root"].iterdir())
    monkeypatch.setattr("parity.engine.Harness.__init__", lambda *a, **k: pytest.fail("reached the computation"))
    with pytest.raises(error, match=expected) as info:
        call()
    print(f"{case}: {type(info.value).__name__}: {info.value}")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in files["root"].iterdir()) == before, "something was written"


@pytest.mark.parametrize("argv", [["check", "nope"], ["check", NAME, "--seed", "-1"]])
def test_a_real_process_prints_one_line_and_no_traceback(argv, tmp_path):
    out = subprocess.run([sys.executable, "-m", "parity", *argv], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in out.stderr.splitlines() if line.startswith("parity")]
    print(out.returncode, out.stderr[-500:])
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr
    assert os.listdir(tmp_path) == []
