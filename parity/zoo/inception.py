"""Article A's Inception section: Inception v1 as the article writes it and as the paper does, each in the
"test" and the "train" state (three outputs), their blocks, LocalResponseNorm, and the Inception v2 modules.

Counts are sums by layer of the twins' definitions; each source string writes the sum out. A conv k x k
from a to b channels with bias holds ``a*b*k*k + b``; an Inception row (in, a, b_r, b, c_r, c, d) holds
``in*(a + b_r + c_r + d) + 9*b_r*b + 25*c_r*c + (a + b_r + b + c_r + c + d)``.
"""
from parity.registry import Counts, ModelSpec, register

_INCEPTIONS = ("Inception modules 3a 163,696 + 3b 388,736 + 4a 376,176 + 4b 449,160 + 4c 510,104 + 4d 605,376 "
               "+ 4e 868,352 + 5a 1,043,456 + 5b 1,444,080 = 5,849,136")
_STEM = "stem convs 7x7 3->64 9,472 + 1x1 64->64 4,160 + 3x3 64->192 110,784 = 124,416"
_AUX = ("aux heads (1x1 conv 128 with bias, FC 2048->1024, FC 1024->1000): on 512 channels 65,664 + "
        "2,098,176 + 1,025,000 = 3,188,840, on 528 channels 67,712 + 2,098,176 + 1,025,000 = 3,190,888")
_BLOG_TEST = f"{_STEM}; {_INCEPTIONS}; Linear(4096, 1000) 4,097,000; total 10,070,552, the article's figure"
_PAPER_TEST = (f"{_STEM}; {_INCEPTIONS}; Linear(1024, 1000) 1,025,000; total 6,998,552 (= the blog's "
               "10,070,552 - 3,072 x 1,000 for the smaller classifier; the paper's Table 1 column sums to "
               "~6.8M: weights only, and it lists the first conv as 2.7K where 7x7x3x64 = 9,408)")

# one batch-2 shape per model: Flatten -> Linear pins H, W in Keras (97-128 px fit the blog, 193-224 px the
# paper); test_inception.py checks odd sizes there
_BLOG_SHAPES = ((2, 3, 128, 128),)
_PAPER_SHAPES = ((2, 3, 224, 224),)

# --- models -----------------------------------------------------------------------------------------------
register(ModelSpec(
    name="inception_v1_blog",
    description="Inception v1 as article A's code writes it: LRN(64), 4e after the 4th pool, Linear(4096), 128 px",
    torch="torch_impl.inception:inception_v1_blog", keras="tf_impl.inception:inception_v1_blog",
    input_shapes=_BLOG_SHAPES, fixed_size=True, params=Counts(10_070_552, 0, _BLOG_TEST),
))
register(ModelSpec(
    name="inception_v1_blog_train",
    description="inception_v1_blog in the 'train' state: (aux1, aux2, out), aux heads pooled 8x8 -> 4x4",
    torch="torch_impl.inception:inception_v1_blog", keras="tf_impl.inception:inception_v1_blog",
    kwargs=dict(state="train"), input_shapes=_BLOG_SHAPES, fixed_size=True,
    params=Counts(16_450_280, 0, f"{_BLOG_TEST}; {_AUX}; total 10,070,552 + 6,379,728 = 16,450,280"),
))
register(ModelSpec(
    name="inception_v1",
    description="GoogLeNet (Szegedy et al. 2014) at 224 px: LRN(5), pool after 4e, 7x7 avg pool, Dropout 0.4",
    torch="torch_impl.inception:inception_v1", keras="tf_impl.inception:inception_v1",
    input_shapes=_PAPER_SHAPES, fixed_size=True, params=Counts(6_998_552, 0, _PAPER_TEST),
))
register(ModelSpec(
    name="inception_v1_train",
    description="inception_v1 in the 'train' state: (aux1, aux2, out), aux heads 5x5/3 avg pool on 14x14",
    torch="torch_impl.inception:inception_v1", keras="tf_impl.inception:inception_v1",
    kwargs=dict(state="train"), input_shapes=_PAPER_SHAPES, fixed_size=True,
    params=Counts(13_378_280, 0, f"{_PAPER_TEST}; {_AUX}; total 6,998,552 + 6,379,728 = 13,378,280"),
))

