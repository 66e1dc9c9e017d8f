"""The emitted Keras source (``parity.convert.emit_keras``) and ``parity convert``: a standalone file that imports
keras only, rebuilds the twin in a fresh process that never imports parity or torch, on the TensorFlow and
on the torch backend of Keras, and reproduces the twin's outputs."""
import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import parity
from parity import cli
from parity.convert.emit_keras import emit
from parity.layout import to_nhwc
from parity.randomize import randomize_torch
from parity.registry import FLOAT32_TOLERANCE as TOL
from tests import nets
from tf_impl.backend import keras

RUN = textwrap.dedent("""
    import importlib.util, json, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("emitted", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import keras
    model = module.build_model()
    model.load_weights(sys.argv[2])
    out = model(np.load(sys.argv[3]))
    outs = out if isinstance(out, (list, tuple)) else [out]
    np.savez(sys.argv[4], *[keras.ops.convert_to_numpy(o) for o in outs])
    print(json.dumps({"backend": keras.backend.backend(), "parity": "parity" in sys.modules,
                      "torch": "torch" in sys.modules, "names": [layer.name for layer in model.layers]}))
""")


def _emitted(tmp_path, name, shape):
    module = randomize_torch(getattr(nets, name)().eval(), 0, calibrate=shape)
    twin = parity.twin(module, shape)
    source = emit(twin, name)
    (tmp_path / f"{name}_keras.py").write_text(source)
    twin.save_weights(tmp_path / f"{name}.weights.h5")
    x = to_nhwc(np.random.default_rng(1).standard_normal((2, *shape[1:])).astype(np.float32))
    np.save(tmp_path / "x.npy", x)
    out = twin(x)
    expected = [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    return twin, source, expected


def _run(tmp_path, name, backend):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"KERAS_BACKEND": backend}
    script = tmp_path / "run.py"
    script.write_text(RUN)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}_keras.py"),
                          str(tmp_path / f"{name}.weights.h5"), str(tmp_path / "x.npy"), str(tmp_path / "y.npz")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    got = np.load(tmp_path / "y.npz")
    return info, [got[f"arr_{i}"] for i in range(len(got.files))]


# every custom layer of tf_impl/keras_layers.py appears in one of these
EMITTED = {"Held": (1, 3, 16, 16), "Resize": (1, 3, 12, 12), "Shapes": (1, 3, 8, 8), "Pools": (1, 3, 23, 17),
           "NormAct": (1, 3, 9, 11), "Adaptive": (1, 3, 16, 16)}


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
@pytest.mark.parametrize("name", list(EMITTED))
def test_emitted_file_runs_alone_and_reproduces_the_twin(tmp_path, name, backend):
    twin, _, expected = _emitted(tmp_path, name, EMITTED[name])
    info, got = _run(tmp_path, name, backend)
    assert info["backend"] == backend
    if backend == "tensorflow":
        assert not info["parity"] and not info["torch"], "the emitted file must not import parity or torch"
        assert info["names"] == [layer.name for layer in twin.layers], "layer names are the torch paths"
    errs = [parity.compare.pair_error([e], [g]).rel for e, g in zip(expected, got)]
    print(f"{name} on Keras's {backend} backend: relative errors {['%.1e' % e for e in errs]}")
    assert len(got) == len(expected) and max(errs) <= (1e-6 if backend == "tensorflow" else TOL)


def test_emitted_source_reads_like_a_hand_written_twin(tmp_path):
    _, source, _ = _emitted(tmp_path, "Held", EMITTED["Held"])
    tree = ast.parse(source)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert imports == {"keras"}, imports
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"TorchTensors", "Binary"} <= classes
    assert source.count("@keras.saving.register_keras_serializable") == len(classes)
    assert 'keras.layers.Conv2D(8, 2, strides=2, name=path(\'stem\'))' in source  # non-default arguments only
    body = source[source.index("def build_model"):]
    assert "kernel_initializer" not in body and "dtype" not in body
    assert "# torch's eps 1e-06 (Keras default 1e-3)" in source  # the facade's note, once
    build = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_model")
    assert len(build.body) >= 10


def test_parity_convert_writes_three_files_once_proven(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["convert", "tests.nets:tiny", "--input-shape", "1,3,16,16", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert sorted(p.name for p in out.iterdir()) == ["tiny.report.json", "tiny.weights.h5", "tiny_keras.py"]
    mask = os.umask(0)
    os.umask(mask)
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~mask for p in out.iterdir()), "the user's usual mode"
    report = json.loads((out / "tiny.report.json").read_text())
    assert report["ok"] and len(report["check"]["errors"]) == 6
    assert "converted tiny torch -> keras" in printed


def test_parity_convert_of_an_unsupported_model_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["convert", "tests.nets:Cumsum", "--input-shape", "1,3,8,8", "--out", str(out)])
    assert code == 1 and not out.exists()
    assert "torch.cumsum" in capsys.readouterr().err
