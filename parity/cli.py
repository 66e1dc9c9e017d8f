"""Command line: ``parity list``, ``parity check [NAME ...] [--trace]``, ``parity port NAME --from SRC --to DST``
and ``parity summary NAME [--framework torch|keras|both]``.

Exit codes: 0 all checks pass; 1 a check fails (numbers, counts, a transfer that cannot be exact, an
unreadable ONNX file, ported twins that disagree); 2 bad usage or bad input (unknown name, bad shape, a
checkpoint that cannot be read or does not fit).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from parity import loader, registry
from parity.tables import format_table
from parity.errors import CheckpointError, InputShapeError, ParityError, UnknownModelError


def _fmt_count(c) -> str:
    return f"{c.total:,} ({c.trainable:,}+{c.statistics:,})" if hasattr(c, "trainable") else f"{c:,}"


def _shape(text: str) -> tuple:
    try:
        return tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,C,H,W (for example 1,3,224,224), got {text!r}")


def cmd_list(args) -> int:
    rows = [(s.name, s.kind, "x".join(map(str, s.default_shape)), f"{s.params.total:,}", s.description)
            for s in map(registry.get, registry.names())]
    _table(("name", "kind", "input (NCHW)", "params", "description"), rows)
    return 0


def _table(header, rows) -> None:
    print(format_table(header, rows))


def report_rows(report) -> list[tuple]:
    """One row per runtime pair: model, pair, max abs error, relative error, the two counts, PASS/FAIL."""
    rows = []
    for pair, err in report.errors.items():
        a, b = pair.split(" ~ ")
        counts = f"{_fmt_count(report.counts[a])} | {_fmt_count(report.counts[b])}"
        verdict = "PASS" if err.within(report.tolerance) else "FAIL"
        rows.append((report.name, pair, f"{err.max_abs:.2e}", f"{err.rel:.2e}", counts, verdict))
    return rows


def _model_or_name(name: str, args):
    """A registry name as it is; a MODULE:CALLABLE target loaded (called with ``--kwargs``)."""
    if not loader.is_target(name):
        return name
    return loader.load(name, loader.parse_kwargs(args.kwargs))


def cmd_check(args) -> int:
    from parity.engine import check

    names = args.names or [n for n in registry.names() if "zoo" not in registry.get(n).marks]  # zoo: by name
    for name in names:
        if not loader.is_target(name):
            registry.get(name)  # unknown names fail before any work
    reports, rows = [], []
    t0 = time.perf_counter()
    for name in names:
        label = loader.default_name(name) if loader.is_target(name) else None
        report = check(_model_or_name(name, args), input_shape=args.input_shape, onnx=not args.no_onnx,
                       seed=args.seed, name=label)
        reports.append(report)
        rows += report_rows(report)
        if not args.json:
            print(f"{name}: {'PASS' if report.ok else 'FAIL'} ({len(report.per_shape)} input shapes, "
                  f"{report.seconds:.1f} s)", file=sys.stderr)
        if args.trace:
            _print_trace(name, args)
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=1, default=str)
        print()
    else:
        _table(("model", "pair", "max abs", "rel", "params (total (trainable+stats) | ...)", "result"), rows)
        for r in reports:
            for p in r.problems:
                print(f"FAIL {r.name}: {p}")
        passed = sum(r.ok for r in reports)
        print(f"{passed} passed, {len(reports) - passed} failed in {time.perf_counter() - t0:.1f} s "
              f"(tolerance: relative error <= {reports[0].tolerance:g} unless a spec says otherwise)")
    return 0 if all(r.ok for r in reports) else 1


def _print_trace(name: str, args) -> None:
    """The per-layer torch ~ Keras table at ``--input-shape`` (default: the spec's first shape)."""
    from parity.engine import Harness

    with Harness(name, seed=args.seed, onnx=False) as h:
        shape = args.input_shape or h.spec.default_shape
        print(f"{name}: per-layer torch ~ keras at {tuple(shape)}", file=sys.stderr)
        print(h.trace(shape).table(), file=sys.stderr if args.json else sys.stdout)


def cmd_port(args) -> int:
    from parity.errors import VerificationError
    from parity.porting import port

    try:
        report = port(args.name, args.src, args.dst, seed=args.seed, input_shape=args.input_shape)
    except VerificationError as exc:
        report = exc.report
        _table(("model", "pair", "max abs", "rel", "params (total (trainable+stats) | ...)", "result"),
               report_rows(report))
        print(f"parity: FAIL: {exc}", file=sys.stderr)
        return 1
    _table(("model", "pair", "max abs", "rel", "params (total (trainable+stats) | ...)", "result"),
           report_rows(report))
    renamed = f", layer names mapped from {report.renamed}" if report.renamed else ""
    times = ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items())
    print(f"ported {report.name} {report.direction}: {report.src} -> {report.dst} ({report.tensors} tensors"
          f"{renamed}; verified at {report.input_shape}; {times})")
    return 0


