"""Article B's ``model.summary()`` table, reproduced row for row by our Keras ASPP.

The golden file is the article's own table, verbatim (``parity/golden/article_b_aspp_summary.txt``).
Rows are compared in order by layer type, output shape and parameter count; layer names differ (ours are
torch module paths). The article's TF 2.x summary truncates type names (``DepthwiseCo``) and shows
``tf.image.resize`` as a ``TFOpLambda``; our twin of that call is the ``ResizeLikeLayer``. Our BatchNorm is
``TorchBatchNormalization``, a ``BatchNormalization`` subclass that only changes the training-time update of
the moving variance (``tf_impl/batch_norm.py``).
"""
import re
from pathlib import Path

from tf_impl.aspp import ASPP
from tf_impl.nn import build_model

GOLDEN = Path(__file__).parent / "golden" / "article_b_aspp_summary.txt"
TYPE_ALIASES = {"TFOpLambda": "ResizeLikeLayer", "BatchNormalization": "TorchBatchNormalization"}  # theirs: ours

_ARTICLE_ROW = re.compile(r"^(?P<name>\S+) \((?P<type>[A-Za-z0-9]+)\)? (?P<shape>\[?\(None[\d, ]*\)?) (?P<params>\d+)")
_KERAS_ROW = re.compile(r"│\s*(?P<name>\S+) \((?P<type>\w+)\)\s*│\s*(?P<shape>\([^│]*\))\s*│\s*(?P<params>[\d,]+)\s*│")
_TOTAL = re.compile(r"^\s*(Total|Trainable|Non-trainable) params: ([\d,]+)", re.M)


def _shape(text: str) -> tuple:
    return tuple(None if d == "None" else int(d) for d in re.findall(r"None|\d+", text))


def _rows(pattern, text: str) -> list[tuple]:
    return [(m["type"], _shape(m["shape"]), int(m["params"].replace(",", "")))
            for m in map(pattern.search, text.splitlines()) if m]


def _totals(text: str) -> dict:
    return {k: int(v.replace(",", "")) for k, v in _TOTAL.findall(text)}


def test_aspp_summary_matches_article_b(monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")  # rich, which renders the summary, cuts lines at the terminal width
    article = GOLDEN.read_text()
    lines = []
    build_model(ASPP(), (13, 13, 1024), "aspp").summary(line_length=200, print_fn=lambda s, **kw: lines.append(s))
    ours = "\n".join(lines)
    expected, got = _rows(_ARTICLE_ROW, article), _rows(_KERAS_ROW, ours)
    print(f"article: {len(expected)} rows, {_totals(article)}; ours: {len(got)} rows, {_totals(ours)}")
    assert len(expected) == 33, f"golden parse: expected 33 rows, parsed {len(expected)}"
    assert len(got) == len(expected), f"expected {len(expected)} rows, our summary has {len(got)}"
    for i, ((etype, eshape, eparams), (gtype, gshape, gparams)) in enumerate(zip(expected, got)):
        our_type = next((o for theirs, o in TYPE_ALIASES.items() if theirs.startswith(etype)), etype)  # cut short
        assert gtype.startswith(our_type), f"row {i}: expected type {etype}, got {gtype}"
        assert gshape == eshape, f"row {i} ({gtype}): expected output shape {eshape}, got {gshape}"
        assert gparams == eparams, f"row {i} ({gtype}): expected {eparams} params, got {gparams}"
    assert _totals(ours) == _totals(article) == {"Total": 3_984_384, "Trainable": 3_972_096,
                                                 "Non-trainable": 12_288}


# --- article A: VGG19 in torchsummary's format ------------------------------------------------------------
# Article A shows `summary(vgg19, input_size=(3, 224, 224))` but not its output; the golden is torchsummary's
# table for the article's VGG19, written by hand (see the file's header).
GOLDEN_A = Path(__file__).parent / "golden" / "article_a_vgg19_torchsummary.txt"
_TS_ROW = re.compile(r"^\s*(?P<type>\w+)-(?P<index>\d+)\s+(?P<shape>\[[-\d, ]+\])\s+(?P<params>[\d,]+)$")
_TS_FOOT = re.compile(r"^(?P<key>[A-Za-z/ -]+(?:params|\(MB\))): (?P<value>[\d,.]+)$", re.M)


def _ts_rows(text: str) -> list[tuple]:
    return [(m["type"], tuple(int(d) for d in re.findall(r"-?\d+", m["shape"])), int(m["params"].replace(",", "")))
            for m in map(_TS_ROW.match, text.splitlines()) if m]


def _ts_footer(text: str) -> dict:
    return {m["key"]: m["value"] for m in _TS_FOOT.finditer(text)}


def _article_a_vgg19():
    """Article A's VGG19 class, as printed: 16 conv 3x3 + ReLU, max-pool after convs 2, 4, 8, 12, 16,
    ``x.view`` flatten, classifier 25088 -> 4096 -> 4096 -> 1000 with ReLU and Dropout."""
    from torch import nn

    class VGG19(nn.Module):
        def __init__(self, num_classes=1000):
            super().__init__()
            layers, in_dim, out_dim = [], 3, 64
            for i in range(16):
                layers += [nn.Conv2d(in_dim, out_dim, 3, 1, 1), nn.ReLU(inplace=True)]
                in_dim = out_dim
                if i in (1, 3, 7, 11, 15):
                    layers += [nn.MaxPool2d(2)]
                    if i < 11:
                        out_dim *= 2
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                                            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                                            nn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(self.features(x).view(x.size(0), -1))

    return VGG19()


def test_torchsummary_format_reproduces_article_a_golden():
    """Our torchsummary renderer on the article's own class gives the golden, character for character."""
    from parity.summaries import torchsummary_table

    golden = "\n".join(line for line in GOLDEN_A.read_text().splitlines() if not line.startswith("#"))
    ours = torchsummary_table(_article_a_vgg19(), (3, 224, 224))
    assert len(_ts_rows(golden)) == 44, f"golden parse: expected 44 rows, parsed {len(_ts_rows(golden))}"
    assert ours == golden


def test_vgg19_twin_matches_article_a_torchsummary():
    """Our vgg19 torch twin, row for row (type, output shape at 224x224, params). It flattens with an
    ``nn.Flatten`` module where the article calls ``x.view``; torchsummary sees only modules, so that one row
    is ours alone and its output (2 x 25,088 floats, for the gradients) is the only pass-size difference."""
    from parity.registry import build
    from parity.summaries import torchsummary_table

    golden = GOLDEN_A.read_text()
    ours = torchsummary_table(build("vgg19", "torch"), (3, 224, 224))
    got = _ts_rows(ours)
    flatten = [r for r in got if r[0] == "Flatten"]
    assert flatten == [("Flatten", (-1, 25_088), 0)], f"expected one Flatten row, got {flatten}"
    expected = _ts_rows(golden)
    got = [r for r in got if r[0] != "Flatten"]
    assert len(got) == len(expected) == 44
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g == e, f"row {i + 1}: expected {e}, got {g}"
    foot_e, foot_g = _ts_footer(golden), _ts_footer(ours)
    for key in ("Total params", "Trainable params", "Non-trainable params", "Input size (MB)", "Params size (MB)"):
        assert foot_g[key] == foot_e[key], f"{key}: expected {foot_e[key]}, got {foot_g[key]}"
    assert foot_e["Total params"] == "143,667,240"
    flatten_mb = 2 * 25_088 * 4 / 1024 ** 2
    assert abs(float(foot_g["Forward/backward pass size (MB)"]) -
               (float(foot_e["Forward/backward pass size (MB)"]) + flatten_mb)) < 0.011
