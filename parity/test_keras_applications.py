"""The issue's "done when" for keras.applications (marker ``zoo``: ``pytest -m zoo``): ``parity convert
keras.applications:MobileNetV3Small --kwargs '{"weights": null}' --out DIR`` on the command line, then the
emitted file in a fresh process that imports neither parity nor Keras nor TensorFlow, against Keras's outputs
for the converted weights. (Every keras.applications entry's four-runtime check and counts run in
``test_parity.py`` through the registry, ``parity/zoo/keras_applications.py``.)"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from parity.compare import pair_error
from parity.layout import to_nhwc
from parity.registry import FLOAT32_TOLERANCE as TOL

ROOT = Path(__file__).resolve().parents[1]

RUN_EMITTED = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np, safetensors.torch, torch
    spec = importlib.util.spec_from_file_location("emitted", "MobileNetV3Small_torch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model()
    model.load_state_dict(safetensors.torch.load_file("MobileNetV3Small.safetensors"))
    logits = []  # the input of the final softmax: probabilities of random logits are nearly one-hot
    model.flatten.register_forward_hook(lambda m, i, o: logits.append(o))
    with torch.no_grad():
        np.save("torch_out.npy", model(torch.from_numpy(np.load("input.npy"))).numpy())
    np.save("torch_logits.npy", logits[0].numpy())
    print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("parity", "keras", "tensorflow"))))
""")


@pytest.mark.zoo
def test_convert_mobilenet_v3_small_and_run_the_emitted_file_alone(tmp_path):
    out = tmp_path / "mbv3_torch"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "parity", "convert", "keras.applications:MobileNetV3Small",
                          "--kwargs", '{"weights": null}', "--out", str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    print(run.stdout[-2500:])
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["MobileNetV3Small.report.json", "MobileNetV3Small.safetensors",
                                                    "MobileNetV3Small_torch.py"]
    # Keras's outputs for the converted weights: a fresh MobileNetV3Small given them through the torch twin
    import safetensors.torch

    import parity
    from parity.convert.writer import load_source
    from tf_impl.backend import keras

    emitted = load_source((out / "MobileNetV3Small_torch.py").read_text(), "MobileNetV3Small").build_model()
    emitted.load_state_dict(safetensors.torch.load_file(out / "MobileNetV3Small.safetensors"))
    model = keras.applications.MobileNetV3Small(weights=None)
    parity.transfer(emitted, model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 224, 224)).astype(np.float32)
    np.save(out / "input.npy", x)
    keras_out = keras.ops.convert_to_numpy(model(to_nhwc(x), training=False))
    # the Flatten by type: Keras names it from a process-wide counter ("flatten_2" after other models)
    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    keras_logits = keras.ops.convert_to_numpy(keras.Model(model.input, flatten.output)(to_nhwc(x)))
    alone = subprocess.run([sys.executable, "-c", RUN_EMITTED], cwd=out, capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert alone.returncode == 0, alone.stderr[-2000:]
    err = pair_error([keras_logits, keras_out], [np.load(out / "torch_logits.npy"), np.load(out / "torch_out.npy")],
                     labels=("keras", "emitted torch"))
    print(f"emitted MobileNetV3Small in a fresh process ~ Keras: relative error {err.rel:.3g}; foreign modules: "
          f"{alone.stdout.strip()!r}")
    assert alone.stdout.strip() == "" and err.within(TOL), err
