"""keras.applications, each paired with its automatic torch twin (``torch=AUTO``): the Keras model is the
original (random weights, ``weights=None``), the torch side is ``parity.twin`` of it.

Two entries per model, both under the ``zoo`` marker (``pytest -m zoo``; too heavy for the default run):

- ``keras.<Model>``: the model as published, at its native size, with logits (``classifier_activation=None``:
  a softmax over 1000 random logits is nearly one-hot, and compared probabilities then hide errors: measured
  4.5e-14 on MobileNetV3Small);
- ``keras.<Model>.notop``: ``include_top=False, input_shape=(None, None, 3)`` at 161x193, odd at every stride
  (161, 81, 41, 21, 11, 6), so TF's 'same' padding is asymmetric at each stride-2 layer (NASNetMobile, which
  fails at every size when built with a free input, is built at 161x193: :data:`FIXED_NOTOP`).

Models whose input preprocessing is fixed (MobileNetV3's ``Rescaling``; EfficientNetV2's and ConvNeXt's
``Normalization`` with given mean and variance) get pixel inputs, uniform in [0, 255] (a standard-normal
input is a nearly constant image once divided by 255), and BatchNorm statistics set near those of the data
after the randomisation (``parity.randomize.calibrate_keras``): the rescaled input has a large constant part,
which random statistics do not normalise, and activations then grow until the SE gates decide on rounding
differences (measured on EfficientNetV2B0 with standard-normal inputs and random statistics: Keras and its own
ONNX export differ by 0.18). The other models keep the project's randomisation (random statistics, normal
inputs), under which they are well conditioned; calibrating them made ResNet50 worse (1.7e-5), and
EfficientNetB0, whose ``Normalization`` holds adapted (so randomised) statistics, reached 1.3e-5.

Counts: Keras's own ``model.summary()`` figures (trainable + non-trainable weights, Keras 3.15.1), which the
twin's parameters + buffers must equal.
"""
from parity.registry import AUTO, PIXELS, Counts, ModelSpec, register

SOURCE = "keras.applications (Keras 3.15.1) model.summary(): trainable + non-trainable"
OTHER_SIZE = (1, 3, 161, 193)

# model: (native H = W, (trainable, non-trainable) with the top, the same without, inputs rescaled inside)
MODELS = {
    "VGG16": (224, (138_357_544, 0), (14_714_688, 0), False),
    "VGG19": (224, (143_667_240, 0), (20_024_384, 0), False),
    "ResNet50": (224, (25_583_592, 53_120), (23_534_592, 53_120), False),
    "ResNet101": (224, (44_601_832, 105_344), (42_552_832, 105_344), False),
    "ResNet50V2": (224, (25_568_360, 45_440), (23_519_360, 45_440), False),
    "InceptionV3": (299, (23_817_352, 34_432), (21_768_352, 34_432), False),
    "Xception": (299, (22_855_952, 54_528), (20_806_952, 54_528), False),
    "MobileNet": (224, (4_231_976, 21_888), (3_206_976, 21_888), False),
    "MobileNetV2": (224, (3_504_872, 34_112), (2_223_872, 34_112), False),
    "MobileNetV3Small": (224, (2_542_856, 12_112), (927_008, 12_112), True),
    "MobileNetV3Large": (224, (5_483_032, 24_400), (2_971_952, 24_400), True),
    "DenseNet121": (224, (7_978_856, 83_648), (6_953_856, 83_648), False),
    "NASNetMobile": (224, (5_289_978, 36_738), (4_232_978, 36_738), False),
    "EfficientNetB0": (224, (5_288_548, 42_022), (4_007_548, 42_022), False),
    "EfficientNetV2B0": (224, (7_139_704, 60_608), (5_858_704, 60_608), True),
    "ConvNeXtTiny": (224, (28_589_128, 0), (27_820_128, 0), True),
}


# models that cannot be built with a free input size: their other entry is built at OTHER_SIZE
FIXED_NOTOP = {
    "NASNetMobile": "its cells compare branch sizes while the model is built; with input_shape=(None, None, 3) "
                    "that comparison sees None and the Keras model then fails at every size (224x224 included)",
}

# entries on normal inputs that still get calibrated statistics: MobileNetV2's ReLU6 map, with random ones,
# sees pre-activations far past 6 (10% of the output clipped), and both float32 runtimes are 1.0e-4 to 1.3e-4
# from the float64 twin there (1.7e-5 to 2.1e-5 calibrated; with its head, pooled, random ones keep it at 6.7e-6)
CALIBRATED = {"keras.MobileNetV2.notop"}

# entry -> (tolerance, reason), where the float32 default (1e-5) is not enough for any pair of runtimes
TOLERANCES = {
    "keras.MobileNetV2.notop": (5e-5, "float32 itself: with calibrated statistics the torch twin in float32 is "
                                      "1.7e-5 from the same twin in float64 at 161x193, Keras 1.8e-5 (rounding "
                                      "doubles every ~3 of the 17 normalised residual blocks)"),
    "keras.MobileNetV3Large.notop": (2e-5, "float32 itself: at 161x193 (calibrated, pixel inputs) "
                                           "the torch twin is 5.0e-6 from the same twin in float64, Keras 7.2e-6, "
                                           "and two runtimes can differ by the sum: Keras and its own ONNX export "
                                           "measured 1.17e-5; with its head (224x224) 7.3e-6"),
}


def application(model: str, **kwargs):
    """``keras.applications.<model>(**kwargs)``, imported after the TensorFlow backend is pinned. Keras names
    the layers it is not given names for from a process-wide counter (InceptionV3's ``conv2d_281``), so the
    counter is reset first: every build of an entry (the model the AUTO twin is made from, the one it is paired
    with) carries the same layer names, which is what the transfer matches."""
    from tf_impl.backend import keras

    keras.backend.clear_session(free_memory=False)
    return getattr(keras.applications, model)(**kwargs)


def _tolerance(name: str) -> dict:
    if name not in TOLERANCES:
        return {}
    tolerance, reason = TOLERANCES[name]
    return {"tolerance": tolerance, "tolerance_reason": reason}


for _model, (_size, _top, _notop, _pixels) in MODELS.items():
    _common = dict(torch=AUTO, keras="parity.zoo.keras_applications:application", zoo=True,
                   input_range=PIXELS if _pixels else None)
    register(ModelSpec(
        name=f"keras.{_model}", description=f"keras.applications.{_model}, logits, and its automatic torch twin",
        input_shapes=((1, 3, _size, _size),), params=Counts(*_top, SOURCE), fixed_size=True,
        calibrate_batchnorm=_pixels, kwargs={"model": _model, "weights": None, "classifier_activation": None},
        **_common))
    _fixed = _model in FIXED_NOTOP
    register(ModelSpec(
        name=f"keras.{_model}.notop", input_shapes=(OTHER_SIZE,), params=Counts(*_notop, SOURCE),
        description=f"keras.applications.{_model}(include_top=False), "
                    f"{'built at 161x193: ' + FIXED_NOTOP[_model] if _fixed else 'free H, W'}",
        kwargs={"model": _model, "weights": None, "include_top": False,
                "input_shape": (*OTHER_SIZE[2:], 3) if _fixed else (None, None, 3)},
        fixed_size=_fixed, calibrate_batchnorm=_pixels or f"keras.{_model}.notop" in CALIBRATED, **_common,
        **_tolerance(f"keras.{_model}.notop")))
