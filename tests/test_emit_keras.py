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
    from pathlib import Path
    import numpy as np
    import keras
    folder, info = Path(sys.argv[1]), {}
    for name in sys.argv[2:]:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}_keras.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.build_model()
        model.load_weights(folder / f"{name}.weights.h5")
        out = model(np.load(folder / f"{name}_x.npy"))
        outs = out if isinstance(out, (list, tuple)) else [out]
        np.savez(folder / f"{name}_y.npz", *[keras.ops.convert_to_numpy(o) for o in outs])
        info[name] = [layer.name for layer in model.layers]
    print(json.dumps({"backend": keras.backend.backend(), "parity": "parity" in sys.modules,
                      "torch": "torch" in sys.modules, "names": info}))
""")
# every custom layer of tf_impl/keras_layers.py appears in one of these
EMITTED = {"Held": (1, 3, 16, 16), "Resize": (1, 3, 12, 12), "Shapes": (1, 3, 8, 8), "Pools": (1, 3, 23, 17),
           "NormAct": (1, 3, 9, 11), "Adaptive": (1, 3, 16, 16), "ConvZoo": (1, 3, 32, 32)}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Each net's twin emitted to a folder with its weights, an NHWC input and the twin's outputs."""
    folder = tmp_path_factory.mktemp("emitted")
    twins, expected, sources = {}, {}, {}
    for name, shape in EMITTED.items():
        module = randomize_torch(getattr(nets, name)().eval(), 0, calibrate=shape)
        twin = parity.twin(module, shape)
        sources[name] = emit(twin, name)
        (folder / f"{name}_keras.py").write_text(sources[name])
        twin.save_weights(folder / f"{name}.weights.h5")
        x = to_nhwc(np.random.default_rng(1).standard_normal((2, *shape[1:])).astype(np.float32))
        np.save(folder / f"{name}_x.npy", x)
        out = twin(x)
        expected[name] = [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
        twins[name] = twin
    return folder, twins, expected, sources


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_emitted_files_run_alone_and_reproduce_the_twins(emitted, backend):
    """One fresh process per Keras backend, without PYTHONPATH: it can import neither parity nor torch
    (torch only as Keras's backend)."""
    folder, twins, expected, _ = emitted
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"KERAS_BACKEND": backend}
    script = folder / "run.py"
    script.write_text(RUN)
    out = subprocess.run([sys.executable, str(script), str(folder), *EMITTED], capture_output=True, text=True,
                         env=env, cwd=folder, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["backend"] == backend
    if backend == "tensorflow":
        assert not info["parity"] and not info["torch"], "the emitted file must not import parity or torch"
    for name in EMITTED:
        if backend == "tensorflow":
            assert info["names"][name] == [layer.name for layer in twins[name].layers], "names are torch paths"
        got = np.load(folder / f"{name}_y.npz")
        got = [got[f"arr_{i}"] for i in range(len(got.files))]
        errs = [parity.compare.pair_error([e], [g]).rel for e, g in zip(expected[name], got)]
        print(f"{name} emitted, on Keras's {backend} backend: relative errors {['%.1e' % e for e in errs]}")
        assert len(got) == len(expected[name]) and max(errs) <= (1e-6 if backend == "tensorflow" else TOL), name


def test_emitted_source_reads_like_a_hand_written_twin(emitted):
    source = emitted[3]["Held"]
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
