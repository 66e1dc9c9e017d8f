"""Article A: VGG19 (torchvision's layout) and its first conv stage as a block."""
from parity.registry import Counts, ModelSpec, register

TORCHVISION_VGG19 = "torchvision VGG19_Weights.IMAGENET1K_V1 num_params 143,667,240"

register(ModelSpec(
    name="vgg19",
    description="VGG19 (article A = torchvision vgg19): 16 conv 3x3 + ReLU, 5 max-pools, 3 Linear; 224x224 only",
    torch="torch_impl.vgg:vgg19", keras="tf_impl.vgg:vgg19",
    kwargs=dict(num_classes=1000, dropout=0.5), channels_arg="in_channels", fixed_size=True,
    input_shapes=((1, 3, 224, 224), (2, 3, 224, 224)),  # 574.7 MB of weights: two shapes keep the suite lean
    params=Counts(143_667_240, 0, f"article A (issue 3: 143,667,240, same as torchvision's vgg19); "
                                  f"{TORCHVISION_VGG19}; no BatchNorm, so no statistics"),
))
register(ModelSpec(
    name="vgg_stage",
    description="VGG19's first stage: conv 3x3 + ReLU twice (64 wide), MaxPool2d(2) (floors odd sizes)",
    torch="torch_impl.vgg:make_features", keras="tf_impl.vgg:make_features", kind="block",
    kwargs=dict(cfg=(64, 64, "M"), in_channels=3), channels_arg="in_channels",
    input_shapes=((1, 3, 224, 224), (2, 3, 97, 131), (1, 3, 3, 5)),
    params=Counts(38_720, 0, "torchvision vgg19 features.0 (1,792) + features.2 (36,928), 3*3*(3+64)*64 + 2*64"),
))
