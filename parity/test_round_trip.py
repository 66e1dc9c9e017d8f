"""Round trips through the automatic twins.

- Weights Keras -> torch -> Keras come back bit-exact: the Keras model's twin (``parity.twin``), then
  ``parity.transfer`` into a fresh copy of the Keras model (``keras.models.clone_model``: same layers, same
  names, new weights).
- Keras -> automatic torch twin -> ``parity.twin`` of that torch module back to Keras (the torch -> Keras
  converter, issue 9, with ``parity/convert/torch_ops/keras_nn.py``) gives the original's layers, names and
  outputs; the flatten-order trap of that hop; ``keras_nn`` settings no Keras layer takes are refused.
"""
import numpy as np
import pytest

import parity
from parity.compare import pair_error, run_twins
from parity.fixtures import keras_models
from parity.layout import to_nhwc
from parity.randomize import randomize_keras
from parity.registry import FLOAT32_TOLERANCE as TOL
from parity.weight_transfer import keras_layers
from parity.zoo.keras_applications import FIXED_NOTOP, MODELS, application
from tf_impl.backend import keras

BUILDERS = [keras_models.convolutions, keras_models.normalisations, keras_models.pooling, keras_models.shapes,
            keras_models.small_cnn]


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_weights_keras_to_torch_to_keras_are_bit_exact(build):
    model = randomize_keras(build(), seed=6)
    twin = parity.twin(model)
    copy = keras.models.clone_model(model)
    report = parity.transfer(twin, copy)
    assert report.ok and report.tensors == len([w for w in model.weights if "float" in str(w.dtype)])
    layers, copies = keras_layers(model), keras_layers(copy)
    assert list(layers) == list(copies)
    pairs = [(a, b) for name in layers for a, b in zip(layers[name].weights, copies[name].weights, strict=True)]
    differ = [a.path for a, b in pairs if not np.array_equal(a.numpy(), b.numpy())]
    print(f"{model.name}: {len(pairs)} weights, {report.tensors} transferred, {len(differ)} differ")
    assert not differ, differ
    shape = (2, model.inputs[0].shape[-1], *(s or 16 for s in model.inputs[0].shape[1:3]))
    x = to_nhwc(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    outs = [np.asarray(o) for o in keras.tree.flatten(model(x, training=False))]
    back = [np.asarray(o) for o in keras.tree.flatten(copy(x, training=False))]
    assert all(np.array_equal(a, b) for a, b in zip(outs, back))


@pytest.mark.zoo
@pytest.mark.parametrize("model_name", list(MODELS))
def test_keras_applications_weights_come_back_bit_exact(model_name):
    """The same through every keras.applications model of the zoo (with its top)."""
    model = randomize_keras(application(model_name, weights=None), seed=6)
    copy = keras.models.clone_model(model)
    report = parity.transfer(parity.twin(model), copy)
    layers, copies = keras_layers(model), keras_layers(copy)
    differ = [a.path for name in layers for a, b in zip(layers[name].weights, copies[name].weights, strict=True)
              if not np.array_equal(a.numpy(), b.numpy())]
    print(f"{model_name}: {report.tensors} tensors, {report.bytes / 1e6:.1f} MB back to Keras, {len(differ)} differ")
    assert report.ok and not differ, differ


# the first shape is the one the torch twin is converted at; the Keras twin keeps H and W free where the
# original does, and is compared at every shape (odd sizes: TF's 'same' pads the odd pixel after)
ROUND_TRIP_SHAPES = {"convolutions": [(1, 4, 33, 27), (2, 4, 20, 17)], "normalisations": [(2, 3, 31, 23), (1, 3, 9, 12)],
                     "pooling": [(2, 4, 29, 35), (1, 4, 16, 11)], "shapes": [(2, 4, 6, 5)],
                     "small_cnn": [(2, 3, 32, 32)]}


def _round_trip_errors(model, torch_twin, keras_again, shape):
    """``(err, hop)`` at NCHW ``shape``: the Keras model that came back against the original, and against the
    torch twin it came through."""
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    first = run_twins(torch_twin, model, x)
    again = run_twins(torch_twin, keras_again, x)["keras"]
    return (pair_error(first["keras"], again, labels=("keras", "keras -> torch -> keras")),
            pair_error(first["torch"], again, labels=("torch twin", "keras -> torch -> keras")))


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_keras_to_torch_to_keras_outputs(build):
    """The second hop is ``parity.twin(torch_module, input_shape)``, the torch -> Keras converter: the
    ``keras_nn`` modules map back onto the Keras layers they mirror, named like the original's layers, and
    the torch twin's weights transfer into them by the same rule."""
    model = randomize_keras(build(), seed=8)
    shapes = ROUND_TRIP_SHAPES[build.__name__]
    torch_twin = parity.twin(model)
    keras_again = parity.twin(torch_twin, shapes[0])
    assert list(keras_layers(keras_again)) == list(keras_layers(model))
    for shape in shapes:
        err, hop = _round_trip_errors(model, torch_twin, keras_again, shape)
        print(f"{model.name} {'x'.join(map(str, shape))}: Keras -> torch -> Keras, relative error {err.rel:.3g} "
              f"(against the torch twin {hop.rel:.3g})")
        assert err.within(TOL), err
        assert hop.within(TOL), hop


@pytest.mark.zoo
@pytest.mark.parametrize("model_name", list(MODELS))
def test_keras_applications_round_trip_outputs(model_name):
    """Every keras.applications model of the zoo without its top (free input size but NASNetMobile's, random
    weights and statistics) through its automatic torch twin and back to Keras, converted and compared at
    161x193 (odd at every stride). The torch twin's own error is printed only: its bound is the zoo entry's
    (``keras.<Model>.notop``, with pixel inputs and calibrated statistics where the model rescales its input;
    MobileNetV2's ReLU6 map, with the random statistics used here, is measured at 1.2e-4: its entry calibrates
    them, :data:`parity.zoo.keras_applications.CALIBRATED`)."""
    import time

    size = (161, 193, 3) if model_name in FIXED_NOTOP else (None, None, 3)
    model = randomize_keras(application(model_name, weights=None, include_top=False, input_shape=size), seed=8)
    shape = (1, 3, 161, 193)
    t0 = time.perf_counter()
    torch_twin = parity.twin(model)
    t1 = time.perf_counter()
    keras_again = parity.twin(torch_twin, shape)
    t2 = time.perf_counter()
    assert list(keras_layers(keras_again)) == list(keras_layers(model))
    err, hop = _round_trip_errors(model, torch_twin, keras_again, shape)
    print(f"{model_name} 161x193: Keras -> torch {t1 - t0:.1f} s, torch -> Keras {t2 - t1:.1f} s; relative error "
          f"{err.rel:.3g} (against the torch twin {hop.rel:.3g})")
    assert err.within(TOL), err


@pytest.mark.parametrize("leaf, why", [(lambda K: K.Activation("gelu_tanh"), "gelu_tanh"),
                                       (lambda K: K.Normalization([0.0], [1.0], epsilon=1e-3), "epsilon"),
                                       (lambda K: K.LayerNormalization((5, 4), dims=(2, 3)), "one axis")],
                         ids=["gelu_tanh", "normalization_epsilon", "layer_norm_two_axes"])
def test_keras_nn_without_a_keras_layer_is_refused(leaf, why):
    """A keras_nn module whose arguments no Keras layer takes is a named refusal, never an approximation."""
    import torch

    from torch_impl import keras_nn

    with pytest.raises(parity.UnsupportedOpError, match=why) as exc:
        parity.twin(torch.nn.Sequential(keras_nn.Conv2D(3, 4, 1), leaf(keras_nn)), (2, 3, 5, 4))
    assert "'1'" in str(exc.value) and "torch_impl.keras_nn." in str(exc.value)
    print(str(exc.value)[:160])


def test_keras_nn_flatten_order_trap():
    """keras_nn.Flatten(order=None) flattens torch's C, H, W. Read by Dense layers only, it becomes Keras's
    Flatten of the NHWC map (H, W, C) and the transfer reorders the Dense rows; read by anything else, the
    values are flattened in torch's order. The naive translation, a Keras Flatten of the NHWC map with the
    Dense kernel copied as it is, fails both ways."""
    import torch

    from parity.randomize import randomize_torch
    from torch_impl import keras_nn

    shape = (2, 3, 5, 7)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    conv = keras_nn.Conv2D(3, 4, 3, padding="same")
    flat = randomize_torch(torch.nn.Sequential(conv, keras_nn.Flatten()), seed=3)
    read = randomize_torch(torch.nn.Sequential(conv, keras_nn.Flatten(), keras_nn.Dense(4 * 5 * 7, 6)), seed=3)
    ours = {name: parity.twin(m, shape) for name, m in (("flatten", flat), ("dense", read))}
    k = ours["dense"]  # naive: its Keras Flatten of the NHWC map, and its Dense with torch's weight.T as kernel
    naive = {"flatten": keras.Model(k.inputs[0], k.get_layer("1").output), "dense": k}
    dense_layer, naive_kernel = k.get_layer("2"), read[2].weight.detach().numpy().T
    for name, m in (("flatten", flat), ("dense", read)):
        want = run_twins(m, ours[name], x)
        good = pair_error(want["torch"], want["keras"], labels=("torch", "ours"))
        kernel = dense_layer.kernel.numpy()
        dense_layer.kernel.assign(naive_kernel)
        bad = pair_error(want["torch"], run_twins(m, naive[name], x)["keras"], labels=("torch", "naive"))
        dense_layer.kernel.assign(kernel)
        print(f"Flatten read by {name}: ours {good.rel:.3g}, naive {bad.rel:.3g}")
        assert good.within(TOL), good
        assert not bad.within(TOL) and bad.rel > 0.1, bad
