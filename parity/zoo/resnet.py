"""Article A, second half: ResNet-50 (article and torchvision), FPN (article and paper), the ResNet blocks."""
from parity.registry import Counts, ModelSpec, register

TORCHVISION = "torchvision's resnet50 (docs: num_params 25,557,032)"
RESNET50_STATS = 53_120  # 2 x 26,560 BatchNorm channels: stem 64 + stages 1,408 + 3,584 + 10,240 + 11,264
BACKBONE = 25_557_032 - (2048 * 1000 + 1000)  # resnet50 without fc: 23,508,032
LATERALS = sum(c * 256 + 256 for c in (256, 512, 1024, 2048))  # 1x1 convs with bias: 984,064
SMOOTH = 256 * 256 * 9 + 256  # one 3x3 conv with bias: 590,080

# 97x131 runs both heads: its final map is 4x5 (each stride-2 step maps s to ceil(s / 2)), which the
# article's AvgPool2d(4) turns into 1x1 as at 224; the odd sizes exercise padding and the FPN's resizes.
_RESNET_SHAPES = ((1, 3, 224, 224), (2, 3, 97, 131))

register(ModelSpec(
    name="resnet50_blog",
    description="article A's ResNet_50: no stem ReLU, AvgPool2d(4), Linear(2048, 1000); article's keys",
    torch="torch_impl.resnet:resnet50_blog", keras="tf_impl.resnet:resnet50_blog",
    kwargs=dict(class_num=1000), input_shapes=_RESNET_SHAPES,
    params=Counts(25_557_032, RESNET50_STATS, "issue 3 (article A's layer list decoded): 25,557,032 parameters "
                                              "+ 53,120 BatchNorm statistics, the same as torchvision's resnet50"),
))
register(ModelSpec(
    name="resnet50",
    description="torchvision's resnet50: stem ReLU, global average pool, fc; torchvision's state_dict keys",
    torch="torch_impl.resnet:resnet50", keras="tf_impl.resnet:resnet50",
    kwargs=dict(num_classes=1000), input_shapes=_RESNET_SHAPES,
    params=Counts(25_557_032, RESNET50_STATS, f"{TORCHVISION}; statistics: 2 x its 26,560 BatchNorm channels"),
))
register(ModelSpec(
    name="fpn_blog",
    description="article A's FPN on resnet50: one shared 3x3 conv, bilinear align_corners=True; P2..P5",
    torch="torch_impl.fpn:fpn_blog", keras="tf_impl.fpn:fpn_blog",
    kwargs=dict(out_channels=256), input_shapes=_RESNET_SHAPES,
    params=Counts(BACKBONE + LATERALS + SMOOTH, RESNET50_STATS,
                  "derived: torchvision resnet50 25,557,032 - fc 2,049,000 = 23,508,032, + laterals 984,064 "
                  "(1x1 with bias, 256/512/1024/2048 -> 256) + one 3x3 256->256 with bias 590,080 = 25,082,176; "
                  "the article's own FPN().parameters() counts only 1,574,144 (backbone in globals)"),
))
register(ModelSpec(
    name="fpn",
    description="FPN paper on resnet50: one 3x3 conv per level, nearest upsampling (torch's index); P2..P5",
    torch="torch_impl.fpn:fpn", keras="tf_impl.fpn:fpn",
    kwargs=dict(out_channels=256), input_shapes=_RESNET_SHAPES,
    params=Counts(BACKBONE + LATERALS + 4 * SMOOTH, RESNET50_STATS,
                  "derived: backbone 23,508,032 + laterals 984,064 + four 3x3 256->256 with bias 4 x 590,080 "
                  "= 26,852,416"),
))
register(ModelSpec(
    name="resnet_conv_bn",
    description="article A's ResNet BasicConv2d (conv + BN, no ReLU) as its stem: 7x7 stride 2 padding 3",
    torch="torch_impl.resnet:ConvBN", keras="tf_impl.resnet:ConvBN", kind="block",
    kwargs=dict(in_channel=3, out_channel=64, kernel_size=7, stride=2, padding=3), channels_arg="in_channel",
    input_shapes=((1, 3, 64, 64), (2, 3, 33, 47)),
    params=Counts(9_536, 128, "article A's stem BasicConv2d(3, 64, 7, stride=2, padding=3): conv 3*64*7*7 = "
                              "9,408 + BN 2*64; statistics 2*64"),
))
register(ModelSpec(
    name="resnet_bottleneck",
    description="article A's Bottleneck(256, 128, 512, stride=2) (block2[0]): stride-2 3x3, ConvBN shortcut",
    torch="torch_impl.resnet:Bottleneck", keras="tf_impl.resnet:Bottleneck", kind="block",
    kwargs=dict(in_channel=256, mid_channel=128, out_channel=512, stride=2), channels_arg="in_channel",
    input_shapes=((1, 256, 28, 28), (2, 256, 13, 17)),
    params=Counts(379_392, 2_560, "torchvision resnet50 layer2.0 shapes: convs 256*128 + 128*128*9 + 128*512 + "
                                  "downsample 256*512 = 376,832, + BN affine 2*(128+128+512+512) = 2,560; "
                                  "statistics 2,560"),
))
