"""The flatten-order trap before VGG's first Linear: torch flattens an NCHW map in C, H, W order, Keras an
NHWC map in H, W, C order, so the first Dense kernel's rows must be reordered (``_flatten_hwc`` in
``parity/weight_transfer.py``). A plain transpose of the weight, the naive transfer, is shown to fail.

The model is VGG-like and small (two conv stages of the VGG twins' ``make_features``, Flatten, Linear) so
the test is fast; the map before the flatten is 5x7x8, non-square so an H/W swap would show too."""
import numpy as np
import torch
from torch import nn as tnn

from parity.compare import pair_error
from parity.randomize import randomize_keras, randomize_torch
from parity.registry import FLOAT32_TOLERANCE
from parity.weight_transfer import transfer
from tf_impl import nn as knn
from tf_impl import vgg as kvgg
from torch_impl import vgg as tvgg

CFG, H, W = (4, "M", 8, "M"), 20, 28  # -> 8 x 5 x 7 before the flatten
FLAT, CLASSES = 8 * 5 * 7, 6


def _pair():
    t = tnn.Sequential(tvgg.make_features(CFG), tnn.Flatten(), tnn.Linear(FLAT, CLASSES)).eval()
    k = knn.build_model(knn.Sequential(kvgg.make_features(CFG), knn.Flatten(), knn.Linear(FLAT, CLASSES)),
                        (H, W, 3), "small_vgg")
    return t, k


def _errors(t, k):
    x = np.random.default_rng(0).standard_normal((2, 3, H, W)).astype(np.float32)
    with torch.no_grad():
        ref = t(torch.from_numpy(x)).numpy()
    return pair_error([ref], [np.asarray(k(x.transpose(0, 2, 3, 1), training=False))])


def test_flatten_order_torch_to_keras():
    t, k = _pair()
    transfer(randomize_torch(t, seed=1), k)
    ours = _errors(t, k)
    fc = k.get_layer("2")
    fc.kernel.assign(t[2].weight.detach().numpy().T)  # naive: (out, in) -> (in, out), rows left C, H, W
    naive = _errors(t, k)
    print(f"torch -> Keras: reordered rows rel {ours.rel:.2e}, plain transpose rel {naive.rel:.2e}")
    assert ours.within(FLOAT32_TOLERANCE), ours
    assert not naive.problems and naive.rel > 100 * FLOAT32_TOLERANCE


def test_flatten_order_keras_to_torch():
    t, k = _pair()
    transfer(randomize_keras(k, seed=2), t)
    ours = _errors(t, k)
    with torch.no_grad():
        t[2].weight.copy_(torch.from_numpy(np.asarray(k.get_layer("2").kernel.numpy()).T))  # naive
    naive = _errors(t, k)
    print(f"Keras -> torch: reordered rows rel {ours.rel:.2e}, plain transpose rel {naive.rel:.2e}")
    assert ours.within(FLOAT32_TOLERANCE), ours
    assert not naive.problems and naive.rel > 100 * FLOAT32_TOLERANCE
