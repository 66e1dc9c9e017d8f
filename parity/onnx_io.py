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

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.utils.dlpack import from_dlpack

from parity import safe_write
from parity.compare import eval_mode
from parity.counts import state_bytes
from parity.errors import ExportError, InputShapeError, OnnxFileError
from parity.quiet import captured, pass_on
from parity.weight_transfer import keras_layers
from tf_impl.backend import keras, tf

OPSET = 17  # supported by torch's exporter, tf2onnx 1.17 and onnxruntime alike


def export_onnx(model, path, input_shape=None, opset: int = OPSET) -> Path:
    """Exports a torch module (``input_shape`` (N, C, H, W) needed for its trace) or a Keras model to
    ``path`` (``.onnx``; a Keras export also writes ``<path>.data``) and returns the path.

    The model is not changed: a torch module runs in eval mode (what the file computes is inference) and
    gets its own modes back after. The files appear complete or not at all (:mod:`parity.safe_write`):
    :class:`OnnxFileError` when the destination cannot be written, :class:`InputShapeError` when
    ``input_shape`` does not fit the module."""
    if not isinstance(model, (nn.Module, keras.Model)):
        raise TypeError(f"export_onnx expects a torch.nn.Module or a keras.Model, got {type(model).__name__}")
    path = Path(path)
    if isinstance(model, nn.Module) and input_shape is None:
        raise InputShapeError("exporting a torch module needs input_shape (N, C, H, W) for its trace; got None")
    shape = _check_shape(input_shape) if isinstance(model, nn.Module) else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OnnxFileError(f"expected a folder for {path}, cannot create {path.parent}: "
                            f"{exc.strerror or exc}") from None
    files = (path,) if isinstance(model, nn.Module) else (path, _data_path(path))
    with safe_write.staged(*files, expected_bytes=state_bytes(model), extensions=(".onnx", ".onnx.data"),
                           error=OnnxFileError) as temps:
        if isinstance(model, nn.Module):
            with eval_mode(model):
                _export_torch(model, temps[0], shape, opset)
        else:
            _export_keras(model, temps[0], temps[1], files[1].name, opset)
    return path


def _data_path(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def _check_shape(input_shape) -> tuple:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 4 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                                    for d in shape) or min(shape) < 1):
        raise InputShapeError(f"input_shape must be (N, C, H, W), 4 integers >= 1, got {input_shape!r}")
    return tuple(int(d) for d in shape)


def _export_torch(module: nn.Module, path: Path, input_shape: tuple, opset: int, free_hw: bool = True) -> None:
    """torch's export with free batch, H and W; a model the exporter cannot export with free H and W
    (``AdaptiveAvgPool2d((7, 7))``: "input size not accessible", so torchvision's AlexNet and VGGs) is exported
    at ``input_shape``'s H and W (its file then has static spatial dims; the engine exports it per shape)."""
    x = torch.randn(input_shape)
    try:
        with torch.no_grad():
            outputs = module(x)
    except RuntimeError as exc:  # a conv's channel check, a too small map: the shape does not fit the module
        raise InputShapeError(f"input_shape {input_shape} does not fit {type(module).__name__}: "
                              f"{_first_line(exc)}") from None
    outputs = list(outputs.values()) if isinstance(outputs, dict) else outputs  # a dict exports its values
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    names = [f"output_{i}" for i in range(len(outputs))]
    dynamic = {"input": {0: "N", 2: "H", 3: "W"} if free_hw else {0: "N"}}
    for i, (name, out) in enumerate(zip(names, outputs)):
        dynamic[name] = {0: "N", 2: f"H{i}", 3: f"W{i}"} if out.dim() == 4 and free_hw else {0: "N"}
    try:
        # stdout and stderr captured: on an error the exporter prints its whole IR graph to stdout (its log
        # switch is always on: torch 2.13's setup_onnx_logging tests the function _jit_is_onnx_log_enabled, not
        # its value); the error below says why in one line, and on success whatever it wrote is passed on
        with warnings.catch_warnings(), captured(1) as out, captured(2) as err:
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=names, dynamic_axes=dynamic, do_constant_folding=True)
        pass_on(out, 1)
        pass_on(err, 2)
    except torch.onnx.errors.SymbolicValueError as exc:
        if not free_hw or "input size not accessible" not in str(exc):
            raise ExportError(f"torch's ONNX exporter cannot write {type(module).__name__}: {_first_line(exc)}") from None
        _export_torch(module, path, input_shape, opset, free_hw=False)
    except torch.onnx.errors.OnnxExporterError as exc:  # an op without a symbolic (UnsupportedOperatorError)
        raise ExportError(f"torch's ONNX exporter cannot write {type(module).__name__}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def static_hw(model: onnx.ModelProto):
    """The input's (H, W) when the file fixes them (an export that could not leave them free), else None."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[2].dim_param or dims[3].dim_param:
        return None
    return dims[2].dim_value, dims[3].dim_value


def _register_erfc(tf2onnx) -> None:
    """tf2onnx 1.17 has no handler for TensorFlow's ``Erfc``, which ``tf.nn.gelu(approximate=False)`` uses
    (Keras's exact ``gelu``: ConvNeXt): it passes the node through and onnx.checker rejects the file. ONNX
    has ``Erf``, and ``erfc(x) = 1 - erf(x)``. Registered once, for every export."""
    from tf2onnx.handler import tf_op

    if any("Erfc" in handlers for handlers in tf_op.get_opsets().get(tf2onnx.constants.ONNX_DOMAIN, [])):
        return

    @tf_op("Erfc")
    class Erfc:  # noqa: F841  (registered by the decorator)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = tf2onnx.utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(tf2onnx.utils.make_name("erfc_one"), np.array(1, dtype=dtype))
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
            shapes, dtypes = node.output_shapes, node.output_dtypes
            ctx.remove_node(node.name)
            ctx.make_node("Sub", [one.output[0], erf.output[0]], outputs=node.output, name=node.name,
                          shapes=shapes, dtypes=dtypes)


@contextlib.contextmanager
def _grouped_conv_without_xla():
    """Keras's TensorFlow backend runs a grouped conv (ConvNeXt's depthwise ``Conv2D(groups=C)``) inside a
    ``tf.function(jit_compile=True)``, because TF's CPU kernel has no groups; tf2onnx cannot inline that
    function and leaves a ``PartitionedCall`` node, which onnx.checker rejects. The export only traces: there
    a grouped ``tf.nn.convolution`` is a plain Conv2D node, which tf2onnx converts with ONNX's ``group``."""
    from keras.src.backend.tensorflow import nn as tf_nn

    xla_conv = tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        if (data_format or keras.config.image_data_format()) != "channels_last" or len(inputs.shape) != 4:
            return xla_conv(inputs, kernel, strides, padding, data_format, dilation_rate)
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format="NHWC",
                                 dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = xla_conv


def _export_keras(model, path: Path, data: Path, location: str, opset: int) -> None:
    """Writes the graph to ``path`` and the weights to ``data``; the graph names ``location`` (the data
    file's final name, beside the final model file) as where its initializers live."""
    import tf2onnx

    _register_erfc(tf2onnx)

    trainable, frozen = list(model.trainable_variables), list(model.non_trainable_variables)
    variables = trainable + frozen
    specs = [tf.TensorSpec(v.shape, v.dtype, name=f"w{i}") for i, v in enumerate(variables)]
    specs.append(tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype, name="input"))
    n = len(trainable)

    @tf.function(input_signature=specs)
    def forward(*args):
        outputs, _ = model.stateless_call(list(args[:n]), list(args[n:-1]), args[-1], training=False)
        return outputs

    with _grouped_conv_without_xla(), _adapted_statistics_read_from_variables(model):
        proto = _convert_without_deep_copies(tf2onnx, forward, specs, opset)
    graph = proto.graph
    _captures_to_initializers(graph, forward.get_concrete_function(*specs))
    for i, out in enumerate(graph.output):
        graph.node.append(onnx.helper.make_node("Identity", [out.name], [f"output_{i}"]))
        out.name = f"output_{i}"
    _inputs_to_external_initializers(graph, {f"w{i}": v for i, v in enumerate(variables)}, data, location)
    onnx.save(proto, str(path))


