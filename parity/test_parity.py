"""Every registry entry: torch vs Keras vs both ONNX exports at every input shape of its spec, parameter
counts against the published figures, and the transfer in both directions."""
import numpy as np
import pytest

from parity import counts
from parity.conftest import record
from parity.compare import pair_error, run_twins
from parity.onnx_io import load_checked
from parity.randomize import randomize_keras, randomize_torch
from parity.registry import build, get, names
from parity.weight_transfer import torch_tensors, transfer


def test_outputs_match(harness, input_shape):
    result = harness.compare(input_shape)
    record(harness.name, input_shape, result.errors)
    assert len(result.errors) == 6, f"expected 6 runtime pairs, compared {sorted(result.errors)}"
    if result.problems:  # attach the per-layer table: which layer diverges first
        pytest.fail("\n".join(result.problems) + "\n" + harness.trace(input_shape).table())


def test_param_counts(harness):
    got, expected, problems = harness.counts()
    print(f"{harness.name}: counted {got}; expected {expected}")
    assert set(got) == {"torch", "keras", "onnx:torch", "onnx:keras"}
    assert got["torch"] == got["keras"], f"torch {got['torch']} vs Keras {got['keras']}"
    assert not problems, "\n".join(problems)


def test_transfer_is_strict_and_complete(harness):
    r = harness.transfer
    assert (r.missing, r.unexpected, r.mismatched, r.numerics) == ([], [], [], [])
    assert r.tensors == sum(len(t) for t in torch_tensors(harness.torch_model).values())


def test_onnx_files_are_valid_and_dynamic(harness):
    spec = harness.spec
    for key, path in harness.paths.items():
        model = load_checked(path)  # runs onnx.checker on the file
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param, f"{key}: batch dimension is fixed at {dims[0].dim_value}"
        spatial = [dims[i] for i in ((2, 3) if key == "onnx:torch" else (1, 2))]
        if key in harness.static_exports:  # torch's exporter refused free H, W (checked by onnx_io's fallback)
            assert key == "onnx:torch", f"{key}: only torch's exporter falls back to a fixed H, W"
            continue
        if not spec.fixed_size:
            assert all(d.dim_param for d in spatial), f"{key}: spatial dims fixed at {[d.dim_value for d in spatial]}"


@pytest.mark.parametrize("name", [n for n in names() if get(n).source == "torch"])
def test_keras_to_torch(name):
    """The other direction: randomise the Keras twin, transfer into a fresh torch twin, compare. (An entry
    whose original is a Keras model, torch=AUTO, goes Keras -> torch in its harness already.) A
    ``calibrate_batchnorm`` entry gets its Keras weights from a calibrated torch twin (``parity.randomize``)."""
    spec = get(name)
    keras_model = build(name, "keras")
    if spec.calibrate_batchnorm:
        transfer(randomize_torch(build(name, "torch"), seed=7, calibrate=spec.default_shape), keras_model)
    else:
        randomize_keras(keras_model, seed=7)
    torch_model = build(name, "torch")
    report = transfer(keras_model, torch_model)
    assert report.ok and report.direction == "keras -> torch"
    x = np.random.default_rng(3).standard_normal(spec.default_shape).astype(np.float32)
    outs = run_twins(torch_model, keras_model, x)
    err = pair_error(outs["torch"], outs["keras"])
    record(name, spec.default_shape, {"keras->torch: torch ~ keras": err})
    assert err.within(spec.tolerance), f"relative error {err.rel:.3g} > {spec.tolerance:g} {err.problems}"
    assert counts.torch_count(torch_model) == counts.keras_count(keras_model)
