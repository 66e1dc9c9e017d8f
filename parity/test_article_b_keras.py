"""Article B's ASPP as the article writes it in Keras (``parity/fixtures/article_b_aspp_keras.py``, plain
functional code, not our facade) -> its automatic torch twin: the article's parameter count, and the
four-runtime check on random weights."""
import pytest
import torch

import parity
from parity.fixtures.article_b_aspp_keras import aspp_model

ARTICLE = (3_972_096, 12_288)  # the article's model.summary(): trainable, non-trainable; total 3,984,384


def test_twin_has_the_articles_parameter_count():
    twin = parity.twin(aspp_model())
    params = sum(p.numel() for p in twin.parameters())
    stats = sum(b.numel() for b in twin.buffers() if b.is_floating_point())
    print(f"torch twin: {params:,} parameters + {stats:,} BatchNorm statistics = {params + stats:,}")
    assert (params, stats) == ARTICLE and params + stats == 3_984_384
    assert isinstance(twin.resize, torch.nn.Module)  # tf.image.resize -> keras.ops.image.resize -> Resize


def test_torch_and_keras_agree():
    """The default run: torch ~ Keras (no ONNX export), on random weights."""
    report = parity.check(aspp_model(), onnx=False, name="article_b_aspp_keras")
    err = report.errors["torch ~ keras"]
    print(f"torch ~ keras: relative error {err.rel:.3g}")
    assert report.ok, report.problems


@pytest.mark.zoo  # two ONNX exports of 16 MB of weights: 12 s
def test_four_runtimes_agree():
    report = parity.check(aspp_model(), name="article_b_aspp_keras")
    for pair, err in report.errors.items():
        print(f"{pair}: relative error {err.rel:.3g}")
    print(report.counts)
    assert report.ok, report.problems
    assert report.counts["torch"].total == report.counts["keras"].total == 3_984_384
