"""Tolerances of the training check, per float type, with the measurements they come from.

Three figures per step (relative errors; see :mod:`parity.training.steps` for what each is relative to):
the loss; the gradients (of the tensor's largest gradient); the optimizer steps and BatchNorm statistics (of
the tensor's step). Each must leave room for rounding and stay at least 10x below what every naive
translation of ``parity/test_train_traps.py`` gives; the smallest naive figures there (float64) are 4.7e-4
on the loss (BatchNorm eps 1e-3 for 1e-5), 1.3e-2 on the gradients (the same), 4.0e-2 on the statistics
(Keras's biased variance update) and 0.15 on the optimizer steps (Keras's AdamW).
"""
from parity.training.steps import Tolerances

TOLERANCES = {
    "float64": Tolerances(
        loss=1e-9, grad=1e-5, step=1e-6, stat=1e-6,
        reason="float64, measured over resnet50, fpn, aspp, vgg_stage and inception_v1_train: loss <= 5e-11, "
               "gradients <= 3.9e-7, optimizer steps <= 3.3e-13, statistics <= 2.2e-8. The 1e-7-level figures are "
               "all ASPP's pool branch: its bilinear upsample (tf.raw_ops.ResizeBilinear) returns float32 "
               "whatever its input, a float32 island amplified by the BatchNorm on its 1x1 map (2 values per "
               "channel at batch 2); elsewhere the twins agree to 1e-12"),
    "float32": Tolerances(
        loss=1e-5, grad=1e-4, step=1e-2, stat=1e-4,
        reason="float32, measured on blocks (resnet_conv_bn, resnet_bottleneck, aspp and vgg_stage at small "
               "width, inception_module) with every optimizer: loss <= 2.3e-7, gradients <= 7.4e-6, optimizer "
               "steps <= 2.9e-4, statistics <= 1.7e-5. A float32 weight holds 7 digits: a step of 1e-5 of the "
               "weight is known to ~1e-2, hence the loose step tolerance (a statistic moves by momentum * "
               "(batch - running), far above its rounding). Deep BatchNorm stacks fail them in "
               "training mode (ResNet-50: gradients 5.7e-2 apart at step 1, as far as torch float32 is from "
               "torch float64): check those in float64"),
}
