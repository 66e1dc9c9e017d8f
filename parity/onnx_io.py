"""ONNX export of torch modules and Keras models, and loading the files back into onnxruntime.

Layouts: a torch export reads NCHW, a Keras export NHWC, each as its framework does. Both take any batch
size and, where the model allows it, any H and W. Inputs are named ``input``, outputs ``output_0``,
``output_1``, ... in the model's output order.

- torch: ``torch.onnx.export(dynamo=False)``. Measured here on ResNet-50: 1.0 s and 0.84 GB against 10 s
  for the dynamo exporter. In eval mode it folds each BatchNorm that follows a conv into that conv.
- Keras: ``model.export(format="onnx")`` freezes every weight into a graph constant and tf2onnx then copies
  the whole graph before each optimizer pass (ResNet-50: 6.4 GB peak; VGG19 ran out of 24 GB). Instead we
  trace ``model.stateless_call`` with the weights as function *inputs*, convert that small graph, and turn
  the weight inputs into initializers whose bytes go straight from each variable to one external-data
  file (``<name>.data`` beside the model). Nothing is folded: the file holds every Keras weight.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.utils.dlpack import from_dlpack

from parity.errors import OnnxFileError
from tf_impl.backend import keras, tf

OPSET = 17  # supported by torch's exporter, tf2onnx 1.17 and onnxruntime alike


def export_onnx(model, path, input_shape=None, opset: int = OPSET) -> Path:
    """Exports a torch module (``input_shape`` (N, C, H, W) needed for its trace) or a Keras model to
    ``path`` and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise ValueError("exporting a torch module needs input_shape (N, C, H, W) for its trace; got None")
        return _export_torch(model, path, tuple(input_shape), opset)
    if isinstance(model, keras.Model):
        return _export_keras(model, path, opset)
    raise TypeError(f"export_onnx expects a torch.nn.Module or a keras.Model, got {type(model).__name__}")


def _export_torch(module: nn.Module, path: Path, input_shape: tuple, opset: int, free_hw: bool = True) -> Path:
    """torch's export with free batch, H and W; a model the exporter cannot export with free H and W
    (``AdaptiveAvgPool2d((7, 7))``: "input size not accessible", so torchvision's AlexNet and VGGs) is exported
    at ``input_shape``'s H and W (its file then has static spatial dims; the engine exports it per shape)."""
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C, H, W), got {input_shape}")
    x = torch.randn(input_shape)
    with torch.no_grad():
        outputs = module(x)
    outputs = list(outputs.values()) if isinstance(outputs, dict) else outputs  # a dict exports its values
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    names = [f"output_{i}" for i in range(len(outputs))]
    dynamic = {"input": {0: "N", 2: "H", 3: "W"} if free_hw else {0: "N"}}
    for i, (name, out) in enumerate(zip(names, outputs)):
        dynamic[name] = {0: "N", 2: f"H{i}", 3: f"W{i}"} if out.dim() == 4 and free_hw else {0: "N"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=names, dynamic_axes=dynamic, do_constant_folding=True)
    except torch.onnx.errors.SymbolicValueError as exc:
        if not free_hw or "input size not accessible" not in str(exc):
            raise
        return _export_torch(module, path, input_shape, opset, free_hw=False)
    return path


