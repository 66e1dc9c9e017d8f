"""Port a checkpoint between a registry entry's torch and Keras twins: ``port(name, src, dst)``.

Formats follow the file extensions (:data:`FORMATS`):

- torch: ``.pt`` / ``.pth`` (a state_dict, read with ``torch.load(weights_only=True)``), ``.safetensors``;
- Keras: ``.weights.h5`` (Keras 3 weights file, read with h5py by layer name; a legacy Keras 2 ``.h5`` is
  read by its ``layer_names`` / ``weight_names``), ``.keras`` (a full model, loaded in safe mode; the custom
  layers of ``tf_impl/layers.py`` are registered serializable).

Steps: build both twins from the registry; read the source into its framework's twin (strict: every tensor
present, none left over, same shapes and dtypes; ``num_batches_tracked`` may be absent); transfer to the
other twin with the strict :func:`parity.transfer`; run both on the same random input and compare
(relative error ``max|a - b| / max|a|`` against the spec's tolerance); only then write the destination, to a
temporary file in the target folder that ``os.replace`` moves into place (:mod:`parity.safe_write`: the
destination is checked writable before anything is built, free space before the write). Any failure raises
and writes nothing. A checkpoint holding a NaN or an infinite value is refused: both twins would compute NaN
at the same places, and a comparison of NaN with NaN proves nothing.

Foreign files load without hand renaming. A torchvision state_dict needs nothing: our torch twins use
torchvision's module paths. A foreign Keras file whose layer names differ (``keras.applications.VGG19``:
``block1_conv1`` ... ``predictions``) is renamed through its registry entry's ``foreign_names``, one table
per foreign format, picked when the file's layer names are exactly that table's keys.
"""
from __future__ import annotations

import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from parity import counts as C
from parity import safe_write
from parity.compare import nonfinite, pair_error, run_twins
from parity.errors import CheckpointError, VerificationError
from parity.randomize import check_seed
from parity.registry import build, get
from parity.sizes import check_entry
from parity.tables import shape_text
from parity.weight_transfer import keras_layers, transfer
from tf_impl.backend import keras

# extension -> (framework, format); longest suffix wins (".weights.h5" before ".h5")
FORMATS = {".weights.h5": ("keras", "weights.h5"), ".h5": ("keras", "legacy h5"), ".keras": ("keras", "keras"),
           ".pt": ("torch", "state_dict"), ".pth": ("torch", "state_dict"),
           ".safetensors": ("torch", "safetensors")}

WRITABLE = (".weights.h5", ".keras", ".pt", ".pth", ".safetensors")

@dataclass
class PortReport:
    """What :func:`port` did. ``errors``/``counts``/``tolerance`` have :class:`CheckReport`'s shape, so the
    CLI prints the same parity rows. ``renamed`` names the foreign table used, if any."""

    name: str
    src: str
    dst: str
    direction: str
    input_shape: tuple
    errors: dict
    counts: dict
    tolerance: float
    tensors: int
    renamed: str | None = None
    seconds: dict = field(default_factory=dict)
    ok: bool = False


def file_format(path) -> tuple[str, str]:
    """``(framework, format)`` from the file name; :class:`CheckpointError` for an unknown extension."""
    name = Path(path).name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return FORMATS[ext]
    raise CheckpointError(f"unknown checkpoint extension for {path}: expected one of {', '.join(FORMATS)}")


# --- reading ----------------------------------------------------------------------------------------------

def _unreadable(path, fmt: str, exc: Exception) -> CheckpointError:
    return CheckpointError(f"cannot read {path} as a {fmt} file (truncated or corrupted?): "
                           f"{type(exc).__name__}: {str(exc).strip()[:300]}")


def read_torch(path) -> dict[str, torch.Tensor]:
    """A torch state_dict from ``.pt``/``.pth`` (never unpickles code) or ``.safetensors``."""
    _, fmt = file_format(path)
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/safetensors errors all mean: not a readable checkpoint
        raise _unreadable(path, fmt, exc) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"expected a state_dict (a dict of name -> tensor) in {path}, got "
                              f"{type(state).__name__}" + (f" with keys {list(state)[:5]}" if isinstance(state, dict)
                                                           else ""))
    return state


def _read_h5(path, legacy: bool) -> dict[str, list[np.ndarray]]:
    import h5py

    out = {}
    with h5py.File(str(path), "r") as f:
        if legacy:  # Keras 2: root (or model_weights) attrs list the layers, each group its weight names
            root = f["model_weights"] if "model_weights" in f else f
            for lname in (n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]):
                g = root[lname]
                names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
                if names:
                    out[lname] = [np.asarray(g[n]) for n in names]
            return out

        def visit(group_path, obj):  # Keras 3: .../vars groups carry the layer name, datasets 0, 1, ...
            if group_path.endswith("vars") and "name" in obj.attrs and len(obj):
                out[str(obj.attrs["name"])] = [np.asarray(obj[str(i)]) for i in range(len(obj))]

        f.visititems(visit)
    return out


