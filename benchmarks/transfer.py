"""Weight-transfer speed per registry model, both directions, against a raw copy of the same bytes.

    PYTHONPATH=. python benchmarks/transfer.py [NAME ...] [--runs 5] [--goal 10]

For each model (every registry entry, or those whose name contains one of NAME): the torch twin is
randomised, then ``parity.transfer`` runs torch -> Keras and Keras -> torch ``--runs`` times each, after
one warm-up, and the raw baseline is ``np.copyto`` of every source tensor into a preallocated, already
written array of the same shape. Medians are printed with their ratio to the raw copy. Every run is
checked bit-exact (torch -> Keras -> torch gives back the same bytes).

The goal (issue 3: at most 10x the raw copy) is judged for models of at least ``--goal-mb`` MB (default
64, i.e. VGG19); below that a fixed cost per tensor (a few TensorFlow op dispatches, ~0.1-1 ms each) is
all there is to measure, and the ratio is printed without a verdict. Exit status 1 when a judged model
misses the goal, else 0.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

import parity
from parity.randomize import randomize_torch


def median_seconds(fn, runs: int) -> float:
    fn()  # warm-up: first-call costs (tracing, allocator) are not what this measures
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, runs: int) -> dict:
    torch_model = randomize_torch(parity.build(name, "torch"), seed=0)
    keras_model = parity.build(name, "keras")
    sources = [t.detach().numpy() for t in torch_model.state_dict().values() if t.is_floating_point()]
    targets = [np.full_like(a, 1.0) for a in sources]  # written once, so no page faults in the baseline

    def raw():
        for dst, src in zip(targets, sources):
            np.copyto(dst, src)

    expected = {k: v.clone() for k, v in torch_model.state_dict().items()}
    raw_s = median_seconds(raw, runs)
    to_keras = median_seconds(lambda: parity.transfer(torch_model, keras_model), runs)
    to_torch = median_seconds(lambda: parity.transfer(keras_model, torch_model), runs)
    for k, v in torch_model.state_dict().items():
        if not torch.equal(v, expected[k]):
            raise AssertionError(f"{name}: {k} changed in the torch -> Keras -> torch round trip")
    return dict(name=name, tensors=len(sources), mb=sum(a.nbytes for a in sources) / 1e6, raw=raw_s,
                to_keras=to_keras, to_torch=to_torch)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="substrings of registry names (default: all)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--goal", type=float, default=10.0, help="maximum transfer / raw-copy ratio")
    ap.add_argument("--goal-mb", type=float, default=64.0, help="judge the goal from this weight size on")
    args = ap.parse_args(argv)
    names = [n for n in parity.names() if not args.names or any(s in n for s in args.names)]
    if not names:
        print(f"no registry name matches {args.names}; expected substrings of: {', '.join(parity.names())}")
        return 2
    print(f"{'model':22} {'tensors':>7} {'MB':>8} {'raw copy':>9} {'torch->Keras':>16} {'Keras->torch':>16}  goal")
    missed = False
    for name in names:
        r = bench(name, args.runs)
        ratios = (r["to_keras"] / r["raw"], r["to_torch"] / r["raw"])
        judged = r["mb"] >= args.goal_mb
        ok = max(ratios) <= args.goal
        missed |= judged and not ok
        verdict = (("ok" if ok else "MISSED") + f" (<= {args.goal:g}x)") if judged else "n/a (small)"
        print(f"{name:22} {r['tensors']:7d} {r['mb']:8.1f} {r['raw'] * 1e3:7.1f}ms "
              f"{r['to_keras'] * 1e3:7.0f}ms {ratios[0]:5.1f}x {r['to_torch'] * 1e3:7.0f}ms {ratios[1]:5.1f}x  "
              f"{verdict}", flush=True)
    print(f"medians of {args.runs} runs after a warm-up; round trips checked bit-exact")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
