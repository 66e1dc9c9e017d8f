"""Article A: VGG19 (torchvision's layout) and its first conv stage as a block."""
from parity.registry import Counts, ModelSpec, register

TORCHVISION_VGG19 = "torchvision VGG19_Weights.IMAGENET1K_V1 num_params 143,667,240"

KERAS_APPLICATIONS_VGG19 = {  # keras.applications.VGG19 layer -> our twin's (torchvision's) module path
    "block1_conv1": "features.0", "block1_conv2": "features.2",
    "block2_conv1": "features.5", "block2_conv2": "features.7",
    "block3_conv1": "features.10", "block3_conv2": "features.12", "block3_conv3": "features.14",
    "block3_conv4": "features.16",
    "block4_conv1": "features.19", "block4_conv2": "features.21", "block4_conv3": "features.23",
    "block4_conv4": "features.25",
    "block5_conv1": "features.28", "block5_conv2": "features.30", "block5_conv3": "features.32",
    "block5_conv4": "features.34",
    "fc1": "classifier.0", "fc2": "classifier.3", "predictions": "classifier.6",  # fc1 reads an H, W, C flatten
}

register(ModelSpec(
    name="vgg19",
    description="VGG19 (article A = torchvision vgg19): 16 conv 3x3 + ReLU, 5 max-pools, 3 Linear; 224x224 only",
    torch="torch_impl.vgg:vgg19", keras="tf_impl.vgg:vgg19",
    kwargs=dict(num_classes=1000, dropout=0.5), channels_arg="in_channels", fixed_size=True,
    input_shapes=((1, 3, 224, 224), (2, 3, 224, 224)),  # 574.7 MB of weights: two shapes keep the suite lean
    params=Counts(143_667_240, 0, f"article A (issue 3: 143,667,240, same as torchvision's vgg19); "
                                  f"{TORCHVISION_VGG19}; no BatchNorm, so no statistics"),
    foreign_names={"keras.applications.VGG19": KERAS_APPLICATIONS_VGG19},
))
register(ModelSpec(
    name="vgg_stage",
    description="VGG19's first stage: conv 3x3 + ReLU twice (64 wide), MaxPool2d(2) (floors odd sizes)",
    torch="torch_impl.vgg:make_features", keras="tf_impl.vgg:make_features", kind="block",
    kwargs=dict(cfg=(64, 64, "M"), in_channels=3), channels_arg="in_channels",
    input_shapes=((1, 3, 224, 224), (2, 3, 97, 131), (1, 3, 3, 5)),
    params=Counts(38_720, 0, "torchvision vgg19 features.0 (1,792) + features.2 (36,928), 3*3*(3+64)*64 + 2*64"),
))
