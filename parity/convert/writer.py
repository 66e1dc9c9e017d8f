"""``parity convert``: a model object in, three files out, written only once everything is proven.

For a torch module: ``<name>_keras.py`` (standalone Keras 3 source), ``<name>.weights.h5`` and
``<name>.report.json``. For a Keras model: ``<name>_torch.py`` (standalone torch source),
``<name>.safetensors`` and ``<name>.report.json``.

Steps, every one before the first byte is written:

1. the destination folder can be written (checked first, before any expensive work);
2. the four-runtime check (:func:`parity.check`) on random weights and BatchNorm statistics (the caller's
   model is not touched);
3. the twin with the model's own weights, and its source from the emitter (``emit_keras``/``emit_torch``:
   ``emit(twin, name) -> str``, a file that defines ``build_model()``);
4. that source executed in a namespace of its own, its model built, given the twin's weights, and compared
   with the original on the model's own weights at every checked input shape.

Then every file goes to a temporary name beside its destination and is moved into place with
``os.replace``. Any failure raises and leaves the folder as it was.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.errors import CheckpointError, VerificationError


@dataclass
class ConvertReport:
    """What :func:`write_twin` did: the check report, the emitted source checked against the original (its
    own weights), the files written, and the times."""

    name: str
    direction: str
    check: object  # parity.engine.CheckReport
    emitted_errors: dict  # input shape -> PairError, emitted model (own weights) against the original
    files: dict = field(default_factory=dict)  # "source", "weights", "report" -> path
    seconds: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.check.ok and all(e.within(self.check.tolerance) for e in self.emitted_errors.values())

    def to_dict(self) -> dict:
        return {"name": self.name, "direction": self.direction, "ok": self.ok, "check": self.check.to_dict(),
                "emitted": {"x".join(map(str, s)): e.to_json() for s, e in self.emitted_errors.items()},
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": self.seconds}


def _writable_folder(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"expected a folder for --out, {out} is a file")
    parent = out if out.exists() else out.parent
    if not parent.is_dir():
        raise CheckpointError(f"expected an existing parent folder for {out}, {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(f"expected a writable folder for {out}, {parent} is not writable")
    return out


def load_source(source: str, name: str) -> types.ModuleType:
    """Executes emitted ``source`` as a module of its own (nothing of this package is in its namespace)."""
    module = types.ModuleType(f"parity_emitted_{name}")
    exec(compile(source, f"<{name} emitted>", "exec"), module.__dict__)  # noqa: S102 (our own emitted code)
    return module


def _emit(twin_model, to_keras: bool, name: str) -> str:
    if to_keras:
        from parity.convert.emit_keras import emit
    else:
        from parity.convert.emit_torch import emit
    return emit(twin_model, name)


def _copy_weights(twin_model, emitted_model, to_keras: bool) -> None:
    """The twin's weights into the model built from the emitted source: same layer names / state_dict keys."""
    if to_keras:
        from parity.weight_transfer import keras_layers

        layers = keras_layers(emitted_model)
        for lname, layer in keras_layers(twin_model).items():
            layers[lname].set_weights(layer.get_weights())
    else:
        emitted_model.load_state_dict(twin_model.state_dict(), strict=True)


def write_twin(model, out, *, input_shape=None, name: str | None = None, seed: int = 0) -> ConvertReport:
    """Checks ``model`` (a torch module, with ``input_shape`` (N, C, H, W), or a Keras model) against its
    automatic twin in four runtimes, emits the twin's source, proves it, then writes the three files into
    folder ``out`` (created if missing). Raises :class:`VerificationError` (nothing written) when a check
    fails; :class:`CheckpointError` when ``out`` cannot be written."""
    import torch

    from parity.compare import run_twins
    from parity.compare import pair_error
    from parity.convert import twin
    from parity.engine import check

    out = _writable_folder(out)
    to_keras = isinstance(model, torch.nn.Module)
    name = name or getattr(model, "name", None) or type(model).__name__
    t = {"start": time.perf_counter()}
    report = check(model, input_shape=input_shape, seed=seed, name=name)
    t["check"] = time.perf_counter()
    shapes = [r.input_shape for r in report.per_shape]
    twin_model = twin(model, shapes[0]) if to_keras else twin(model)
    t["twin"] = time.perf_counter()
    source = _emit(twin_model, to_keras, name)
    emitted = load_source(source, name).build_model()
    _copy_weights(twin_model, emitted, to_keras)
    t["emit"] = time.perf_counter()
    torch_model, keras_model = (model, emitted) if to_keras else (emitted, model)
    emitted_errors = {}
    for shape in shapes:
        x = np.random.default_rng(seed + 1).standard_normal(shape).astype(np.float32)
        outs = run_twins(torch_model, keras_model, x)
        emitted_errors[shape] = pair_error(outs["torch"], outs["keras"], labels=("torch", "keras"))
    t["verify"] = time.perf_counter()
    result = ConvertReport(name, "torch -> keras" if to_keras else "keras -> torch", report, emitted_errors)
    if not result.ok:
        why = report.problems or [f"emitted model at {s}: {e.problems or f'relative error {e.rel:.3g}'}"
                                  for s, e in emitted_errors.items() if not e.within(report.tolerance)]
        raise VerificationError(f"{name}: conversion not proven, nothing written: {why[0]}", result)
    files = {"source": out / f"{name}_{'keras' if to_keras else 'torch'}.py",
             "weights": out / f"{name}.{'weights.h5' if to_keras else 'safetensors'}",
             "report": out / f"{name}.report.json"}
    result.files = files
    out.mkdir(exist_ok=True)
    _write_all(files, source, twin_model, to_keras, result, t)
    return result


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(files: dict, source: str, twin_model, to_keras: bool, result: ConvertReport, t: dict) -> None:
    """Every file to a temporary name beside it, then each moved into place; on a failure the temporaries
    are removed and nothing is replaced."""
    temps = {}
    try:
        for key, dst in files.items():
            fd, tmp = tempfile.mkstemp(prefix=".parity-", suffix="".join(dst.suffixes[-2:]), dir=dst.parent)
            os.close(fd)
            temps[key] = tmp
        Path(temps["source"]).write_text(source)
        if to_keras:
            os.remove(temps["weights"])  # Keras refuses to overwrite without asking
            twin_model.save_weights(temps["weights"])
        else:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in twin_model.state_dict().items()}, temps["weights"])
        t["write"] = time.perf_counter()
        keys = list(t)
        result.seconds = {k: t[k] - t[p] for p, k in zip(keys, keys[1:])} | {"total": t["write"] - t["start"]}
        Path(temps["report"]).write_text(json.dumps(result.to_dict(), indent=1, default=str, allow_nan=False))
        mode = 0o666 & ~_umask()  # mkstemp makes 0600 files; the results get the user's usual mode
        for key, dst in files.items():
            os.chmod(temps[key], mode)
            os.replace(temps.pop(key), dst)
    except OSError as exc:
        raise CheckpointError(f"cannot write the conversion into {files['source'].parent}: {exc}") from exc
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
