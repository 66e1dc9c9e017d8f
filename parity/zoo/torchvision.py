"""torchvision's classification zoo and three segmentation models, each paired with its automatic Keras twin
(``keras=AUTO``: ``parity.twin``), built with ``weights=None``.

Counts: ``trainable`` is torchvision 0.28's published ``num_params`` (the ``meta["num_params"]`` of the
model's default weights enum, e.g. ``ResNet18_Weights.IMAGENET1K_V1``), less the auxiliary head where we
build without it; ``statistics`` is 2 x the BatchNorm channels of torchvision's definition (a running mean
and a running variance per channel), summed over its ``BatchNorm2d`` layers. fcn_resnet50 and
deeplabv3_resnet50 are built with ``aux_loss=True``: their published figure counts the auxiliary
classifier, and the model then returns a dict of two outputs (``out``, ``aux``).

Shapes: 224 x 224 (inception_v3: its native 299) and 97 x 131 at batch 2, an odd size every model here
accepts (the smallest map is then 4 x 5, or 1 x 2 for inception_v3 before its global pool); AlexNet and the
VGGs: 225 x 231 (see ``FIXED_POOL``).

Every entry is marked ``zoo``: heavy, run with ``pytest -m zoo parity/`` (``pytest parity/ tests/`` skips
them), and left out of a bare ``parity check`` (name them: ``parity check resnet18``). Entries are
registered only when torchvision is installed (a test extra); ``calibrate``: see
:mod:`parity.randomize` (random BatchNorm statistics let activations grow with depth until float32 itself
differs from float64 by more than the tolerance).
"""
from importlib.util import find_spec

from parity.registry import AUTO, Counts, ModelSpec, register

TV = "torchvision 0.28"
ODD = (2, 3, 97, 131)
SHAPES = ((1, 3, 224, 224), ODD)
SEGMENTATION = dict(weights=None, weights_backbone=None)


def _stats(channels: int, layers: int) -> str:
    return f"statistics 2 x {channels:,} BatchNorm channels ({layers} BatchNorm2d layers)"


