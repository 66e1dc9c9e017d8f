"""VGG19's torch state-dict keys are torchvision's, so a torchvision checkpoint loads strictly.

The expected keys are written from torchvision's ``vgg19`` (cfg "E"): a conv at every ``features`` index
not taken by a ReLU or a max-pool, and ``classifier`` Linears at 0, 3 and 6."""
from parity.registry import build

TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
TORCHVISION_KEYS = [f"{part}.{i}.{t}" for part, idx in (("features", TORCHVISION_CONVS), ("classifier", (0, 3, 6)))
                    for i in idx for t in ("weight", "bias")]


def test_vgg19_state_dict_keys_are_torchvisions():
    model = build("vgg19", "torch")
    sd = model.state_dict()
    assert list(sd) == TORCHVISION_KEYS
    assert tuple(sd["classifier.0.weight"].shape) == (4096, 512 * 7 * 7)
    assert len(model.features) == 37  # torchvision's vgg19 features has 37 modules
