"""keras.applications through the automatic torch twin: conversion time and memory, and the four-runtime check,
one row per registry entry ``keras.<Model>`` / ``keras.<Model>.notop``.

    PYTHONPATH=. python benchmarks/keras_applications.py [SUBSTRING ...] [--json FILE]

Each entry runs in a fresh child process (one big model at a time, no shared caches). The child builds the
Keras model, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``: 5), reads VmRSS as the baseline,
and times ``parity.twin(model)`` (graph walk, source generation, module construction, weight transfer):
``convert s`` and ``peak MB`` (VmHWM above the baseline). Then ``parity.check`` on the registry entry (random
weights, BatchNorm statistics near the data's, both ONNX exports, every runtime pair): the worst relative error
over the six pairs, and the counts (torch parameters + buffers, which must equal Keras's weights; each ONNX
file against its expected figure). Exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from proc_memory import reset_peak, status_mb  # benchmarks/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]


def child(name: str) -> None:
    """Converts and checks one entry; prints one JSON line."""
    import gc

    import parity
    from parity.counts import keras_count

    model = parity.build(name, "keras")
    base = reset_peak()  # VmHWM := VmRSS
    t0 = time.perf_counter()
    twin = parity.twin(model)
    convert_s, peak_mb = time.perf_counter() - t0, status_mb("VmHWM") - base
    weight_mb = keras_count(model).total * 4 / 2 ** 20
    del twin, model
    gc.collect()
    t0 = time.perf_counter()
    report = parity.check(name)
    worst = max(report.errors.values(), key=lambda e: e.rel)
    counts = {k: getattr(v, "total", v) for k, v in report.counts.items()}
    print(json.dumps(dict(name=name, convert_s=convert_s, peak_mb=peak_mb, weight_mb=weight_mb,
                          check_s=time.perf_counter() - t0, worst_rel=worst.rel, ok=report.ok,
                          problems=report.problems, counts=counts,
                          shape="x".join(map(str, report.per_shape[0].input_shape)))))


def run_child(name: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True,
                         cwd=ROOT)
    if out.returncode != 0:
        return dict(name=name, ok=False, problems=[out.stderr.strip().splitlines()[-1][:300]])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="substrings of registry names (default: every keras.* entry)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0])
        return 0
    sys.path.insert(0, str(ROOT))
    from parity.registry import names

    entries = [n for n in names() if n.startswith("keras.") and (not args.names or any(s in n for s in args.names))]
    header = f"{'entry':28} {'input':12} {'worst rel':>9} {'torch = keras params':>22} {'onnx:torch':>11} " \
             f"{'onnx:keras':>11} {'convert s':>9} {'peak MB':>8} {'weights MB':>10} {'check s':>7}  result"
    print(header, flush=True)
    rows = []
    for name in entries:
        r = run_child(name)
        rows.append(r)
        if "counts" not in r:
            print(f"{name:28} FAIL: {r['problems'][0]}", flush=True)
            continue
        c = r["counts"]
        same = "=" if c["torch"] == c["keras"] else "!="
        print(f"{name:28} {r['shape']:12} {r['worst_rel']:9.2e} {c['torch']:>10,} {same} {c['keras']:<10,} "
              f"{c['onnx:torch']:>11,} {c['onnx:keras']:>11,} {r['convert_s']:9.2f} {r['peak_mb']:8.0f} "
              f"{r['weight_mb']:10.1f} {r['check_s']:7.1f}  {'PASS' if r['ok'] else 'FAIL: ' + r['problems'][0]}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