@contextlib.contextmanager
def _adapted_statistics_read_from_variables(model):
    """An adapted ``Normalization`` computes from tensors that ``finalize_state`` derives from its variables, so
    the traced graph would capture them as constants and leave the variables unread: the file would hold the
    statistics inline, and not among the weights. For the length of the block each such layer derives them
    again in its call, from the variables, which the export feeds as weights; afterwards it computes from
    tensors again."""
    adapted = [layer for layer in keras_layers(model).values()
               if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None]
    for layer in adapted:
        def call(inputs, layer=layer, original=layer.call):
            layer.finalize_state()  # inside stateless_call: reads the variables the export passes
            return original(inputs)
        layer.call = call
    try:
        yield
    finally:
        for layer in adapted:
            del layer.call
            layer.finalize_state()


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


def _captures_to_initializers(graph, concrete) -> None:
    """Constant tensors the traced function captured (not variables: ``Normalization`` built with a given mean
    and variance holds them as tensors, ConvNeXt's and EfficientNetV2's) become initializers. tf2onnx lists a
    capture among the function's inputs, which left them as ONNX inputs that no caller feeds."""
    captured = {inner.name: outer for outer, inner in concrete.graph.captures if outer.dtype != tf.resource}
    used = {name for node in graph.node for name in node.input}
    kept = []
    for inp in graph.input:
        if inp.name not in captured:
            kept.append(inp)
        elif inp.name in used:  # (tf2onnx folds sqrt(variance) into a new constant and leaves the input unused)
            graph.initializer.append(onnx.numpy_helper.from_array(captured[inp.name].numpy(), inp.name))
    del graph.input[:]
    graph.input.extend(kept)


def _inputs_to_external_initializers(graph, weights: dict, data: Path, location: str) -> None:
    """Replaces the weight inputs of ``graph`` by initializers named after the Keras variable paths, their
    bytes written one variable at a time, straight from the variable's buffer, to ``data``, which the graph
    calls ``location``. Unused inputs (Dropout seed state) are dropped."""
    used = {name for node in graph.node for name in node.input}
    rename, kept = {}, []
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
            for key, value in (("location", location), ("offset", str(f.tell())), ("length", str(raw.nbytes))):
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
    try:  # Pad_Fusion folds a zero Pad into a following MaxPool, whose padding is -inf: wrong wherever a window
        # holds only negative values (keras.applications.ResNet50V2's stem: 0.156 relative; onnxsim issue 290)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=["Pad_Fusion"])
    except Exception as exc:
        raise OnnxFileError(f"onnxruntime could not load {path}: {str(exc).strip()[:300]}") from exc