# name: (builder, extra kwargs, published num_params as written by torchvision, trainable, BN channels, BN layers)
MODELS = {
    "alexnet": ("torchvision.models:alexnet", {}, "AlexNet_Weights.IMAGENET1K_V1 61,100,840", 61_100_840, 0, 0),
    "vgg11": ("torchvision.models:vgg11", {}, "VGG11_Weights.IMAGENET1K_V1 132,863,336", 132_863_336, 0, 0),
    "vgg16_bn": ("torchvision.models:vgg16_bn", {}, "VGG16_BN_Weights.IMAGENET1K_V1 138,365,992", 138_365_992,
                 4_224, 13),
    "vgg19_tv": ("torchvision.models:vgg19", {}, "VGG19_Weights.IMAGENET1K_V1 143,667,240", 143_667_240, 0, 0),
    "resnet18": ("torchvision.models:resnet18", {}, "ResNet18_Weights.IMAGENET1K_V1 11,689,512", 11_689_512,
                 4_800, 20),
    "resnet34": ("torchvision.models:resnet34", {}, "ResNet34_Weights.IMAGENET1K_V1 21,797,672", 21_797_672,
                 8_512, 36),
    "resnet50_tv": ("torchvision.models:resnet50", {}, "ResNet50_Weights.IMAGENET1K_V2 25,557,032", 25_557_032,
                    26_560, 53),
    "resnet101": ("torchvision.models:resnet101", {}, "ResNet101_Weights.IMAGENET1K_V2 44,549,160", 44_549_160,
                  52_672, 104),
    "resnext50_32x4d": ("torchvision.models:resnext50_32x4d", {}, "ResNeXt50_32X4D_Weights.IMAGENET1K_V2 "
                        "25,028,904", 25_028_904, 34_112, 53),
    "wide_resnet50_2": ("torchvision.models:wide_resnet50_2", {}, "Wide_ResNet50_2_Weights.IMAGENET1K_V2 "
                        "68,883,240", 68_883_240, 34_112, 53),
    "googlenet": ("torchvision.models:googlenet", dict(aux_logits=False, init_weights=False),
                  "GoogLeNet_Weights.IMAGENET1K_V1 6,624,904 (its aux heads are dropped, as here)", 6_624_904,
                  7_280, 57),
    "inception_v3": ("torchvision.models:inception_v3", dict(aux_logits=False, init_weights=False),
                     "Inception_V3_Weights.IMAGENET1K_V1 27,161,264 with AuxLogits, less AuxLogits 3,326,696 "
                     "(convs 768*128 + 128*768*25, BN 2*(128+768), fc 768*1000 + 1000)", 23_834_568, 17_216, 94),
    "densenet121": ("torchvision.models:densenet121", {}, "DenseNet121_Weights.IMAGENET1K_V1 7,978,856",
                    7_978_856, 41_824, 121),
    "squeezenet1_0": ("torchvision.models:squeezenet1_0", {}, "SqueezeNet1_0_Weights.IMAGENET1K_V1 1,248,424",
                      1_248_424, 0, 0),
    "squeezenet1_1": ("torchvision.models:squeezenet1_1", {}, "SqueezeNet1_1_Weights.IMAGENET1K_V1 1,235,496",
                      1_235_496, 0, 0),
    "mobilenet_v2": ("torchvision.models:mobilenet_v2", {}, "MobileNet_V2_Weights.IMAGENET1K_V2 3,504,872",
                     3_504_872, 17_056, 52),
    "mobilenet_v3_small": ("torchvision.models:mobilenet_v3_small", {}, "MobileNet_V3_Small_Weights.IMAGENET1K_V1 "
                           "2,542,856", 2_542_856, 6_056, 34),
    "mobilenet_v3_large": ("torchvision.models:mobilenet_v3_large", {}, "MobileNet_V3_Large_Weights.IMAGENET1K_V2 "
                           "5,483,032", 5_483_032, 12_200, 46),
    "mnasnet0_5": ("torchvision.models:mnasnet0_5", {}, "MNASNet0_5_Weights.IMAGENET1K_V1 2,218,512", 2_218_512,
                   10_312, 52),
    "shufflenet_v2_x1_0": ("torchvision.models:shufflenet_v2_x1_0", {}, "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1 "
                           "2,278,604", 2_278_604, 8_090, 56),
    "efficientnet_b0": ("torchvision.models:efficientnet_b0", {}, "EfficientNet_B0_Weights.IMAGENET1K_V1 "
                        "5,288,548", 5_288_548, 21_008, 49),
    "efficientnet_v2_s": ("torchvision.models:efficientnet_v2_s", {}, "EfficientNet_V2_S_Weights.IMAGENET1K_V1 "
                          "21,458,488", 21_458_488, 76_936, 110),
    "regnet_x_400mf": ("torchvision.models:regnet_x_400mf", {}, "RegNet_X_400MF_Weights.IMAGENET1K_V2 5,495,976",
                       5_495_976, 18_928, 71),
    "regnet_y_400mf": ("torchvision.models:regnet_y_400mf", {}, "RegNet_Y_400MF_Weights.IMAGENET1K_V2 4,344,144",
                       4_344_144, 13_576, 53),
    "convnext_tiny": ("torchvision.models:convnext_tiny", {}, "ConvNeXt_Tiny_Weights.IMAGENET1K_V1 28,589,128 "
                      "(LayerNorm, no statistics)", 28_589_128, 0, 0),
    "fcn_resnet50": ("torchvision.models.segmentation:fcn_resnet50", dict(SEGMENTATION, aux_loss=True),
                     "FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 35,322,218 (aux classifier included)",
                     35_322_218, 27_328, 55),
    "deeplabv3_resnet50": ("torchvision.models.segmentation:deeplabv3_resnet50", dict(SEGMENTATION, aux_loss=True),
                           "DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 42,004,074 (aux classifier "
                           "included)", 42_004_074, 28_608, 61),
    "lraspp_mobilenet_v3_large": ("torchvision.models.segmentation:lraspp_mobilenet_v3_large", SEGMENTATION,
                                  "LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1 3,221,538", 3_221_538,
                                  12_328, 47),
}


