"""ONNX export time and peak memory per registry model, Keras (``parity.export_onnx``) against torch.

    PYTHONPATH=. python benchmarks/export_onnx.py [NAME ...] [--runs 3]

Each run is a fresh child process, so no run inherits another's caches or heap. The child imports the
exporter (``tf2onnx.convert`` or ``torch.onnx``: module imports are a cost of the process, not of an
export), builds the model, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``: 5), reads VmRSS
as the baseline, exports once, and reads VmHWM: the peak above the baseline is what the export needed,
including the runtime's one-off set-up for the first trace (TensorFlow: about 15-25 MB). The files are
written to a temporary folder and deleted. Medians over ``--runs`` children per model and framework.

Goals (issue 3), judged on the Keras export of each registry *model* (blocks are printed for information:
a block of 0.1-2 MB cannot stay within 3x its weights next to the ~20 MB that any trace-and-convert needs):
- peak memory above the baseline at most 3x the model's weight bytes;
- wall time no more than torch's exporter (``torch.onnx.export(dynamo=False)``) takes for the same model.
Exit status 1 when a goal is missed, else 0.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proc_memory import reset_peak, status_mb  # benchmarks/ is the script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]


def child(name: str, framework: str, folder: str) -> None:
    """Exports the model once and prints one JSON line: seconds, the peak above the baseline (MB), and the
    model's weight bytes."""
    import parity
    from parity.counts import keras_count

    if framework == "keras":
        import tf2onnx.convert  # noqa: F401  (imports are the process's cost, not the export's)
    else:
        import torch.onnx  # noqa: F401
    model = parity.build(name, framework)
    spec = parity.get(name)
    shape = (1, spec.input_channels(), *spec.default_shape[2:]) if framework == "torch" else None
    base = reset_peak()  # VmHWM := VmRSS
    t0 = time.perf_counter()
    parity.export_onnx(model, Path(folder) / f"{name}.{framework}.onnx", shape)
    result = dict(seconds=time.perf_counter() - t0, peak_mb=status_mb("VmHWM") - base)
    if framework == "keras":
        result["weight_bytes"] = keras_count(model).total * 4
    else:
        result["weight_bytes"] = sum(t.numel() * t.element_size() for t in model.state_dict().values()
                                     if t.is_floating_point())
    print(json.dumps(result))


def run_child(name: str, framework: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="parity-export-") as folder:
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        out = subprocess.run([sys.executable, __file__, "--child", name, framework, folder], env=env,
                             capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} export of {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="substrings of registry names (default: all)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", nargs=3, metavar=("NAME", "FRAMEWORK", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    sys.path.insert(0, str(ROOT))
    import parity

    names = [n for n in parity.names() if not args.names or any(s in n for s in args.names)]
    if not names:
        print(f"no registry name matches {args.names}; expected substrings of: {', '.join(parity.names())}")
        return 2
    print(f"{'':31}{'Keras (parity.export_onnx)':^22} {'torch (dynamo=False)':^22}")
    print(f"{'model':22} {'weights':>8} {'s':>7} {'peak MB':>14} {'s':>7} {'peak MB':>14}  goals")
    missed = False
    for name in names:
        med = {}
        for fw in ("keras", "torch"):
            runs = [run_child(name, fw) for _ in range(args.runs)]
            med[fw] = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_mb")}
            med[fw]["weights_mb"] = runs[0]["weight_bytes"] / 2**20
        weights = med["keras"]["weights_mb"]
        mem_ratio = med["keras"]["peak_mb"] / weights if weights else float("nan")  # LocalResponseNorm: none
        time_ratio = med["keras"]["seconds"] / med["torch"]["seconds"]
        judged = parity.get(name).kind == "model"
        mem_ok, time_ok = mem_ratio <= 3, time_ratio <= 1  # a NaN ratio is not ok (a comparison with NaN is False)
        verdict = (f"memory {'ok' if mem_ok else 'MISSED'} (<= 3x), "
                   f"time {'ok' if time_ok else 'MISSED'} (<= torch)") if judged else "n/a (block)"
        missed |= judged and not (mem_ok and time_ok)
        cols = [f"{m['seconds']:6.2f}s {m['peak_mb']:6.0f} {m['peak_mb'] / weights if weights else float('nan'):6.2f}x"
                for m in (med["keras"], med["torch"])]
        print(f"{name:22} {med['keras']['weights_mb']:6.1f}MB {cols[0]} {cols[1]}  {verdict}; "
              f"Keras/torch time {time_ratio:.2f}", flush=True)
    print(f"medians of {args.runs} child processes per model and framework; peak = VmHWM - VmRSS just before "
          f"the export (MB = 2**20 bytes); x = peak / weight bytes")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