def cmd_convert(args) -> int:
    from parity.convert.writer import write_twin
    from parity.errors import VerificationError

    if not loader.is_target(args.target):
        raise UnknownModelError(f"convert takes MODULE:CALLABLE (torchvision.models:resnet18), got {args.target!r}")
    kwargs = loader.parse_kwargs(args.kwargs)
    model = loader.load(args.target, kwargs)
    try:
        result = write_twin(model, args.out, input_shape=args.input_shape,
                        name=args.name or loader.default_name(args.target), seed=args.seed)
    except VerificationError as exc:
        _table(("model", "pair", "max abs", "rel", "params (total (trainable+stats) | ...)", "result"),
               report_rows(exc.report.check))
        print(f"parity: FAIL: {exc}", file=sys.stderr)
        return 1
    _table(("model", "pair", "max abs", "rel", "params (total (trainable+stats) | ...)", "result"),
           report_rows(result.check))
    worst = max(e.rel for e in result.emitted_errors.values())
    print(f"converted {result.name} {result.direction}: emitted source checked against the original "
          f"(relative error {worst:.2e}); wrote {', '.join(str(p) for p in result.files.values())} "
          f"in {result.seconds['total']:.1f} s")
    return 0


def cmd_summary(args) -> int:
    from parity.summary import summary

    text, ok = summary(args.name, args.framework, onnx=not args.no_onnx, input_shape=args.input_shape)
    print(text)
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="parity", description="PyTorch <-> Keras twin parity checks")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registry").set_defaults(func=cmd_list)
    c = sub.add_parser("check", help="check twins: torch vs Keras vs ONNX, and parameter counts")
    c.add_argument("names", nargs="*", help="registry names or MODULE:CALLABLE targets (default: the registry)")
    c.add_argument("--kwargs", default=None, help="JSON object of keyword arguments for MODULE:CALLABLE targets")
    c.add_argument("--no-onnx", action="store_true", help="skip the ONNX exports")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--input-shape", type=_shape, default=None, help="N,C,H,W (default: the spec's shapes)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--trace", action="store_true", help="print the per-layer torch ~ Keras divergence table")
    c.set_defaults(func=cmd_check)
    p_ = sub.add_parser("port", help="convert a checkpoint torch <-> Keras, verify, then write it")
    p_.add_argument("name", help="registry name")
    p_.add_argument("--from", dest="src", required=True,
                    help="source: .pt/.pth/.safetensors (torch) or .weights.h5/.h5/.keras (Keras)")
    p_.add_argument("--to", dest="dst", required=True, help="destination: .pt/.pth/.safetensors/.weights.h5/.keras")
    p_.add_argument("--input-shape", type=_shape, default=None, help="N,C,H,W to verify at (default: the spec's)")
    p_.add_argument("--seed", type=int, default=0)
    p_.set_defaults(func=cmd_port)
    v_ = sub.add_parser("convert", help="write a model's automatic twin as readable source + weights, once proven")
    v_.add_argument("target", help="MODULE:CALLABLE returning a torch module or a Keras model")
    v_.add_argument("--out", required=True, help="folder for <name>_keras.py or <name>_torch.py, the weights and "
                                                 "<name>.report.json (created if missing)")
    v_.add_argument("--input-shape", type=_shape, default=None, help="N,C,H,W (required for a torch module)")
    v_.add_argument("--kwargs", default=None, help='JSON object of keyword arguments for the callable, e.g. '
                                                   '\'{"weights": null}\'')
    v_.add_argument("--name", default=None, help="file name stem (default: the callable's name)")
    v_.add_argument("--seed", type=int, default=0, help="seed of the random weights of the check")
    v_.set_defaults(func=cmd_convert)
    s_ = sub.add_parser("summary", help="per-layer tables: torch, Keras, or both reconciled (with ONNX counts)")
    s_.add_argument("name", help="registry name")
    s_.add_argument("--framework", choices=("torch", "keras", "both"), default="both")
    s_.add_argument("--no-onnx", action="store_true", help="skip the ONNX initializer counts")
    s_.add_argument("--input-shape", type=_shape, default=None, help="N,C,H,W (default: the spec's first)")
    s_.set_defaults(func=cmd_summary)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownModelError, InputShapeError, CheckpointError) as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return 2
    except ParityError as exc:  # twins that do not match, an unreadable ONNX file: the check fails
        print(f"parity: FAIL: {exc}", file=sys.stderr)
        return 1