# --- blocks -----------------------------------------------------------------------------------------------
register(ModelSpec(
    name="inception_basic_conv2d",
    description="Inception's BasicConv2d (conv with bias + ReLU): the stem's 7x7/2, padding 3",
    torch="torch_impl.inception:BasicConv2d", keras="tf_impl.inception:BasicConv2d", kind="block",
    kwargs=dict(in_channels=3, out_channels=64, kernel_size=7, stride=2, padding=3), channels_arg="in_channels",
    input_shapes=((1, 3, 32, 32), (2, 3, 17, 23)),
    params=Counts(9_472, 0, "3*64*7*7 + 64 = 9,472"),
))
register(ModelSpec(
    name="inception_module",
    description="Inception module 3a (192 -> 64 + 128 + 32 + 32 = 256 channels)",
    torch="torch_impl.inception:Inception", keras="tf_impl.inception:Inception", kind="block",
    kwargs=dict(in_channels=192, out_1x1=64, out_3x3_reduce=96, out_3x3=128, out_5x5_reduce=16, out_5x5=32,
                out_pool=32), channels_arg="in_channels",
    input_shapes=((1, 192, 28, 28), (2, 192, 9, 11)),
    params=Counts(163_696, 0, "192*(64+96+16+32) + 9*96*128 + 25*16*32 + (64+96+128+16+32+32) = 163,696"),
))
register(ModelSpec(
    name="inception_aux",
    description="auxiliary classifier on 4a's 14x14x512 map: 5x5/3 avg pool, 1x1 conv 128, FC 1024, FC 1000",
    torch="torch_impl.inception:InceptionAux", keras="tf_impl.inception:InceptionAux", kind="block",
    kwargs=dict(in_channels=512, num_classes=1000, pool=(5, 3)), channels_arg="in_channels", fixed_size=True,
    input_shapes=((1, 512, 14, 14), (3, 512, 14, 14)),
    params=Counts(3_188_840, 0, "512*128 + 128 + 2048*1024 + 1024 + 1024*1000 + 1000 = 3,188,840"),
))
# LRN entries use alpha = size (alpha / size = 1). With torch's default alpha 1e-4, LRN(64) on 192 unit-normal
# channels is 9.3e-5 from the identity, and ONNX's window (one channel later) is 9.6e-6 from torch's: it
# would pass the 1e-5 tolerance. With alpha = size a one-channel shift shows at 1e-2 or more (test_lrn.py).
register(ModelSpec(
    name="lrn_64",
    description="LocalResponseNorm(64), the article's even window, on 192 channels, alpha = size",
    torch="torch.nn:LocalResponseNorm", keras="tf_impl.layers:LocalResponseNorm", kind="block",
    kwargs=dict(size=64, alpha=64.0, beta=0.75, k=1.0),
    input_shapes=((1, 192, 7, 9), (2, 192, 1, 1)),
    params=Counts(0, 0, "no weights"),
))
register(ModelSpec(
    name="lrn_5",
    description="LocalResponseNorm(5), the paper's odd window, on 64 channels, alpha = size",
    torch="torch.nn:LocalResponseNorm", keras="tf_impl.layers:LocalResponseNorm", kind="block",
    kwargs=dict(size=5, alpha=5.0, beta=0.75, k=1.0),
    input_shapes=((1, 64, 7, 9), (2, 64, 5, 5)),
    params=Counts(0, 0, "no weights"),
))
register(ModelSpec(
    name="inception_v2_stacked3x3",
    description="Inception v2 module, 5x5 as two 3x3, conv+BN+ReLU (BN-Inception's 3a widths)",
    torch="torch_impl.inception_v2:InceptionStacked3x3", keras="tf_impl.inception_v2:InceptionStacked3x3",
    kind="block", channels_arg="in_channels",
    kwargs=dict(in_channels=192, out_1x1=64, out_3x3_reduce=64, out_3x3=64, out_double_reduce=64, out_double=96,
                out_pool=32),
    input_shapes=((1, 192, 28, 28), (2, 192, 9, 11)),
    params=Counts(219_072, 960, "convs 192*64 + 192*64 + 9*64*64 + 192*64 + 9*64*96 + 9*96*96 + 192*32 = "
                                "218,112; BN gamma + beta 2*(64+64+64+64+96+96+32) = 960; running mean + var 960"),
))
register(ModelSpec(
    name="inception_v2_factorized7",
    description="Inception v2 module, n x n as 1xn then nx1 (n = 7, padding (0, 3) then (3, 0)), conv+BN+ReLU",
    torch="torch_impl.inception_v2:InceptionFactorized", keras="tf_impl.inception_v2:InceptionFactorized",
    kind="block", channels_arg="in_channels",
    kwargs=dict(in_channels=192, out_1x1=64, out_nxn_reduce=48, out_nxn=64, out_double_reduce=48, out_double=64,
                out_pool=64, n=7),
    input_shapes=((1, 192, 17, 17), (2, 192, 9, 11)),
    params=Counts(151_616, 1_088, "convs 192*64 + 192*48 + 7*48*48 + 7*48*64 + 192*48 + 3*7*48*48 + 7*48*64 "
                                  "+ 192*64 = 150,528; BN gamma + beta 2*544 = 1,088; running mean + var 1,088"),
))
