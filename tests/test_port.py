"""``parity port``: checkpoints made here with random weights, ported in both directions and verified; every
failure raises a clear error and writes nothing."""
import argparse
import dataclasses

import h5py
import numpy as np
import pytest
import torch

import parity
from parity import cli, porting, registry
from parity.compare import pair_error
from parity.randomize import randomize_keras, randomize_torch
from tests.conftest import SMALL_ASPP, run_both
from tf_impl.backend import keras


def _state(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_nothing_written(folder, dst):
    assert not dst.exists(), f"{dst} was written"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith((f".{dst.name}", ".parity-"))]
    assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.fixture
def torch_checkpoint(tmp_path):
    """A small ASPP torch twin with random weights and statistics, and its state_dict as a .pt file."""
    module = randomize_torch(parity.build("aspp", "torch", **SMALL_ASPP), seed=3)
    path = tmp_path / "aspp.pt"
    torch.save(module.state_dict(), path)
    return module, path


def test_round_trip_through_every_format_is_exact(tmp_path, torch_checkpoint):
    """.pt -> .weights.h5 -> .safetensors -> .keras -> .pth: each hop verified, and the end equals the start."""
    module, path = torch_checkpoint
    hops = ["aspp.weights.h5", "aspp.safetensors", "aspp.keras", "aspp.pth"]
    directions = ["torch -> keras", "keras -> torch", "torch -> keras", "keras -> torch"]
    src = path
    for hop, direction in zip(hops, directions):
        dst = tmp_path / hop
        report = parity.port("aspp", src, dst, **SMALL_ASPP)
        print(f"{src.name} -> {dst.name}: {report.errors['torch ~ keras']}, {report.tensors} tensors, "
              f"{report.seconds['total']:.2f} s")
        assert report.ok and report.direction == direction and dst.is_file()
        assert report.errors["torch ~ keras"].within(1e-5)
        src = dst
    end = torch.load(src, weights_only=True)
    start = module.state_dict()
    floats = [k for k in start if start[k].is_floating_point()]
    assert sorted(floats) == sorted(k for k in end if end[k].is_floating_point())
    for k in floats:
        assert torch.equal(end[k], start[k]), f"{k} changed on the way"


def test_keras_weights_port_to_torch_and_compute_the_same(tmp_path):
    keras_model = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=5)
    keras_model.save_weights(tmp_path / "k.weights.h5")
    report = parity.port("aspp", tmp_path / "k.weights.h5", tmp_path / "t.pt", **SMALL_ASPP)
    assert report.direction == "keras -> torch"
    module = parity.build("aspp", "torch", **SMALL_ASPP)
    module.load_state_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    x = np.random.default_rng(0).standard_normal((2, 8, 9, 6)).astype(np.float32)
    ref, out = run_both(module, keras_model, x)
    err = pair_error([ref], [out])
    print(f"keras file -> torch file, then both run at {x.shape}: relative error {err.rel:.2e}")
    assert err.within(1e-5), err


def _foreign_names(path, rename: dict) -> None:
    """Rewrites the layer names stored in a Keras 3 .weights.h5 file, as another tool would name them."""
    with h5py.File(path, "r+") as f:
        def visit(name, obj):
            if name.endswith("vars") and obj.attrs.get("name") in rename:
                obj.attrs["name"] = rename[obj.attrs["name"]]
        f.visititems(visit)


