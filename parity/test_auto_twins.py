"""Automatic twins against the hand-written ones, and the zoo's command lines.

- The automatic twin (``parity.twin``) of each hand-written registry entry's torch model matches torch at
  every input shape of the spec, counts the same parameters, and its weighted layers carry exactly the names
  of the hand-written Keras twin's (so checkpoints port between the two). Blocks run in the default suite
  (torch ~ Keras); every entry runs the full four-runtime check under ``-m zoo``.
- Every torchvision zoo entry is input-sensitive with its random weights (two inputs give outputs that
  differ by more than 100x the tolerance), so that its parity check cannot pass on a network that ignores
  its input.
- ``parity check torchvision.models:resnet18`` and ``parity convert torchvision.models:mobilenet_v3_small``
  work, and the converted file runs standalone (``-m zoo``).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import parity
from parity import cli
from parity.compare import pair_error, run_twins
from parity.conftest import record
from parity.counts import keras_count, torch_count
from parity.loader import load
from parity.randomize import randomize_torch
from parity.registry import AUTO
from parity.weight_transfer import keras_layers

HAND_WRITTEN = [n for n in parity.names() if parity.get(n).keras != AUTO and parity.get(n).torch != AUTO]
ZOO = [n for n in parity.names() if parity.get(n).zoo and parity.get(n).source == "torch"]  # torchvision


def _params(kind: str):
    return [pytest.param(n, marks=[] if parity.get(n).kind == kind == "block" else [pytest.mark.zoo])
            for n in HAND_WRITTEN if kind == "any" or parity.get(n).kind == kind]


@pytest.mark.parametrize("name", _params("block"))
def test_automatic_twin_of_a_hand_written_block(name):
    spec = parity.get(name)
    module = randomize_torch(parity.build(name, "torch"), seed=0)
    auto = parity.twin(module, spec.sample_shape())
    hand = parity.build(name, "keras")
    assert sorted(keras_layers(auto)) == sorted(keras_layers(hand)), "weighted layers must carry the same names"
    assert keras_count(auto) == keras_count(hand) == torch_count(module)
    for shape in spec.input_shapes:
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        outs = run_twins(module, auto, x)
        err = pair_error(outs["torch"], outs["keras"], labels=("torch", "keras"))
        record(f"auto:{name}", shape, {"torch ~ keras": err})
        assert err.within(spec.tolerance), f"{name} at {shape}: {err}"


@pytest.mark.parametrize("name", _params("any"))
def test_automatic_twin_of_a_hand_written_entry_passes_the_four_runtime_check(name):
    spec = parity.get(name)
    auto = parity.twin(parity.build(name, "torch"), spec.sample_shape())
    assert sorted(keras_layers(auto)) == sorted(keras_layers(parity.build(name, "keras")))
    for shape in spec.input_shapes:
        report = parity.check(parity.build(name, "torch"), input_shape=shape, name=f"auto:{name}")
        record(f"auto:{name}", shape, report.errors)
        assert report.ok, "\n".join(report.problems)
        expected = parity.get(name).params
        if expected is not None:
            assert (report.counts["keras"].trainable, report.counts["keras"].statistics) == (
                expected.trainable, expected.statistics), f"counts against {expected.source}"


@pytest.mark.zoo
def test_zoo_calibrates_exactly_the_gated_models():
    """The zoo's calibrated entries are the models with sigmoid gates, the rule ``parity.check`` applies to
    a torch module (``parity.randomize.has_gates``)."""
    from parity.randomize import has_gates
    from parity.zoo.torchvision import CALIBRATED, MODELS

    gated = {n for n, (builder, kwargs, *_) in MODELS.items()
             if has_gates(load(builder, {"weights": None, **kwargs}))}
    assert gated == CALIBRATED


@pytest.mark.zoo
@pytest.mark.parametrize("name", ZOO)
def test_zoo_entry_is_input_sensitive(name):
    spec = parity.get(name)
    module = randomize_torch(parity.build(name, "torch"), 0, calibrate=spec.default_shape if spec.calibrate_batchnorm else None)
    outs = []
    for seed in (1, 2):
        x = torch.from_numpy(np.random.default_rng(seed).standard_normal(spec.default_shape).astype(np.float32))
        with torch.no_grad():
            out = module(x)
        outs.append((list(out.values()) if isinstance(out, dict) else [out])[0].numpy())
    change = pair_error([outs[0]], [outs[1]]).rel
    print(f"{name}: outputs for two random inputs differ by {change:.1e} (relative)")
    assert change > 100 * spec.tolerance, (f"{name} barely depends on its input ({change:.1e}): a wrong layer "
                                          f"would move its output by less than 100x the tolerance")


@pytest.mark.zoo
def test_parity_check_a_torchvision_model_by_name(capsys):
    code = cli.main(["check", "torchvision.models:resnet18", "--input-shape", "1,3,224,224"])
    out = capsys.readouterr().out
    print(out)
    rows = [line for line in out.splitlines() if line.startswith("resnet18 ")]
    assert code == 0 and len(rows) == 6 and all(" PASS " in row for row in rows), out
    assert "[1/1] resnet18: PASS in" in out and "1 passed, 0 failed" in out


RUN_EMITTED = ("import importlib.util, json, sys\nimport numpy as np\nimport keras\n"
               "spec = importlib.util.spec_from_file_location('m', sys.argv[1])\n"
               "m = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(m)\n"
               "model = m.build_model()\nmodel.load_weights(sys.argv[2])\n"
               "np.save(sys.argv[4], keras.ops.convert_to_numpy(model(np.load(sys.argv[3]))))\n"
               "print(json.dumps({'parity': 'parity' in sys.modules, 'torch': 'torch' in sys.modules}))\n")


@pytest.mark.zoo
def test_parity_convert_mobilenet_v3_small_runs_standalone(tmp_path, capsys):
    """The files hold the weights torchvision's builder drew in the CLI call (torch seeded first); a fresh
    process that imports neither parity nor torch rebuilds the model from them and matches torch on those
    weights at another odd size, on Keras's TensorFlow and torch backends."""
    out = tmp_path / "mbv3_keras"
    torch.manual_seed(123)
    assert cli.main(["convert", "torchvision.models:mobilenet_v3_small", "--input-shape", "1,3,224,224",
                     "--out", str(out)]) == 0, capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["mobilenet_v3_small.report.json",
                                                      "mobilenet_v3_small.weights.h5", "mobilenet_v3_small_keras.py"]
    torch.manual_seed(123)
    module = load("torchvision.models:mobilenet_v3_small", {})  # the same draw
    x = np.random.default_rng(0).standard_normal((2, 3, 201, 175)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    np.save(tmp_path / "x.npy", x.transpose(0, 2, 3, 1))
    for backend in ("tensorflow", "torch"):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"KERAS_BACKEND": backend}
        run = subprocess.run([sys.executable, "-c", RUN_EMITTED, str(out / "mobilenet_v3_small_keras.py"),
                              str(out / "mobilenet_v3_small.weights.h5"), str(tmp_path / "x.npy"),
                              str(tmp_path / "y.npy")], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        if backend == "tensorflow":
            assert json.loads(run.stdout.strip().splitlines()[-1]) == {"parity": False, "torch": False}
        err = pair_error([ref], [np.load(tmp_path / "y.npy")])
        print(f"emitted mobilenet_v3_small on Keras's {backend} backend against torch: {err.rel:.2e}")
        assert err.within(1e-5), err
