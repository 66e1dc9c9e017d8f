"""Deliberate faults for the tests: one tensor of one runtime changed, and put back after.

Each runtime is broken where it keeps its numbers: the torch twin's parameters, the Keras twin's variables,
and an initializer inside each ONNX file (in the file itself, or at its offset in the external data file of
the Keras export), after which the harness's onnxruntime session is reloaded from the file.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from parity.onnx_io import session


def conv_weight_initializer(path) -> str:
    """The weight initializer of the first Conv node of an ONNX file (torch's exporter names folded ones
    ``onnx::Conv_N``)."""
    model = onnx.load(str(path), load_external_data=False)
    return next(n.input[1] for n in model.graph.node if n.op_type == "Conv")


def perturb_initializer(path, name: str, change) -> None:
    """Replaces initializer ``name`` of the ONNX file at ``path`` by ``change(array)`` (same shape, dtype)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == name)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        data = path.parent / info["location"]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        with open(data, "r+b") as f:
            f.seek(int(info["offset"]))
            raw = np.frombuffer(f.read(int(info["length"])), dtype=dtype).reshape(tuple(tensor.dims))
            f.seek(int(info["offset"]))
            f.write(np.ascontiguousarray(change(raw.copy()), dtype=dtype).tobytes())
        return
    new = numpy_helper.from_array(np.ascontiguousarray(change(numpy_helper.to_array(tensor).copy())), name)
    tensor.CopyFrom(new)
    onnx.save(model, str(path))


@contextmanager
def onnx_fault(harness, runtime: str, name: str, change):
    """``harness``'s ONNX file of ``runtime`` with initializer ``name`` changed, its session reloaded; the
    file's bytes and the session are put back after."""
    path = Path(harness.paths[runtime])
    files = [path] + ([path.with_name(path.name + ".data")] if runtime == "onnx:keras" else [])
    saved = {f: f.read_bytes() for f in files}
    perturb_initializer(path, name, change)
    harness.sessions[runtime] = session(path)
    try:
        yield
    finally:
        for f, data in saved.items():
            f.write_bytes(data)
        harness.sessions[runtime] = session(path)


@contextmanager
def torch_fault(module, change):
    """``change(module)`` applied under ``no_grad``; every tensor of the state_dict put back after."""
    saved = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        change(module)
    try:
        yield
    finally:
        module.load_state_dict(saved)


@contextmanager
def keras_fault(variable, change):
    """Keras ``variable`` assigned ``change(value)``; its value put back after."""
    saved = np.array(variable.numpy())
    variable.assign(change(saved.copy()))
    try:
        yield
    finally:
        variable.assign(saved)


def one_nan(a: np.ndarray) -> np.ndarray:
    a.reshape(-1)[0] = np.nan
    return a


def huge(a: np.ndarray) -> np.ndarray:
    """1e38 times the tensor: a BatchNorm gamma (or the conv it was folded into) that overflows float32."""
    return (a * np.float32(1e38)).astype(a.dtype)