def test_foreign_keras_names_are_mapped_by_their_table(tmp_path, monkeypatch):
    """A registry entry's foreign_names on a small model: a file whose layers have another tool's names."""
    keras_model = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=2)
    path = tmp_path / "foreign.weights.h5"
    keras_model.save_weights(path)
    ours = list(porting.keras_layers(keras_model))
    table = {f"other_{i}": name for i, name in enumerate(ours)}
    _foreign_names(path, {v: k for k, v in table.items()})
    with pytest.raises(parity.CheckpointError, match=r"does not hold the weights of 'aspp'; missing 18: conv1x1\.0, "
                                                     r".*; unexpected 18: other_0, other_1"):
        parity.port("aspp", path, tmp_path / "t.pt", **SMALL_ASPP)
    _assert_nothing_written(tmp_path, tmp_path / "t.pt")
    spec = registry.get("aspp")
    monkeypatch.setitem(registry._REGISTRY, "aspp", dataclasses.replace(spec, foreign_names={"other tool": table}))
    report = parity.port("aspp", path, tmp_path / "t.pt", **SMALL_ASPP)
    assert report.ok and report.renamed == "other tool"
    # the same foreign model as a full .keras file (layers renamed in its config)
    inverse = {v: k for k, v in table.items()}
    clone = keras.models.clone_model(keras_model, clone_function=lambda layer: layer.__class__.from_config(
        {**layer.get_config(), "name": inverse.get(layer.name, layer.name)}))
    clone.set_weights(keras_model.get_weights())
    assert "other_0" in [layer.name for layer in clone.layers]
    clone.save(tmp_path / "foreign.keras")
    report = parity.port("aspp", tmp_path / "foreign.keras", tmp_path / "t2.pt", **SMALL_ASPP)
    assert report.ok and report.renamed == "other tool"
    assert all(torch.equal(a, b) for a, b in zip(torch.load(tmp_path / "t.pt", weights_only=True).values(),
                                                 torch.load(tmp_path / "t2.pt", weights_only=True).values()))


def test_legacy_keras2_h5_is_read_by_layer_and_weight_names(tmp_path):
    keras_model = randomize_keras(parity.build("aspp", "keras", **SMALL_ASPP), seed=4)
    path = tmp_path / "legacy.h5"
    keras_model.save(path)  # Keras 3 still writes the Keras 2 (HDF5 full model) format for a .h5 name
    with h5py.File(path) as f:
        assert "model_weights" in f and "layer_names" in f["model_weights"].attrs
    report = parity.port("aspp", path, tmp_path / "t.safetensors", **SMALL_ASPP)
    assert report.ok and report.direction == "keras -> torch"


# --- errors: each names what it expected and what it received, and writes nothing ------------------------

def test_unknown_extension(tmp_path, torch_checkpoint):
    _, path = torch_checkpoint
    with pytest.raises(parity.CheckpointError, match=r"unknown checkpoint extension for .*out\.bin: expected one "
                                                     r"of \.weights\.h5, \.h5, \.keras, \.pt, \.pth, \.safetensors"):
        parity.port("aspp", path, tmp_path / "out.bin", **SMALL_ASPP)
    _assert_nothing_written(tmp_path, tmp_path / "out.bin")


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "weights.h5", "keras"])
def test_truncated_file(tmp_path, torch_checkpoint, fmt):
    _, pt = torch_checkpoint
    src = tmp_path / f"good.{fmt}"
    if fmt != "pt":
        parity.port("aspp", pt, src, **SMALL_ASPP)
    else:
        src = pt
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    dst = tmp_path / ("out.weights.h5" if fmt in ("pt", "safetensors") else "out.pt")
    with pytest.raises(parity.CheckpointError, match=r"cannot read .* file \(truncated or corrupted\?\)"):
        parity.port("aspp", src, dst, **SMALL_ASPP)
    _assert_nothing_written(tmp_path, dst)


def test_checkpoint_of_another_architecture_names_the_first_tensors(tmp_path):
    other = parity.build("aspp_conv_bn_relu", "torch", in_channels=8, out_channels=4)
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(parity.CheckpointError, match=r"other\.pt does not hold the weights of 'aspp'; missing \d+: "
                                                     r"conv1x1\.0\.weight, .*; unexpected 6: 0\.weight, 1\.bias"):
        parity.port("aspp", tmp_path / "other.pt", tmp_path / "out.weights.h5", **SMALL_ASPP)
    _assert_nothing_written(tmp_path, tmp_path / "out.weights.h5")


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path):
    wider = parity.build("aspp", "torch", in_channels=8, filters=5)
    torch.save(wider.state_dict(), tmp_path / "wider.pt")
    with pytest.raises(parity.CheckpointError, match=r"conv1x1\.0\.weight: expected shape \(4, 8, 1, 1\), "
                                                     r"received \(5, 8, 1, 1\)"):
        parity.port("aspp", tmp_path / "wider.pt", tmp_path / "out.keras", **SMALL_ASPP)
    _assert_nothing_written(tmp_path, tmp_path / "out.keras")
    keras_wider = parity.build("aspp", "keras", in_channels=8, filters=5)
    keras_wider.save_weights(tmp_path / "wider.weights.h5")
    with pytest.raises(parity.CheckpointError, match=r"pool_conv\.0/kernel: expected shape \(1, 1, 8, 4\), "
                                                     r"received \(1, 1, 8, 5\)"):
        parity.port("aspp", tmp_path / "wider.weights.h5", tmp_path / "out.pt", **SMALL_ASPP)
    _assert_nothing_written(tmp_path, tmp_path / "out.pt")


