"""Input sizes (``parity.sizes``): a fixed-size entry runs at every size its torch model accepts (the Keras twin
and its ONNX file are built at that size), a size torch refuses is an ``InputShapeError`` naming the sizes it
accepts, and a size whose activations cannot fit in memory is refused before anything is allocated.

``inception_aux`` stands in for the fixed-size models: a Flatten feeding a Dense after a 5x5/3 average pool,
so it runs at 14..16 px (a 4 x 4 map) and nowhere else; it is small enough for the default suite.
"""
import resource
import tracemalloc

import numpy as np
import pytest
import torch

import parity
from parity import sizes
from parity.engine import Harness
from parity.randomize import randomize_torch
from parity.summaries import summary


def test_build_keras_at_a_given_size():
    model = parity.build("inception_aux", "keras", input_size=(15, 16))
    assert tuple(model.inputs[0].shape) == (None, 15, 16, 512)
    assert tuple(parity.build("inception_aux", "keras").inputs[0].shape) == (None, 14, 14, 512)
    with pytest.raises(ValueError, match="input_size applies to the Keras twin"):
        parity.build("inception_aux", "torch", input_size=(15, 16))


def test_fixed_size_entry_is_checked_at_each_size_with_all_four_runtimes():
    """Two sizes in one harness: the default 14x14 and 15x16, each with its own Keras twin and Keras ONNX
    file; every runtime pair within tolerance at both."""
    with Harness("inception_aux") as h:
        report = h.report([(1, 512, 14, 14), (2, 512, 15, 16)])
        assert h.keras_at((2, 512, 15, 16)) is not h.keras_model
        assert tuple(h.keras_at((2, 512, 15, 16)).inputs[0].shape) == (None, 15, 16, 512)
    for r in report.per_shape:
        print(r.input_shape, {pair: f"{e.rel:.2e}" for pair, e in r.errors.items()})
        assert len(r.errors) == 6 and all(e.within(report.tolerance) for e in r.errors.values())
    assert report.ok, report.problems


def test_a_size_torch_refuses_names_the_range():
    with pytest.raises(parity.InputShapeError, match=r"'inception_aux' does not run at 1x512x20x20 in torch "
                                                     r"\(.*\); it runs at H 14\.\.16 with W = 14, and W 14\.\.16 "
                                                     r"with H = 14$"):
        parity.check("inception_aux", input_shape=(1, 512, 20, 20), onnx=False)


def test_a_size_too_small_names_the_smallest():
    with pytest.raises(parity.InputShapeError, match=r"'vgg_stage' does not run at 1x3x1x1 in torch \(.*Output size "
                                                     r"is too small\); the smallest input is 1x3x2x2$"):
        parity.check("vgg_stage", input_shape=(1, 3, 1, 1))
    with pytest.raises(parity.InputShapeError, match=r"the smallest input is 1x512x14x14; it runs at H 14\.\.16"):
        sizes.check_entry("inception_aux", (1, 512, 4, 4))


def test_a_huge_size_is_refused_before_anything_is_allocated():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(parity.InputShapeError, match=r"input 1x3x20000x20000 for 'vgg_stage' needs at least "
                                                     r"\d+\.\d GiB of float32 activations .* available"):
        parity.check("vgg_stage", input_shape=(1, 3, 20000, 20000))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"peak memory grew by {grown / 1024:.0f} MiB (the input alone would be 4578 MiB)")
    assert grown < 500 * 1024


def test_memory_floor_against_the_available_memory(monkeypatch):
    """The floor is the input plus the largest input + output of one layer, in float32: VGG's first stage at
    1x3x64x64 holds 64x64x64 maps in and out of its second conv."""
    module = parity.build("vgg_stage", "torch")
    fp = sizes.footprint(module, (1, 3, 64, 64))
    assert fp.floor_bytes == 4 * (3 * 64 * 64 + 2 * 64 * 64 * 64) and fp.largest_layer == "1"
    monkeypatch.setattr(sizes, "available_memory", lambda: fp.floor_bytes - 1)
    with pytest.raises(parity.InputShapeError, match=r"needs at least 0\.0 GiB .* layer '1'"):
        sizes.check_runs(module, (1, 3, 64, 64), "vgg_stage", (224, 224))
    monkeypatch.setattr(sizes, "available_memory", lambda: fp.floor_bytes)
    assert sizes.check_runs(module, (1, 3, 64, 64), "vgg_stage", (224, 224)) == fp


def test_inputs_are_drawn_in_float32():
    """No float64 array of the input's size: the peak traced while drawing is the float32 input itself."""
    with Harness("lrn_5", onnx=False) as h:
        tracemalloc.start()
        x = h.inputs((4, 64, 64, 64))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"input {x.nbytes} bytes, peak traced {peak} bytes")
    assert x.dtype == np.float32 and peak < 1.2 * x.nbytes


def test_port_and_summary_build_the_keras_twin_at_the_requested_size(tmp_path):
    module = randomize_torch(parity.build("inception_aux", "torch"), seed=4)
    src = tmp_path / "aux.pt"
    torch.save(module.state_dict(), src)
    report = parity.port("inception_aux", src, tmp_path / "aux.weights.h5", input_shape=(2, 512, 16, 15))
    print(f"port at 2x512x16x15: {report.errors['torch ~ keras']}")
    assert report.ok and report.input_shape == (2, 512, 16, 15)
    text, ok = summary("inception_aux", "keras", input_shape=(1, 512, 15, 16))
    assert ok and "inception_aux: keras (input 1x15x16x512)" in text
    with pytest.raises(parity.InputShapeError, match="the smallest input is 1x512x14x14"):
        parity.port("inception_aux", src, tmp_path / "small.weights.h5", input_shape=(1, 512, 7, 7))
    assert not (tmp_path / "small.weights.h5").exists()


class _ReadsAValue(torch.nn.Module):
    def forward(self, x):
        return x * float(x.mean())  # data-dependent: the meta device has no value to read


def test_a_model_the_meta_device_cannot_run_is_left_to_the_real_run():
    assert sizes.check_runs(_ReadsAValue(), (1, 3, 8, 8), "reads_a_value", (8, 8)) is None
