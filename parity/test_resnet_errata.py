"""The measured consequences behind README's errata for article A's ResNet-50 and FPN code.

Weights are random (``randomize_torch``), so the figures say how far the quirks move the numbers of a
network of this shape, not what they cost in accuracy. Each test asserts the quirk's mechanism exactly and
prints its size.
"""
import numpy as np
import pytest
import torch

from parity.randomize import randomize_torch
from torch_impl.fpn import fpn_blog
from torch_impl.layers import ResizeLike
from torch_impl.resnet import resnet50, resnet50_blog


def rel(ref: torch.Tensor, out: torch.Tensor) -> float:
    return float((ref - out).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def twins():
    """(blog, standard) ResNet-50 holding the same random weights: their state_dicts list the same tensors
    in the same order and shapes, only the names differ."""
    blog = randomize_torch(resnet50_blog(), seed=0).eval()
    std = resnet50().eval()
    std.load_state_dict(dict(zip(std.state_dict(), blog.state_dict().values())))
    return blog, std


def _blog_c5(blog, x):
    with torch.no_grad():
        x = blog.maxpool(blog.conv(x))
        for i in range(1, 5):
            x = getattr(blog, f"block{i}")(x)
    return x


def test_avgpool4_reads_the_top_left_4x4_of_the_7x7_map(twins):
    blog, _ = twins
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    c5 = _blog_c5(blog, x)
    assert tuple(c5.shape[-2:]) == (7, 7)
    with torch.no_grad():
        pooled = blog.avgpool(c5)
        assert tuple(pooled.shape[-2:]) == (1, 1)
        torch.testing.assert_close(pooled[..., 0, 0], c5[..., :4, :4].mean((-2, -1)), rtol=1e-6, atol=1e-6)
        logits = blog.classifier(pooled.flatten(1))
        logits_global = blog.classifier(c5.mean((-2, -1)))
    err = rel(logits_global, logits)
    print(f"AvgPool2d(4) at 224: uses 16 of 49 positions; logits vs global pooling: relative {err:.3g}, "
          f"top-1 agrees on {(logits.argmax(1) == logits_global.argmax(1)).sum().item()}/2 inputs")
    assert err > 1e-2


@pytest.mark.parametrize("size, runs", [(96, False), (97, True), (225, False)])  # 224: above
def test_blog_head_runs_only_where_the_final_map_is_4_to_7_px(twins, size, runs):
    blog, _ = twins
    x = torch.zeros(1, 3, size, size)
    if runs:
        with torch.no_grad():
            assert blog(x).shape == (1, 1000)
    else:
        with pytest.raises(RuntimeError), torch.no_grad():
            blog(x)


def test_missing_stem_relu_changes_only_all_negative_pool_windows(twins):
    """ReLU commutes with max-pooling, so the missing stem ReLU shows only where a whole 3x3 pool window
    is negative: there the article's model passes a negative value on, torchvision's a zero."""
    blog, std = twins
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        stem = blog.conv(x)
        pooled = blog.maxpool(stem)
        torch.testing.assert_close(std.maxpool(std.relu(stem)), pooled.clamp(min=0), rtol=0, atol=0)
        c5_std = std.features(x)[-1]
        c5_blog = _blog_c5(blog, x)
    negative, pooled_negative = (stem < 0).float().mean().item(), (pooled < 0).float().mean().item()
    err_c5 = rel(c5_std, c5_blog)
    print(f"no stem ReLU: {negative:.1%} of the stem outputs and {pooled_negative:.1%} of the pooled ones are "
          f"negative; C5 vs torchvision's (same weights): relative {err_c5:.3g}")
    assert pooled_negative > 0 and err_c5 > 1e-3


def test_article_fpn_counts_miss_the_backbone():
    model = fpn_blog()
    backbone = sum(p.numel() for p in model.backbone.parameters())
    stats = sum(b.numel() for b in model.backbone.buffers() if b.is_floating_point())
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    print(f"article's FPN().parameters(): {head:,}; missed backbone: {backbone:,} parameters + {stats:,} "
          f"statistics; held as a submodule: {head + backbone:,}")
    assert (head, backbone, stats) == (1_574_144, 23_508_032, 53_120)


def test_article_fpn_eval_misses_the_backbone():
    """The article's backbone lives in module globals, so ``FPN().eval()`` leaves it in training mode:
    its BatchNorms normalise with batch statistics and overwrite their running statistics on every call."""
    model = randomize_torch(fpn_blog(), seed=0).eval()
    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        before = model.backbone.bn1.running_mean.clone()
        model.backbone.train()  # what the article's globals are in, whatever FPN().eval() says
        out = model(x)
    errs = [rel(r, o) for r, o in zip(ref, out)]
    moved = rel(before, model.backbone.bn1.running_mean)
    print(f"article FPN after .eval(), backbone still training: P2..P5 relative {np.round(errs, 3).tolist()}; "
          f"bn1 running mean moved by {moved:.3g} relative in one call")
    assert min(errs) > 1e-2 and moved > 1e-2


def test_align_corners_bilinear_vs_nearest_in_the_top_down_path():
    model = randomize_torch(fpn_blog(), seed=0).eval()
    for size in ((224, 224), (97, 131)):
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            model.upsample = ResizeLike("bilinear", align_corners=True)
            blog = model(x)
            model.upsample = ResizeLike("nearest")
            nearest = model(x)
        errs = [rel(b, n) for b, n in zip(blog, nearest)]
        print(f"{size}: P2..P5 with bilinear align_corners=True vs nearest (same weights): "
              f"relative {np.round(errs, 3).tolist()}")
        assert errs[-1] == 0.0 and min(errs[:-1]) > 1e-2  # P5 is not upsampled
