"""Pins Keras 3 to the TensorFlow backend. Every module of ours imports keras and tensorflow from here, so the
pin is set before either is first imported (``import tensorflow`` can import keras itself)."""
import os
import sys

BACKEND = "tensorflow"

if "keras" in sys.modules:
    _loaded = sys.modules["keras"].backend.backend()
    if _loaded != BACKEND:
        raise RuntimeError(
            f"backbone-parity compares against Keras on the {BACKEND!r} backend, but Keras was already "
            f"imported with backend {_loaded!r}; import tf_impl/parity before keras, or unset KERAS_BACKEND"
        )
os.environ["KERAS_BACKEND"] = BACKEND
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up banner out of reports

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf", "BACKEND"]