def read_keras(path) -> dict[str, list[np.ndarray]]:
    """``{Keras layer name: [arrays in layer.weights order]}`` from a ``.weights.h5``, legacy ``.h5`` or
    ``.keras`` file (safe mode: no lambda or unregistered code is deserialised)."""
    _, fmt = file_format(path)
    try:
        if fmt == "keras":
            import tf_impl.layers  # noqa: F401  (registers our custom layers for deserialisation)

            if not zipfile.is_zipfile(path):  # else Keras answers "File not found" for a file that is there
                raise CheckpointError(f"cannot read {path} as a keras file (truncated or corrupted?): not a zip "
                                      f"archive, which a .keras file is")
            with _keras_named(path) as named:
                model = keras.saving.load_model(named, compile=False, safe_mode=True)
            return {n: [np.asarray(keras.ops.convert_to_numpy(v)) for v in layer.weights]
                    for n, layer in keras_layers(model).items()}
        return _read_h5(path, legacy=fmt == "legacy h5")
    except CheckpointError:
        raise
    except Exception as exc:  # h5py, zip and Keras errors all mean: not a readable checkpoint
        raise _unreadable(path, fmt, exc) from exc


@contextmanager
def _keras_named(path):
    """``path`` under a name ending in lower-case ``.keras``, which Keras's loader requires (``X.KERAS``
    would otherwise be taken for another format): a symbolic link in a temporary folder when needed."""
    if str(path).endswith(".keras"):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="parity-") as folder:
        link = Path(folder) / "model.keras"
        link.symlink_to(Path(path).resolve())
        yield str(link)


# --- loading into a twin ----------------------------------------------------------------------------------

def _first(names, n: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" (and {len(names) - n} more)" if len(names) > n else "")


def _architecture_error(name, path, missing, unexpected) -> CheckpointError:
    parts = [f"{path} does not hold the weights of {name!r}"]
    if missing:
        parts.append(f"missing {len(missing)}: {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {_first(unexpected)}")
    return CheckpointError("; ".join(parts) + " (a checkpoint of another architecture, or other builder "
                                              "arguments?)")


def _fit(tensor_name: str, expected_shape, expected_dtype, value) -> None:
    if tuple(value.shape) != tuple(expected_shape):
        raise CheckpointError(f"{tensor_name}: expected shape {tuple(expected_shape)}, received "
                              f"{tuple(value.shape)}")
    if str(value.dtype).replace("torch.", "") != str(expected_dtype).replace("torch.", ""):
        raise CheckpointError(f"{tensor_name}: expected dtype {expected_dtype}, received {value.dtype} "
                              f"(cast the checkpoint first)")
    bad = value.numel() - int(torch.isfinite(value).sum()) if torch.is_tensor(value) else nonfinite(value)
    if bad:
        raise CheckpointError(f"{tensor_name}: expected finite values, received {bad} of {np.prod(value.shape):.0f} "
                              f"NaN or Inf (both twins would be NaN at the same places, which proves nothing)")


def load_torch(module: torch.nn.Module, state: dict, name: str, path) -> int:
    """Strict load of ``state`` into ``module``; ``num_batches_tracked`` may be absent (a counter, no
    weight). All checks run before the first write. Returns the number of tensors loaded."""
    own = module.state_dict()
    missing = {k for k in own.keys() - state.keys() if not k.endswith("num_batches_tracked")}
    unexpected = state.keys() - own.keys()
    if missing or unexpected:
        raise _architecture_error(name, path, missing, unexpected)
    for k, v in state.items():
        _fit(k, own[k].shape, own[k].dtype, v)
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    return len(state)


def foreign_table(name: str, layer_names) -> tuple[str | None, dict]:
    """The foreign table of entry ``name`` (``ModelSpec.foreign_names``) whose keys are exactly
    ``layer_names``, else ``(None, {})``."""
    for fmt, table in get(name).foreign_names.items():
        if set(layer_names) == set(table):
            return fmt, table
    return None, {}


def load_keras(model, weights: dict, name: str, path) -> tuple[int, str | None]:
    """Strict load of ``{layer name: [arrays]}`` into ``model``, renaming a foreign file through its table.
    All checks run before the first write. Returns ``(tensors loaded, foreign format or None)``."""
    layers = keras_layers(model)
    renamed, table = foreign_table(name, weights) if weights.keys() != layers.keys() else (None, {})
    weights = {table.get(k, k): v for k, v in weights.items()}
    if weights.keys() != layers.keys():
        raise _architecture_error(name, path, layers.keys() - weights.keys(), weights.keys() - layers.keys())
    writes = []
    for lname, layer in layers.items():
        arrays = weights[lname]
        if len(arrays) != len(layer.weights):
            raise CheckpointError(f"layer {lname}: expected {len(layer.weights)} tensors "
                                  f"({', '.join(v.name for v in layer.weights)}), received {len(arrays)}")
        for var, arr in zip(layer.weights, arrays):
            _fit(f"{lname}/{var.name}", var.shape, var.dtype, arr)
            writes.append((var, arr))
    for var, arr in writes:
        var.assign(arr)
    return len(writes), renamed