# Squeeze-excitation gates (a sigmoid of a pooled activation that no BatchNorm scales) saturate once random
# statistics let activations grow, and float32 rounding then shows at 1e-5 or more (torch float32 against
# float64: 1.2e-3 on lraspp_mobilenet_v3_large; the twin: 3.3e-5 on mobilenet_v3_large, 2.6e-5 on
# regnet_y_400mf): these get calibrated statistics (``parity.randomize``). The others keep fully random ones:
# calibrated, deep plain stacks become chaotic (fcn_resnet50's twin: 2.1e-5, against 4.2e-6 uncalibrated).
CALIBRATED = {"mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf",
              "lraspp_mobilenet_v3_large"}


# torch's ONNX exporter writes AdaptiveAvgPool2d((7, 7)) (AlexNet's (6, 6)) only at a fixed input size where
# the map is a multiple of the output ("output size that are not factor of input size" otherwise): at 97 x 131
# the map is 3 x 4 (AlexNet 2 x 3), so these check the odd size 225 x 231 (map 7 x 7, 6 x 6)
ODD_ADAPTIVE = (2, 3, 225, 231)
FIXED_POOL = {"alexnet", "vgg11", "vgg16_bn", "vgg19_tv"}


# efficientnet_v2_s is the one model whose float32 rounding, over its 170 layers, passes 1e-5 between runtimes:
# TensorFlow's float32 sums round 3-4x more than torch's (a 256-term 1 x 1 conv against float64: 3.4e-7 to
# 5.5e-7, torch 1.1e-7 to 1.7e-7), and its error grows layer after layer to 1.2e-5 of float64 at the logits
# (torch: 3.9e-6). Measured (calibrated on 4 images, 224 x 224 and 97 x 131): torch ~ keras 7.5e-6, torch ~
# onnx:torch 4.1e-6, torch ~ onnx:keras 3.4e-6, keras ~ onnx:torch 1.05e-5, keras ~ onnx:keras 9.0e-6.
TOLERANCES = {"efficientnet_v2_s": (2e-5, "float32 rounding over 170 layers, TensorFlow's sums 3-4x torch's: "
                                          "keras ~ onnx:torch measured 1.05e-5, every pair without the Keras "
                                          "runtime <= 4.1e-6 (see parity/zoo/torchvision.py)")}


def _register_all() -> None:
    for name, (builder, kwargs, published, trainable, channels, layers) in MODELS.items():
        shapes = (((1, 3, 299, 299), ODD) if name == "inception_v3" else
                  ((1, 3, 224, 224), ODD_ADAPTIVE) if name in FIXED_POOL else SHAPES)
        what = builder.split(":")[1]
        register(ModelSpec(
            name=name,
            description=f"torchvision's {what}" + (f" ({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
                                                   if kwargs else " (weights=None)") + ", automatic Keras twin",
            torch=builder, keras=AUTO, kwargs={"weights": None, **kwargs}, input_shapes=shapes,
            params=Counts(trainable, 2 * channels, f"{TV} {published}; " + (_stats(channels, layers) if layers
                                                                            else "no BatchNorm")),
            calibrate_batchnorm=name in CALIBRATED, zoo=True,
            **dict(zip(("tolerance", "tolerance_reason"), TOLERANCES[name])) if name in TOLERANCES else {},
        ))


if find_spec("torchvision") is not None:  # a test extra: without it the zoo is simply not there
    _register_all()
