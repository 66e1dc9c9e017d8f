"""Article B: the YOLOv4 ASPP neck and its blocks."""
from parity.registry import Counts, ModelSpec, register

ARTICLE_B = "article B, model.summary() of the Keras ASPP"

# --- article B: ASPP --------------------------------------------------------------------------------------
_ASPP_SHAPES = ((1, 1024, 13, 13), (3, 1024, 13, 13), (1, 1024, 1, 1), (3, 1024, 1, 1), (1, 1024, 7, 11),
                (3, 1024, 7, 11))

register(ModelSpec(
    name="aspp",
    description="YOLOv4 ASPP neck (article B): 1x1, three separable dilated 3x3 (rates 1, 3, 5), global pool",
    torch="torch_impl.aspp:ASPP", keras="tf_impl.aspp:ASPP",
    kwargs=dict(in_channels=1024, filters=512, rates=(1, 3, 5), dropout=0.1), channels_arg="in_channels",
    input_shapes=_ASPP_SHAPES,
    params=Counts(3_972_096, 12_288, f"{ARTICLE_B}: total 3,984,384 = 3,972,096 trainable + 12,288 non-trainable"),
))
register(ModelSpec(
    name="aspp_separable_block",
    description="ASPP branch: depthwise 3x3 dilated (rate 3) + BN + ReLU, pointwise 1x1 + BN + ReLU",
    torch="torch_impl.aspp:SeparableBlock", keras="tf_impl.aspp:SeparableBlock", kind="block",
    kwargs=dict(in_channels=1024, filters=512, rate=3), channels_arg="in_channels",
    input_shapes=((1, 1024, 13, 13), (3, 1024, 7, 11), (1, 1024, 1, 1)),
    params=Counts(536_576, 3_072, f"{ARTICLE_B}: rows depthwise_conv2d_1 9,216 + batch_normalization_3 "
                                  "4,096 + conv2d_2 524,288 + batch_normalization_4 2,048 (half of each BN "
                                  "row is moving statistics)"),
))
register(ModelSpec(
    name="aspp_conv_bn_relu",
    description="ASPP 1x1 branch: conv 1x1 (no bias) + BN (eps 1e-3) + ReLU",
    torch="torch_impl.aspp:ConvBNReLU", keras="tf_impl.aspp:ConvBNReLU", kind="block",
    kwargs=dict(in_channels=1024, out_channels=512, kernel_size=1), channels_arg="in_channels",
    input_shapes=((1, 1024, 13, 13), (3, 1024, 7, 11)),
    params=Counts(525_312, 1_024, f"{ARTICLE_B}: rows conv2d 524,288 + batch_normalization 2,048"),
))
