"""The "train" state of both Inception v1 variants, in training mode: the auxiliary heads are live (their
dropout draws a new mask per call) and every parameter receives a gradient, in torch and in Keras.

The loss is the paper's: cross-entropy of the main head plus 0.3 times each auxiliary head's.
"""
import numpy as np
import pytest
import tensorflow as tf
import torch

from parity.registry import build, get

AUX_WEIGHT = 0.3  # the paper's discount of the auxiliary losses


def _batch(name: str):
    n, c, h, w = get(name).default_shape
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, c, h, w)).astype(np.float32), rng.integers(0, 1000, 2)


@pytest.mark.parametrize("name", ["inception_v1_blog_train", "inception_v1_train"])
def test_torch_training_reaches_every_parameter(name):
    x, labels = _batch(name)
    model = build(name, "torch").train()
    torch.manual_seed(0)
    outs = model(torch.from_numpy(x))
    assert len(outs) == 3 and all(o.shape == (2, 1000) for o in outs)
    aux1_again = model(torch.from_numpy(x))[0]
    assert not torch.equal(outs[0], aux1_again), "aux1 gave the same output twice: its Dropout(0.7) is not live"
    target = torch.from_numpy(labels)
    ce = torch.nn.functional.cross_entropy
    loss = ce(outs[2], target) + AUX_WEIGHT * (ce(outs[0], target) + ce(outs[1], target))
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    total = sum(1 for _ in model.parameters())
    print(f"{name}: torch loss {loss.item():.4f}, {total - len(dead)}/{total} parameter tensors with a gradient")
    assert not dead, f"no gradient reached: {dead}"


@pytest.mark.parametrize("name", ["inception_v1_blog_train", "inception_v1_train"])
def test_keras_training_reaches_every_weight(name):
    x, labels = _batch(name)
    model = build(name, "keras")
    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        aux1, aux2, out = model(x_nhwc, training=True)
        loss = ce(labels, out) + AUX_WEIGHT * (ce(labels, aux1) + ce(labels, aux2))
    grads = tape.gradient(loss, model.trainable_weights)
    aux1_again = model(x_nhwc, training=True)[0]
    assert not np.array_equal(aux1.numpy(), aux1_again.numpy()), "aux1 is deterministic in training mode"
    dead = [w.path for w, g in zip(model.trainable_weights, grads) if g is None or not np.any(g.numpy() != 0)]
    total = len(model.trainable_weights)
    print(f"{name}: Keras loss {float(loss):.4f}, {total - len(dead)}/{total} weights with a gradient")
    assert total == sum(1 for _ in build(name, "torch").parameters())
    assert not dead, f"no gradient reached: {dead}"


@pytest.mark.parametrize("name", ["inception_v1_blog", "inception_v1"])
def test_test_state_has_no_aux_heads(name):
    model = build(name, "torch")
    assert not any("aux" in n for n, _ in model.named_modules())
    x, _ = _batch(name)
    with torch.no_grad():
        assert model(torch.from_numpy(x[:1])).shape == (1, 1000)


def test_unknown_state_is_refused():
    with pytest.raises(ValueError, match="'test' or 'train', got 'eval'"):
        build("inception_v1", "torch", state="eval")
