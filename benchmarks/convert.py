"""``parity.twin`` (torch -> Keras) time and peak memory per model, and the converted model's inference latency.

    PYTHONPATH=. python benchmarks/convert.py [TARGET ...] [--runs 3] [--latency] [--threads 1]

TARGETs are ``MODULE:CALLABLE`` (default ``torchvision.models:resnet50``; torchvision models are built with
``weights=None``). Each conversion run is a fresh child process: it imports everything, builds the torch
model, converts a 3-layer model once (the libraries' one-off set-up: TensorFlow's runtime, torch.fx's fake
tensors, Keras's graph machinery; printed apart as "set-up"), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``: 5), reads VmRSS as the baseline, calls ``parity.twin``'s ``to_keras`` once
(trace and shape propagation, Keras build, weight transfer; timed apart) and reads VmHWM: the peak above the
baseline is what the conversion needed. Medians over ``--runs`` children.

``--latency`` (torchvision resnet50 only) times one ``tf.function`` call, batch 1 and 8, of the automatic
twin, the hand-written twin (``parity.build("resnet50", "keras")``) and ``keras.applications.ResNet50
(weights=None)``, in one child process with ``--threads`` intra-op threads (TensorFlow and torch), the three
models taking turns call by call so that a change of load hits all three; medians of 30 calls after 5 warm-up
calls.

Goals (issue 9), for torchvision resnet50: conversion at most 2 s and at most 1.5x the weight bytes above
the baseline; latency within 1.1x of the hand-written twin and of keras.applications. Exit status 1 when a
goal is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from proc_memory import reset_peak, status_mb  # benchmarks/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESNET50 = "torchvision.models:resnet50"


def _load(target: str):
    """The model of ``target``, built with the arguments of the registry entry that names it (torchvision's
    googlenet and inception_v3 without their training-only aux heads), else ``weights=None`` for torchvision."""
    from parity import loader, registry

    specs = [registry.get(n) for n in registry.names() if registry.get(n).torch == target]
    kwargs = specs[0].kwargs if specs else {"weights": None} if target.startswith("torchvision.") else {}
    return loader.load(target, kwargs)


def child_convert(target: str) -> None:
    """One ``parity.twin`` call; prints seconds (total and per step), the peak above the baseline (MB) and
    the weight bytes."""
    import gc

    import torch  # noqa: F401
    from torch import fx  # noqa: F401

    from parity.convert.from_torch import to_keras
    from tf_impl.backend import keras  # noqa: F401

    model = _load(target)
    shape = (1, 3, 299, 299) if target.endswith("inception_v3") else (1, 3, 224, 224)
    gc.collect()
    before = status_mb("VmRSS")
    to_keras(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()), (1, 3, 8, 8))
    base = reset_peak()  # VmHWM := VmRSS
    steps = {}
    t0 = time.perf_counter()
    to_keras(model, shape, timings=steps)
    seconds, peak = time.perf_counter() - t0, status_mb("VmHWM") - base
    again = reset_peak()  # VmHWM := VmRSS
    to_keras(model, shape)  # the same conversion again in this process: what it needs once the allocators grew
    result = dict(seconds=seconds, peak_mb=peak, steps=steps, setup_mb=base - before,
                  second_peak_mb=status_mb("VmHWM") - again,
                  weight_bytes=sum(t.numel() * t.element_size() for t in model.state_dict().values()
                                   if t.is_floating_point()))
    print(json.dumps(result))


def child_latency(threads: int) -> None:
    """Median ``tf.function`` latency of the three ResNet-50s, batch 1 and 8."""
    import numpy as np
    import torch

    from tf_impl.backend import keras, tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(threads)
    import parity

    models = {"automatic twin": parity.twin(_load(RESNET50), (1, 3, 224, 224)),
              "hand-written twin": parity.build("resnet50", "keras"),
              "keras.applications": keras.applications.ResNet50(weights=None)}
    result = {}
    for batch in (1, 8):
        x = tf.constant(np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype(np.float32))
        fns = {k: tf.function(lambda a, m=m: m(a, training=False)) for k, m in models.items()}
        times = {k: [] for k in fns}
        for i in range(35):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn(x).numpy()
                if i >= 5:
                    times[k].append(time.perf_counter() - t0)
        result[batch] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    result["layers"] = {k: len(m.layers) for k, m in models.items()}
    print(json.dumps(result))


def _run(args: list) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=[RESNET50], help="MODULE:CALLABLE (default: torchvision resnet50)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency", action="store_true", help="also time inference of the three ResNet-50s")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for the latency run")
    ap.add_argument("--child-convert", help=argparse.SUPPRESS)
    ap.add_argument("--child-latency", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_convert:
        child_convert(args.child_convert)
        return 0
    if args.child_latency:
        child_latency(args.threads)
        return 0
    missed = False
    print(f"{'model':34} {'weights':>9} {'twin s':>7} {'trace':>6} {'build':>6} {'transfer':>8} {'peak MB':>8} "
          f"{'x':>5} {'again':>6} {'set-up':>7}  goals")
    for target in args.targets:
        runs = [_run(["--child-convert", target]) for _ in range(args.runs)]
        sec = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        steps = {k: statistics.median(r["steps"][k] for r in runs) for k in runs[0]["steps"]}
        weights = runs[0]["weight_bytes"] / 2**20
        verdict = ""
        if target == RESNET50:
            ok = sec <= 2.0 and peak / weights <= 1.5
            missed |= not ok
            verdict = f"time {'ok' if sec <= 2.0 else 'MISSED'} (<= 2 s), memory " \
                      f"{'ok' if peak / weights <= 1.5 else 'MISSED'} (<= 1.5x)"
        setup = statistics.median(r["setup_mb"] for r in runs)
        again = statistics.median(r["second_peak_mb"] for r in runs)
        print(f"{target:34} {weights:7.1f}MB {sec:7.2f} {steps['trace']:6.2f} {steps['build']:6.2f} "
              f"{steps['transfer']:8.2f} {peak:8.0f} {peak / weights:5.2f} {again / weights:5.2f}x {setup:5.0f}MB  "
              f"{verdict}", flush=True)
    print(f"medians of {args.runs} child processes; peak = VmHWM - VmRSS just before parity.twin (MB = 2**20 "
          f"bytes); x = peak / weight bytes; trace = fx trace + shape propagation; set-up = the libraries' one-off "
          f"memory, taken by a first 3-layer conversion before the baseline; again = peak / weight bytes of the same "
          f"conversion repeated in the process")
    if args.latency:
        lat = _run(["--child-latency", "--threads", str(args.threads)])
        print(f"\nResNet-50 inference, tf.function, {args.threads} thread(s), median of 30 calls (ms); layers: "
              + ", ".join(f"{k} {v}" for k, v in lat["layers"].items()))
        for batch in ("1", "8"):
            row = lat[batch]
            auto = row["automatic twin"]
            ratios = {k: auto / row[k] for k in ("hand-written twin", "keras.applications")}
            missed |= any(r > 1.1 for r in ratios.values())
            print(f"batch {batch}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items())
                  + "; automatic / " + ", ".join(f"{k} {r:.2f}x" for k, r in ratios.items()))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
