"""The automatic twin torch -> Keras (``parity.twin``) on small networks that use every converter family:
outputs against torch at two sizes (odd ones included) on random weights, the naming rule, free H and W,
shared modules, held tensors, and the errors for what is not supported."""
import numpy as np
import pytest
import torch
from torch import nn

import parity
from parity.compare import pair_error, run_twins
from parity.convert.torch_ops import supported
from parity.randomize import randomize_torch
from parity.registry import FLOAT32_TOLERANCE as TOL
from parity.trace import trace as trace_layers
from parity.weight_transfer import keras_layers
from tests import nets
from tf_impl.backend import keras

CASES = {  # net: (trace shape, check shapes)
    "ConvZoo": ((1, 3, 32, 32), [(2, 3, 31, 27), (1, 3, 16, 21)]),
    "StridedDilated": ((1, 2, 9, 9), [(2, 2, 9, 9), (1, 2, 31, 27)]),  # Hypothesis: Conv2d(1, 1, 1, stride=2, dilation=2)
    "NormAct": ((1, 3, 9, 11), [(2, 3, 9, 11), (1, 3, 4, 7)]),
    "Pools": ((1, 3, 23, 17), [(2, 3, 23, 17), (1, 3, 21, 25)]),
    "Adaptive": ((1, 3, 16, 16), [(2, 3, 16, 16), (1, 3, 9, 13)]),
    "Shapes": ((1, 3, 8, 8), [(2, 3, 5, 7), (1, 3, 8, 3)]),
    "Held": ((1, 3, 16, 16), [(2, 3, 15, 17)]),
    "Resize": ((1, 3, 12, 12), [(2, 3, 13, 17), (1, 3, 9, 9)]),
    "Shared": ((1, 3, 8, 8), [(2, 3, 7, 5)]),
}


def twin_of(name, seed=0):
    module = randomize_torch(getattr(nets, name)().eval(), seed, calibrate=CASES[name][0])
    return module, parity.twin(module, CASES[name][0])


@pytest.mark.parametrize("name", list(CASES))
def test_twin_matches_torch_at_free_sizes(name):
    module, model = twin_of(name)
    assert tuple(model.inputs[0].shape[1:3]) == (None, None), "H and W must stay free"
    for shape in CASES[name][1]:
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        outs = run_twins(module, model, x)
        err = pair_error(outs["torch"], outs["keras"], labels=("torch", "keras"))
        print(f"{name} at {shape}: relative error {err.rel:.2e}")
        assert err.within(TOL), f"{name} at {shape}: {err}"


def test_layer_names_are_module_paths_and_function_nodes():
    module, model = twin_of("Shapes")
    names = {layer.name for layer in model.layers}
    assert {"conv", "norm", "mlp", "head"} <= names
    assert {"cat", "cat_1", "mean", "chunk", "split"} <= names  # fx node names of the function calls
    weighted = set(keras_layers(model))
    assert weighted == {p for p, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))}


def test_a_module_called_twice_is_one_layer_called_twice():
    module, model = twin_of("Shared")
    assert len(model.get_layer("conv")._inbound_nodes) == 2
    assert len(model.get_layer("relu")._inbound_nodes) == 3
    trace = trace_layers(module, model, np.random.default_rng(2).standard_normal((1, 3, 6, 9))
                               .astype(np.float32))
    labels = [r.path for r in trace.rows]
    assert labels == ["other", "relu[0]", "conv[0]", "relu[1]", "conv[1]", "relu[2]"], labels
    assert trace.first_divergence is None


def test_held_tensors_are_variables_named_like_the_torch_tensors():
    module, model = twin_of("Held")
    layer = model.get_layer("blocks.0")
    assert sorted(v.name for v in layer.weights) == ["layer_scale", "shift"]
    assert tuple(layer.tensors["layer_scale"]["shape"]) == (1, 1, 1, 8), "stored NHWC, as it is used"
    # LayerNorm2d (an nn.LayerNorm subclass calling F.layer_norm) is one LayerNormalization at its own path
    assert type(model.get_layer("blocks.0.norm")).__name__ == "LayerNormalization"
    report = parity.transfer(model, getattr(nets, "Held")().eval())  # Keras -> torch through the same table
    assert report.ok and report.tensors == sum(1 for _ in module.state_dict())


def test_a_flatten_of_a_free_map_feeding_a_linear_fixes_the_input_size():
    module = randomize_torch(nets.FlattenFixed().eval(), 0)
    model = parity.twin(module, (1, 3, 13, 15))
    assert tuple(model.inputs[0].shape[1:3]) == (13, 15)
    assert type(model.get_layer("flatten")).__name__ == "Flatten"  # rows reordered by the transfer, not moved
    x = np.random.default_rng(1).standard_normal((2, 3, 13, 15)).astype(np.float32)
    outs = run_twins(module, model, x)
    assert pair_error(outs["torch"], outs["keras"]).within(TOL)


