"""Keras 3 (TensorFlow backend) twins of the modules in ``torch_impl``.

Importing this package pins the Keras backend to TensorFlow before Keras is imported, so a user's
``KERAS_BACKEND`` cannot silently change what is compared.
"""
from tf_impl.backend import keras  # noqa: F401  (pins the backend first)
from tf_impl.layers import LocalResponseNorm, LocalResponseNormLayer  # noqa: F401,E402
