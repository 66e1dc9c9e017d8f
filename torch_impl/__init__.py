"""PyTorch modules, each mirrored class for class by ``tf_impl``."""