# --- writing ----------------------------------------------------------------------------------------------

def _save_safetensors(model, path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


WRITERS = {  # format -> write(model, path); the path is a temporary name with the format's extension
    "state_dict": lambda model, path: torch.save(model.state_dict(), path),
    "safetensors": _save_safetensors,
    "weights.h5": lambda model, path: model.save_weights(path),
    "keras": lambda model, path: model.save(path),
}


def _write(model, dst: Path, fmt: str) -> None:
    """Writes a temporary file beside ``dst`` (short name, the format's lower-case extension, which Keras
    requires), then ``os.replace``: the destination appears complete or not at all."""
    with safe_write.staged(dst, expected_bytes=C.state_bytes(model), extensions=WRITABLE) as (tmp,):
        WRITERS[fmt](model, tmp)


# --- port -------------------------------------------------------------------------------------------------

def port(name: str, src, dst, *, seed: int = 0, input_shape=None, **overrides) -> PortReport:
    """Reads checkpoint ``src`` into registry entry ``name``'s twin, transfers to the other twin, checks
    torch ~ Keras on a random NCHW input (``input_shape``, default the spec's first shape), then writes
    ``dst``. A fixed-size entry's Keras twin is built at ``input_shape``'s H, W. The formats, hence the
    direction, follow the extensions. Raises :class:`CheckpointError`,
    :class:`TransferError` or :class:`VerificationError` (whose ``.report`` has the measured errors), and then
    writes nothing."""
    spec = get(name)
    seed = check_seed(seed)
    src, dst = Path(src), Path(dst)
    (src_fw, _), (dst_fw, dst_fmt) = file_format(src), file_format(dst)
    if dst_fmt == "legacy h5":
        raise CheckpointError(f"cannot write {dst}: the legacy Keras 2 .h5 format is read only; "
                              f"expected .weights.h5 or .keras")
    if src.is_dir():
        raise CheckpointError(f"expected a checkpoint file at {src}, found a directory")
    if not src.is_file():
        raise CheckpointError(f"expected a checkpoint file at {src}, found none")
    safe_write.check_destination(dst, WRITABLE)  # before anything is built
    shape = check_entry(name, input_shape or spec.sample_shape(**overrides), **overrides)
    t = {"start": time.perf_counter()}
    torch_model = build(name, "torch", **overrides)
    keras_model = build(name, "keras", input_size=shape[2:] if spec.fixed_size else None, **overrides)
    safe_write.check_space(dst.parent, C.state_bytes(torch_model if dst_fw == "torch" else keras_model))
    t["build"] = time.perf_counter()
    renamed = None
    if src_fw == "torch":
        tensors = load_torch(torch_model, read_torch(src), name, src)
    else:
        tensors, renamed = load_keras(keras_model, read_keras(src), name, src)
    t["load"] = time.perf_counter()
    if src_fw == "torch":
        transfer(torch_model, keras_model)
    else:
        transfer(keras_model, torch_model)
    t["transfer"] = time.perf_counter()
    x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    outs = run_twins(torch_model, keras_model, x)
    err = pair_error(outs["torch"], outs["keras"], labels=("torch", "keras"))
    got = {"torch": C.torch_count(torch_model), "keras": C.keras_count(keras_model)}
    t["verify"] = time.perf_counter()
    report = PortReport(name, str(src), str(dst), f"{src_fw} -> {dst_fw}", shape, {"torch ~ keras": err}, got,
                        spec.tolerance, tensors, renamed)
    report.ok = err.within(spec.tolerance) and got["torch"] == got["keras"]
    if not report.ok:
        why = ("; ".join(err.problems) if err.problems else
               f"relative error {err.rel:.3g} (max abs {err.max_abs:.3g}), tolerance {spec.tolerance:g}; "
               f"counts {got['torch']} vs {got['keras']}")
        raise VerificationError(f"{name}: ported twins disagree at {shape_text(shape)}: {why}; {dst} not written", report)
    _write(torch_model if dst_fw == "torch" else keras_model, dst, dst_fmt)
    t["write"] = time.perf_counter()
    keys = list(t)
    report.seconds = {k: t[k] - t[p] for p, k in zip(keys, keys[1:])} | {"total": t["write"] - t["start"]}
    return report
