"""``parity train-check``: the table, exit codes 0 / 1 / 2, one-line errors (``cli.main`` catches every bad
input before a traceback could print)."""
import dataclasses

import pytest

from parity import cli
from parity.training import check, tolerances


def test_passes_prints_a_row_per_step(capsys):
    assert cli.main(["train-check", "vgg_stage", "--optimizer", "adam", "--steps", "2", "--input-shape", "2,3,9,11",
                     "--lr", "0.01", "--betas", "0.8,0.99"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert out.startswith("vgg_stage: adam (lr=0.01, betas=(0.8, 0.99), eps=1e-08, weight_decay=0.0, amsgrad=False)")
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 2 and all(" PASS " in r for r in rows)
    assert "no tensor beyond tolerance" in out and out.rstrip().endswith(")") and "vgg_stage: PASS (2 steps" in out


def test_failing_check_exits_1_and_names_the_first_tensor(capsys, monkeypatch):
    strict = dataclasses.replace(tolerances.TOLERANCES["float64"], grad=0.0)
    monkeypatch.setitem(check.TOLERANCES, "float64", strict)
    assert cli.main(["train-check", "vgg_stage", "--steps", "1", "--input-shape", "2,3,9,11"]) == 1
    out = capsys.readouterr().out
    print(out)
    assert "first divergence: step 1: gradient of 0." in out and "FAIL vgg_stage: step 1: gradient of" in out


@pytest.mark.parametrize("args, message", [
    (["vgg_stage", "--optimizer", "lion"], "unknown optimizer 'lion'; expected one of: sgd, sgd-momentum"),
    (["vgg_stage", "--optimizer", "adam", "--alpha", "0.9"], "optimizer 'adam' takes options"),
    (["vgg_stage", "--steps", "0"], "steps must be a positive integer, got 0"),
    (["vgg_stage", "--dtype", "float16"], "dtype must be one of float64, float32"),
    (["vgg_stage", "--loss", "cross_entropy", "--input-shape", "2,3,9,11"], "cross_entropy needs (N, K) logits"),
    (["vgg_stag"], "unknown model 'vgg_stag'"),
    (["vgg_stage", "--input-shape", "2,9,11,3"], "must be (N, C, H, W) with C=3"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys):
    assert cli.main(["train-check", *args]) == 2
    err = capsys.readouterr().err
    print(err)
    assert err.startswith("parity: error: ") and message in err and len(err.strip().splitlines()) == 1

