"""Article B's ``model.summary()`` table, reproduced row for row by our Keras ASPP.

The golden file is the article's own table, verbatim (``parity/golden/article_b_aspp_summary.txt``).
Rows are compared in order by layer type, output shape and parameter count; layer names differ (ours are
torch module paths). The article's TF 2.x summary truncates type names (``DepthwiseCo``) and shows
``tf.image.resize`` as a ``TFOpLambda``; our twin of that call is the ``ResizeLikeLayer``.
"""
import re
from pathlib import Path

from tf_impl.aspp import ASPP
from tf_impl.nn import build_model

GOLDEN = Path(__file__).parent / "golden" / "article_b_aspp_summary.txt"
TYPE_ALIASES = {"TFOpLambda": "ResizeLikeLayer"}

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
        assert gtype.startswith(TYPE_ALIASES.get(etype, etype)), f"row {i}: expected type {etype}, got {gtype}"
        assert gshape == eshape, f"row {i} ({gtype}): expected output shape {eshape}, got {gshape}"
        assert gparams == eparams, f"row {i} ({gtype}): expected {eparams} params, got {gparams}"
    assert _totals(ours) == _totals(article) == {"Total": 3_984_384, "Trainable": 3_972_096,
                                                 "Non-trainable": 12_288}
