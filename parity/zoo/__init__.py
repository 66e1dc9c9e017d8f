"""Every registered twin pair, one file per family: whole models and the blocks they are made of (a failing
block pinpoints a fault faster than a failing model). Registration order is listing order."""
from parity.zoo import aspp  # noqa: F401
from parity.zoo import vgg  # noqa: F401
from parity.zoo import resnet  # noqa: F401
