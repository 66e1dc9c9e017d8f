"""``parity summary``: the common per-framework tables and the side-by-side reconciliation."""
import re

import numpy as np

import parity
from parity import cli
from parity.summaries import keras_rows, side_by_side, summary, torch_rows
from tests.conftest import SMALL_ASPP

X = np.zeros((1, 8, 5, 5), dtype=np.float32)


def test_tables_follow_the_common_format_and_reconcile():
    text, ok = summary("aspp", "both", **SMALL_ASPP)
    print(text)
    assert ok
    torch_part, keras_part, both, onnx = text.split("\n\n")
    for part in (torch_part, keras_part):
        assert part.splitlines()[1].split() == ["module", "path", "type", "output", "shape", "trainable",
                                                "non-trainable"]
    assert "num_batches_tracked counters not counted" in torch_part
    assert "pool             AdaptiveAvgPool2d  GlobalAveragePooling2D+Reshape" in both
    # the torch.cat in ASPP.forward has no torch module: its Keras layer is <module path>_cat, the root's
    # path being the model's name
    assert re.search(r"^aspp_cat\s+-\s+Concatenate\s.*ok \(no weights\)$", both, re.M)
    assert "DIFFERS" not in text
    assert onnx.count(": ok") == 2 and "BatchNorms folded into their conv" in onnx


def test_torch_rows_count_parameters_and_statistics_apart():
    rows = {r.path: r for r in torch_rows(parity.build("aspp", "torch", **SMALL_ASPP), X)}
    assert (rows["conv1x1.1"].trainable, rows["conv1x1.1"].non_trainable) == (8, 8)  # gamma, beta | mean, var
    assert rows["conv1x1.0"].shape == (1, 4, 5, 5) and rows["pool"].shape == (1, 8, 1, 1)
    krows = {r.path: r for r in keras_rows(parity.build("aspp", "keras", **SMALL_ASPP), X)}
    assert krows["conv1x1.0"].shape == (1, 5, 5, 4) and krows["pool_gap"].shape == (1, 8)


def test_side_by_side_flags_a_difference():
    trows = torch_rows(parity.build("aspp", "torch", **SMALL_ASPP), X)
    krows = keras_rows(parity.build("aspp", "keras", in_channels=8, filters=5), X)
    table, ok = side_by_side(trows, krows)
    print(table)
    assert not ok
    conv = next(line for line in table.splitlines() if line.startswith("conv1x1.0 "))
    assert conv.split()[-3:] == ["0", "0", "DIFFERS"] and "32" in conv.split() and "40" in conv.split()


def test_cli_summary_single_framework(capsys):
    assert cli.main(["summary", "aspp_conv_bn_relu", "--framework", "keras"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert out.startswith("aspp_conv_bn_relu: keras (input 1x13x13x1024)")
    assert "BatchNormalization  1x13x13x512" in out and "torch" not in out.split("\n", 1)[1]
    assert cli.main(["summary", "aspp_conv_bn_relu", "--framework", "torch"]) == 0
    out = capsys.readouterr().out
    assert "aspp_conv_bn_relu: torch (input 1x1024x13x13; 1 num_batches_tracked" in out
    assert out.splitlines()[-1].split() == ["total", "525,312", "1,024"]
