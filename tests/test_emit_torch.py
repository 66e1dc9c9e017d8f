"""``parity convert`` for a Keras model: the standalone ``<name>_torch.py`` (imports only torch, one attribute
per layer, the very class the in-memory twin compiles), its weights and report, and a run of the emitted file
in a fresh process that imports neither parity nor Keras nor TensorFlow and reproduces Keras's outputs."""
import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import parity
from parity import cli
from parity.compare import pair_error
from parity.convert.emit_torch import emit
from parity.fixtures import keras_models
from parity.layout import to_nchw, to_nhwc
from parity.randomize import randomize_keras
from parity.registry import FLOAT32_TOLERANCE as TOL
from tf_impl.backend import keras


STANDALONE = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np, safetensors.torch, torch
    spec = importlib.util.spec_from_file_location("emitted", "small_cnn_torch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model()
    model.load_state_dict(safetensors.torch.load_file("small_cnn.safetensors"))
    with torch.no_grad():
        out = model(torch.from_numpy(np.load("input.npy"))).numpy()
    np.save("torch_out.npy", out)
    print("training" if model.training else "eval")
    print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("parity", "keras", "tensorflow",
                                                                        "tf_impl", "torch_impl"))))
""")


def test_convert_writes_a_file_that_runs_alone_and_reproduces_keras(tmp_path, capsys, monkeypatch):
    """``parity convert MODULE:CALLABLE --out DIR``, then the emitted file in a fresh process."""
    model = randomize_keras(keras_models.small_cnn(), 4)
    monkeypatch.setattr(keras_models, "converted", lambda: model, raising=False)  # the CLI's target
    out = tmp_path / "out"
    assert cli.main(["convert", "parity.fixtures.keras_models:converted", "--name", "small_cnn",
                     "--out", str(out)]) == 0
    print(capsys.readouterr().out[-800:])
    assert sorted(p.name for p in out.iterdir()) == ["small_cnn.report.json", "small_cnn.safetensors",
                                                    "small_cnn_torch.py"]
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.save(out / "input.npy", x)
    keras_out = keras.ops.convert_to_numpy(model(to_nhwc(x), training=False))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", STANDALONE], cwd=out, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    mode, imported = run.stdout.splitlines()
    err = pair_error([keras_out], [np.load(out / "torch_out.npy")], labels=("keras", "emitted torch"))
    print(f"emitted file in a fresh process ~ Keras: relative error {err.rel:.3g}; foreign modules: {imported!r}")
    assert mode == "eval" and imported == ""
    assert err.within(TOL), err
    saved = json.loads((out / "small_cnn.report.json").read_text())
    assert saved["ok"] and saved["direction"] == "keras -> torch" and saved["names"]["stem_conv"] == "stem-conv"


def test_emitted_source_imports_only_torch_and_holds_the_twins_class():
    model = keras_models.convolutions()
    twin = parity.twin(model)
    source = emit(twin, "convolutions")
    tree = ast.parse(source)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports == {"torch", "torch.nn.functional"} | {"torch"}, imports
    assert type(twin).SOURCE in source  # the text the in-memory twin was compiled from
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Convolutions")
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    attributes = [t.attr for n in init.body if isinstance(n, ast.Assign) for t in n.targets]
    assert attributes == [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "same_padding", "build_model"} <= defined
    assert "BatchNormalization" not in defined  # only what the model uses


def test_emitted_class_equals_the_twin_numerically():
    model = randomize_keras(keras_models.pooling(), 2)
    twin = parity.twin(model)
    namespace = {}
    exec(compile(emit(twin, "pooling"), "<pooling_torch.py>", "exec"), namespace)  # noqa: S102
    emitted = namespace["build_model"]()
    emitted.load_state_dict(twin.state_dict())
    import torch

    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 4, 19, 23)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(emitted(x), twin(x))


def test_convert_refuses_an_unsupported_layer_and_writes_nothing(tmp_path, capsys):
    code = cli.main(["convert", "parity.fixtures.keras_models:with_lambda", "--out", str(tmp_path / "lam")])
    err = capsys.readouterr().err.strip().splitlines()
    print(code, err)
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0]
    assert "'double'" in err[0] and "Lambda" in err[0] and "supported:" in err[0]
    assert not (tmp_path / "lam").exists()
