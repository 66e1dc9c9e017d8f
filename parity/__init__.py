"""backbone-parity: move a convolutional network between PyTorch and Keras 3 and prove the move is exact.

Public API::

    parity.names()                                   registry names
    parity.build(name, "torch" | "keras", **kw)      nn.Module (eval) or keras.Model; input_size=(H, W) for Keras
    parity.transfer(src, dst)                        copy every weight; raises TransferError
    parity.check(name, input_shape=None, onnx=True, seed=0, **kw) -> CheckReport
    parity.export_onnx(model, path, input_shape=None) -> Path
    parity.port(name, src, dst) -> PortReport        checkpoint torch <-> Keras, verified before writing
    parity.twin(model, input_shape=None)             the automatic twin of a torch module or a Keras model
    parity.summary(name, framework="both") -> (text, ok)   per-layer tables, side by side, ONNX counts
    parity.train_check(name, optimizer="sgd", steps=3, seed=0, **options) -> TrainReport
                                                     K training steps in both frameworks, compared after each
    parity.register(ModelSpec(...))                  add an entry (or use the backbone_parity.zoo entry points)

Importing this package imports neither torch nor TensorFlow: the heavy modules load on first use, so
``parity list`` stays fast. The first of them to load pins Keras to the TensorFlow backend
(``tf_impl.backend``), whatever ``KERAS_BACKEND`` says.
"""
from importlib import import_module

from parity.errors import (CheckpointError, ExportError, InputShapeError, InvalidArgumentError, OnnxFileError,
                           ParityError, TransferError, UnknownModelError, UnsupportedOpError, VerificationError)
from parity.registry import AUTO, Counts, ModelSpec, build, get, names, register

_LAZY = {
    "transfer": "parity.weight_transfer", "TransferReport": "parity.weight_transfer",
    "check": "parity.engine", "CheckReport": "parity.engine", "Harness": "parity.engine",
    "export_onnx": "parity.onnx_io",
    "port": "parity.porting", "PortReport": "parity.porting",  # module not named port: it would shadow the function
    "twin": "parity.convert",
    "summary": "parity.summaries",  # module not named summary: importing it would shadow the function
    "train_check": "parity.training", "TrainReport": "parity.training",
}

__all__ = ["names", "get", "build", "register", "ModelSpec", "Counts", "AUTO", "ParityError", "UnknownModelError",
           "InputShapeError", "InvalidArgumentError", "TransferError", "OnnxFileError", "CheckpointError",
           "VerificationError", "UnsupportedOpError", "ExportError", *_LAZY]


def __getattr__(attr):
    if attr in _LAZY:
        return getattr(import_module(_LAZY[attr]), attr)
    raise AttributeError(f"module 'parity' has no attribute {attr!r}")