def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(parity.CheckpointError, match=r"expected a state_dict \(a dict of name -> tensor\) in "
                                                     r".*list\.pt, got list"):
        parity.port("aspp", tmp_path / "list.pt", tmp_path / "out.keras", **SMALL_ASPP)


def test_pickled_code_is_refused(tmp_path):
    """weights_only=True: a .pt that would run code on load is unreadable, not executed."""
    torch.save({"conv1x1.0.weight": torch.zeros(1), "hook": argparse.Namespace(run="code")}, tmp_path / "evil.pt")
    with pytest.raises(parity.CheckpointError, match=r"cannot read .*evil\.pt as a state_dict file"):
        parity.port("aspp", tmp_path / "evil.pt", tmp_path / "out.keras", **SMALL_ASPP)
    _assert_nothing_written(tmp_path, tmp_path / "out.keras")


def test_failed_verification_writes_nothing(tmp_path, torch_checkpoint, monkeypatch):
    _, path = torch_checkpoint
    spec = registry.get("aspp")
    monkeypatch.setitem(registry._REGISTRY, "aspp", dataclasses.replace(spec, tolerance=1e-12))
    with pytest.raises(parity.VerificationError, match=r"ported twins disagree at 1x8x13x13: relative "
                                                       r"error .* tolerance 1e-12.*out\.weights\.h5 not written") as e:
        parity.port("aspp", path, tmp_path / "out.weights.h5", **SMALL_ASPP)
    assert e.value.report.errors["torch ~ keras"].rel > 1e-12
    _assert_nothing_written(tmp_path, tmp_path / "out.weights.h5")


def test_existing_destination_is_replaced_only_on_success(tmp_path, torch_checkpoint):
    _, path = torch_checkpoint
    dst = tmp_path / "out.pt"
    dst.write_bytes(b"previous")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(parity.CheckpointError):
        parity.port("aspp", tmp_path / "bad.pt", dst, **SMALL_ASPP)
    assert dst.read_bytes() == b"previous"
    parity.port("aspp", path, tmp_path / "mid.weights.h5", **SMALL_ASPP)
    parity.port("aspp", tmp_path / "mid.weights.h5", dst, **SMALL_ASPP)
    assert set(torch.load(dst, weights_only=True)) == set(torch.load(path, weights_only=True))


# --- the command ------------------------------------------------------------------------------------------

def test_cli_port_prints_the_parity_row_and_exit_codes(tmp_path, capsys):
    module = randomize_torch(parity.build("aspp_conv_bn_relu", "torch"), seed=1)
    torch.save(module.state_dict(), tmp_path / "b.pth")
    assert cli.main(["port", "aspp_conv_bn_relu", "--from", str(tmp_path / "b.pth"),
                     "--to", str(tmp_path / "b.keras")]) == 0
    out = capsys.readouterr().out
    print(out)
    row = next(line for line in out.splitlines() if line.startswith("aspp_conv_bn_relu "))
    assert "torch ~ keras" in row and " PASS " in row and row.endswith("526,336 | 526,336")
    assert "ported aspp_conv_bn_relu torch -> keras" in out and (tmp_path / "b.keras").is_file()
    (tmp_path / "broken.pth").write_bytes(b"\x00" * 100)
    assert cli.main(["port", "aspp_conv_bn_relu", "--from", str(tmp_path / "broken.pth"),
                     "--to", str(tmp_path / "c.keras")]) == 2
    assert "truncated or corrupted" in capsys.readouterr().err
    _assert_nothing_written(tmp_path, tmp_path / "c.keras")


# --- foreign files of the big models: one test per direction (each builds a 25 M / 144 M parameter pair) ---