def static_hw(model: onnx.ModelProto):
    """The input's (H, W) when the file fixes them (an export that could not leave them free), else None."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[2].dim_param or dims[3].dim_param:
        return None
    return dims[2].dim_value, dims[3].dim_value


def _export_keras(model, path: Path, opset: int) -> Path:
    import tf2onnx

    trainable, frozen = list(model.trainable_variables), list(model.non_trainable_variables)
    variables = trainable + frozen
    specs = [tf.TensorSpec(v.shape, v.dtype, name=f"w{i}") for i, v in enumerate(variables)]
    specs.append(tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype, name="input"))
    n = len(trainable)

    @tf.function(input_signature=specs)
    def forward(*args):
        outputs, _ = model.stateless_call(list(args[:n]), list(args[n:-1]), args[-1], training=False)
        return outputs

    proto = _convert_without_deep_copies(tf2onnx, forward, specs, opset)
    graph = proto.graph
    for i, out in enumerate(graph.output):
        graph.node.append(onnx.helper.make_node("Identity", [out.name], [f"output_{i}"]))
        out.name = f"output_{i}"
    _inputs_to_external_initializers(graph, {f"w{i}": v for i, v in enumerate(variables)}, path)
    onnx.save(proto, str(path))
    return path


def _convert_without_deep_copies(tf2onnx, forward, specs, opset):
    """tf2onnx's conversion with ``catch_errors`` off: by default its optimizer deep-copies the graph before
    every pass so that it can drop a pass that raises (ASPP: 2.2 s of 4.9 s). A raise on the fast path
    reruns the conversion with the copies, so no model exports worse than before."""
    key = "TF2ONNX_CATCH_ERRORS"  # read by tf2onnx.convert._convert_common
    previous = os.environ.get(key)
    os.environ[key] = "FALSE"
    try:
        return tf2onnx.convert.from_function(forward, input_signature=specs, opset=opset)[0]
    except Exception:  # any optimizer failure: fall back to tf2onnx's careful path
        os.environ[key] = "TRUE"
        return tf2onnx.convert.from_function(forward, input_signature=specs, opset=opset)[0]
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _inputs_to_external_initializers(graph, weights: dict, path: Path) -> None:
    """Replaces the weight inputs of ``graph`` by initializers named after the Keras variable paths, their
    bytes written one variable at a time, straight from the variable's buffer, to ``<path>.data``. Unused
    inputs (Dropout seed state) are dropped."""
    used = {name for node in graph.node for name in node.input}
    rename, kept = {}, []
    data = path.with_name(path.name + ".data")
    with open(data, "wb") as f:
        for inp in graph.input:
            var = weights.get(inp.name)
            if var is None:
                kept.append(inp)
                continue
            if inp.name not in used:
                continue
            raw = _variable_bytes(var)
            dtype = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(tf.as_dtype(var.dtype).as_numpy_dtype))
            tensor = onnx.TensorProto(name=var.path, dims=tuple(var.shape), data_type=dtype,
                                      data_location=onnx.TensorProto.EXTERNAL)
            for key, value in (("location", data.name), ("offset", str(f.tell())), ("length", str(raw.nbytes))):
                tensor.external_data.add(key=key, value=value)
            raw.tofile(f)
            graph.initializer.append(tensor)
            rename[inp.name] = var.path
    del graph.input[:]
    graph.input.extend(kept)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def _variable_bytes(var) -> np.ndarray:
    """The bytes of a Keras variable as a uint8 view of its TensorFlow buffer, without a copy (DLPack via
    torch; any dtype). ``keras.ops.convert_to_numpy`` would copy: for VGG19 that was 575 MB and 2.2 s."""
    value = from_dlpack(tf.experimental.dlpack.to_dlpack(tf.convert_to_tensor(var.value)))
    return value.reshape(-1).view(torch.uint8).numpy()


def load_checked(path) -> onnx.ModelProto:
    """Runs ``onnx.checker`` on the file and returns its graph without the external weight bytes."""
    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"expected an ONNX file at {path}, found none")
    try:
        onnx.checker.check_model(str(path))
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, ValidationError, OSError: all mean the same to the caller
        raise OnnxFileError(f"expected a valid ONNX model in {path}, got an unreadable or invalid file: "
                            f"{type(exc).__name__}: {str(exc).strip()[:300]}") from exc


def session(path):
    """An onnxruntime CPU session. Spinning is off: when ORT calls alternate with torch calls on 2 cores,
    spinning ORT threads slow torch down about 1.8x (measured here)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise OnnxFileError(f"onnxruntime could not load {path}: {str(exc).strip()[:300]}") from exc