def test_dict_and_tuple_outputs_keep_torch_order():
    module, model = twin_of("Resize")
    assert [tuple(t.shape) for t in model.outputs] == [(None, None, None, 4), (None, None, None, 4),
                                                        (None, None, None, 4)]
    module, model = twin_of("Adaptive")
    assert [tuple(t.shape) for t in model.outputs] == [(None, 7), (None, 4)]


def test_unmapped_op_names_node_source_line_op_and_supported_list():
    with pytest.raises(parity.UnsupportedOpError) as info:
        parity.twin(nets.Cumsum().eval(), (1, 3, 8, 8))
    msg = str(info.value)
    print(msg[:400])
    assert "fx node 'cumsum'" in msg and "op torch.cumsum" in msg
    assert "tests/nets.py" in msg and "torch.cumsum(self.conv(x), dim=1)" in msg  # the source line
    assert "torch.nn.Conv2d" in msg and "Tensor.view" in msg  # the supported list


def test_a_model_fx_cannot_trace_gets_the_tracers_reason_and_the_module_path():
    with pytest.raises(parity.UnsupportedOpError, match=r"torch.fx cannot trace Untraceable: in module 'body.1' "
                                                         r"\(tests.nets.Inner\)"):
        parity.twin(nets.Untraceable().eval(), (1, 3, 8, 8))


def test_an_argument_the_facade_does_not_implement_is_named():
    with pytest.raises(parity.UnsupportedOpError, match=r"module '0'.*padding_mode='reflect' is not supported.*"
                                                         r"tf_impl/nn.py"):
        parity.twin(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")), (1, 3, 8, 8))


def test_a_lone_weighted_leaf_is_refused_and_a_lone_weightless_one_converts():
    with pytest.raises(parity.UnsupportedOpError, match=r"wrap it: nn.Sequential\(module\)"):
        parity.twin(nn.Conv2d(3, 3, 1), (1, 3, 4, 4))
    module = nn.LocalResponseNorm(3)
    model = parity.twin(module, (1, 6, 4, 4))
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 3)).astype(np.float32)
    outs = run_twins(module, model, x)
    assert pair_error(outs["torch"], outs["keras"]).within(TOL)


def test_the_twin_is_traced_in_eval_mode_and_the_module_keeps_its_mode():
    module = nets.tiny().train()
    model = parity.twin(module, (1, 3, 8, 8))
    assert module.training and all(m.training for m in module.modules())
    assert isinstance(model, keras.Model)


def test_supported_lists_every_family():
    ops = supported()
    assert "torch.nn.Conv2d" in ops["modules"] and "torch.nn.functional.interpolate" in ops["functions"]
    assert "Tensor.permute" in ops["methods"]


def test_the_caller_weights_are_what_the_twin_holds():
    module = randomize_torch(nets.tiny().eval(), 3)
    model = parity.twin(module, (1, 3, 8, 8))
    kernel = model.get_layer("0").kernel.numpy()
    np.testing.assert_array_equal(kernel, module[0].weight.detach().numpy().transpose(2, 3, 1, 0))
    with torch.no_grad():
        module[0].weight.add_(1.0)  # the twin does not share the torch tensor's memory
    np.testing.assert_array_equal(model.get_layer("0").kernel.numpy(), kernel)


def test_the_trace_compares_channels_last_layers_in_torch_order():
    """ConvNeXt-style Linear and LayerNorm on a permuted (N, H, W, C) tensor: the per-layer trace must
    compare them as torch shapes them, with no false divergence."""
    module, model = twin_of("Shapes")
    report = trace_layers(module, model, np.random.default_rng(3).standard_normal((2, 3, 5, 7)).astype(np.float32))
    rows = {r.path: r for r in report.rows}
    assert rows["mlp"].shape == (2, 5, 7, 6) and rows["mlp"].ok and rows["norm"].ok
    assert report.first_divergence is None, report.table()


@pytest.mark.parametrize("before", ["alone", "folded", "chain"])
def test_onnx_counts_of_a_batchnorm_without_affine_terms(before, tmp_path):
    """Found by Hypothesis: torch's exporter writes a non-affine BatchNorm with a scale of ones and a bias of
    zeros (2*C more floats), folds one after a conv with 2*C fewer floats, not 4*C, and folds a chain of
    BatchNorms after a conv into that one conv (its gained bias counted once)."""
    from parity.counts import onnx_count, torch_onnx_expected
    from parity.onnx_io import export_onnx, load_checked

    layers = {"alone": [nn.Conv2d(3, 4, 3), nn.ReLU()], "folded": [nn.Conv2d(3, 4, 3, bias=False)],
              "chain": [nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4)]}[before]
    module = randomize_torch(nn.Sequential(*layers, nn.BatchNorm2d(4, affine=False)).eval(), 0)
    path = export_onnx(module, tmp_path / "bn.onnx", (1, 3, 8, 8))
    assert onnx_count(load_checked(path)) == torch_onnx_expected(module, torch.zeros(1, 3, 8, 8))