def _within(ref: np.ndarray, out: np.ndarray, tolerance: float = 1e-5):
    """The relative error of ``out`` against ``ref`` (printed), asserted within ``tolerance``; NaN, Inf or a
    shape mismatch fails (``pair_error``)."""
    err = pair_error([ref], [out])
    print(f"relative error {err.rel:.3g}")
    assert err.within(tolerance), err


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)


def test_torchvision_resnet50_checkpoint_to_keras(tmp_path):
    """A torchvision-format resnet50 state_dict (its keys, num_batches_tracked included) -> .weights.h5, which
    Keras's own loader then reads into a fresh twin."""
    module = randomize_torch(parity.build("resnet50", "torch"), seed=11)
    for name, buf in module.named_buffers():
        if name.endswith("num_batches_tracked"):
            buf.fill_(1234)  # a trained torchvision file has these counters
    src = tmp_path / "resnet50-0676ba61.pth"
    torch.save(module.state_dict(), src)
    report = parity.port("resnet50", src, tmp_path / "resnet50.weights.h5")
    print(f"resnet50 torch -> keras: {report.errors}, {report.tensors} tensors, {report.seconds}")
    assert report.ok and report.tensors == len(module.state_dict())
    model = parity.build("resnet50", "keras")
    model.load_weights(tmp_path / "resnet50.weights.h5")
    ref, out = run_both(module, model, _image())
    _within(ref, out)


def test_keras_resnet50_to_torchvision_format(tmp_path):
    """A .keras resnet50 twin -> .pth that a strict load_state_dict takes, with torchvision's keys."""
    model = randomize_keras(parity.build("resnet50", "keras"), seed=12)
    model.save(tmp_path / "resnet50.keras")
    report = parity.port("resnet50", tmp_path / "resnet50.keras", tmp_path / "resnet50.pth")
    print(f"resnet50 keras -> torch: {report.errors}, {report.tensors} tensors, {report.seconds}")
    state = torch.load(tmp_path / "resnet50.pth", weights_only=True)
    assert {"conv1.weight", "bn1.num_batches_tracked", "layer4.2.bn3.running_var", "fc.bias"} <= set(state)
    module = parity.build("resnet50", "torch")
    module.load_state_dict(state, strict=True)
    ref, out = run_both(module, model, _image(1))
    _within(ref, out)


@pytest.mark.zoo  # 13 s: VGG19's 143.7 M weights; resnet50's port tests cover the same paths by default
def test_keras_applications_vgg19_to_torch(tmp_path):
    """keras.applications.VGG19 weights (block1_conv1 ... predictions; fc1 reads an H, W, C flatten) -> .pth;
    the torch twin then computes what keras.applications computes."""
    original = randomize_keras(keras.applications.VGG19(weights=None, classifier_activation=None), seed=13)
    original.save_weights(tmp_path / "vgg19.weights.h5")
    report = parity.port("vgg19", tmp_path / "vgg19.weights.h5", tmp_path / "vgg19.pth")
    print(f"vgg19 keras.applications -> torch: {report.errors}, {report.tensors} tensors, {report.seconds}")
    assert report.renamed == "keras.applications.VGG19"
    module = parity.build("vgg19", "torch")
    module.load_state_dict(torch.load(tmp_path / "vgg19.pth", weights_only=True), strict=True)
    ref, out = run_both(module, original, _image(2))
    _within(ref, out)


@pytest.mark.zoo  # 13 s, as above
def test_torchvision_vgg19_to_keras_applications(tmp_path):
    """A torchvision-format vgg19 state_dict -> .weights.h5 that keras.applications.VGG19 loads with Keras's
    own loader and then computes what torch computes."""
    module = randomize_torch(parity.build("vgg19", "torch"), seed=14)
    torch.save(module.state_dict(), tmp_path / "vgg19-dcbb9e9d.pth")
    report = parity.port("vgg19", tmp_path / "vgg19-dcbb9e9d.pth", tmp_path / "vgg19.weights.h5")
    print(f"vgg19 torch -> keras: {report.errors}, {report.tensors} tensors, {report.seconds}")
    target = keras.applications.VGG19(weights=None, classifier_activation=None)
    target.load_weights(tmp_path / "vgg19.weights.h5")
    ref, out = run_both(module, target, _image(3))
    _within(ref, out)
