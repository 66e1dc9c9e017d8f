"""ResNet-50 and FPN layouts against torchvision's, written out here from torchvision's ``models/resnet.py``
(torchvision itself does not install here: its 0.28 wheel cannot load its C ops with this torch).

torchvision's resnet50 = ``ResNet(Bottleneck, [3, 4, 6, 3])``:
- ``conv1`` = Conv2d(3, 64, 7, stride 2, padding 3, bias False), ``bn1``, ``relu``, ``maxpool``;
- ``layer{1..4}`` = ``_make_layer(Bottleneck, planes 64/128/256/512, blocks 3/4/6/3, stride 1/2/2/2)``; each
  Bottleneck (expansion 4, width = planes) holds ``conv1`` 1x1 inplanes->width, ``bn1``, ``conv2`` 3x3
  width->width (stride), ``bn2``, ``conv3`` 1x1 width->planes*4, ``bn3``; block 0 of each layer holds
  ``downsample`` = Sequential(conv1x1(inplanes, planes*4, stride), BatchNorm2d(planes*4));
- ``avgpool``, ``fc`` = Linear(2048, 1000). Each BatchNorm2d has weight, bias, running_mean, running_var,
  num_batches_tracked.
"""
import torch

from torch_impl.fpn import fpn, fpn_blog
from torch_impl.resnet import resnet50, resnet50_blog

TORCHVISION_LAYERS = ((64, 3), (128, 4), (256, 6), (512, 3))  # (planes, blocks) from resnet50()
TORCHVISION_PARAMS = 25_557_032  # torchvision docs, ResNet50_Weights.IMAGENET1K_V1 num_params


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet50_keys() -> dict:
    """``{state_dict key: shape}`` of torchvision's resnet50, in its order, from the recipe above."""
    keys = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for i, (planes, blocks) in enumerate(TORCHVISION_LAYERS, start=1):
        for b in range(blocks):
            p = f"layer{i}.{b}"
            keys.update({f"{p}.conv1.weight": (planes, inplanes, 1, 1), **_bn(f"{p}.bn1", planes),
                         f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes),
                         f"{p}.conv3.weight": (planes * 4, planes, 1, 1), **_bn(f"{p}.bn3", planes * 4)})
            if b == 0:
                keys.update({f"{p}.downsample.0.weight": (planes * 4, inplanes, 1, 1),
                             **_bn(f"{p}.downsample.1", planes * 4)})
            inplanes = planes * 4
    keys.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return keys


# Spot checks typed from torchvision's printed resnet50 state_dict.
TORCHVISION_SPOT = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.bn3.running_var": (1024,),
    "layer4.0.downsample.1.num_batches_tracked": (),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "fc.weight": (1000, 2048),
}


def _fake_checkpoint(keys: dict) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=gen)
            for k, s in keys.items()}


def test_torchvision_key_list_itself():
    keys = torchvision_resnet50_keys()
    assert len(keys) == 320  # 53 convs + 53 BatchNorms x 5 + fc weight and bias
    assert all(keys[k] == s for k, s in TORCHVISION_SPOT.items())
    params = sum(torch.Size(s).numel() for k, s in keys.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == TORCHVISION_PARAMS


def test_resnet50_has_torchvision_keys_and_shapes_in_order():
    expected = torchvision_resnet50_keys()
    got = {k: tuple(v.shape) for k, v in resnet50().state_dict().items()}
    assert list(got) == list(expected)
    assert got == expected
    assert sum(p.numel() for p in resnet50().parameters()) == TORCHVISION_PARAMS


def test_torchvision_checkpoint_loads_strictly_into_resnet50():
    ckpt = _fake_checkpoint(torchvision_resnet50_keys())
    model = resnet50()
    result = model.load_state_dict(ckpt, strict=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert torch.equal(model.layer3[5].bn3.running_var,
                       ckpt["layer3.5.bn3.running_var"])


def test_torchvision_checkpoint_loads_into_fpn_backbones_without_fc():
    ckpt = {k: v for k, v in _fake_checkpoint(torchvision_resnet50_keys()).items() if not k.startswith("fc.")}
    for model in (fpn(), fpn_blog()):
        result = model.backbone.load_state_dict(ckpt, strict=True)
        assert (result.missing_keys, result.unexpected_keys) == ([], [])
        assert torch.equal(model.state_dict()["backbone.conv1.weight"], ckpt["conv1.weight"])


def test_resnet50_blog_has_the_articles_keys_and_counts():
    sd = resnet50_blog().state_dict()
    for key, shape in {"conv.conv.0.weight": (64, 3, 7, 7), "conv.conv.1.running_var": (64,),
                       "block1.0.bottleneck.0.conv.0.weight": (64, 64, 1, 1),
                       "block2.0.bottleneck.2.conv.0.weight": (128, 128, 3, 3),
                       "block2.0.downsample.conv.0.weight": (512, 256, 1, 1),
                       "block4.2.bottleneck.4.conv.1.weight": (2048,),
                       "classifier.weight": (1000, 2048)}.items():
        assert tuple(sd[key].shape) == shape, key
    assert len(sd) == 320
    # same tensors, in the same order and shapes, as torchvision's: only the names differ
    assert [tuple(v.shape) for v in sd.values()] == list(torchvision_resnet50_keys().values())
    model = resnet50_blog()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS
    assert sum(b.numel() for b in model.buffers() if b.is_floating_point()) == 53_120
