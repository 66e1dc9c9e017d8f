"""The ``parity`` command: ``list``, ``check``, ``port``, ``convert`` and ``summary``.

Names and arguments are validated before anything heavy is imported, and each command imports only the
frameworks it needs (``parity check nosuch`` and ``parity summary NAME --framework torch`` never load
TensorFlow). TensorFlow's start-up lines are filtered out unless ``--verbose`` (:mod:`parity.quiet`).
``parity check`` streams: a line when a model starts, its rows and verdict when it ends.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time

from parity import loader, registry
from parity.errors import (CheckpointError, InputShapeError, InvalidArgumentError, ParityError,
                           UnknownModelError)
from parity.tables import format_row, format_table, shape_text

EXAMPLES = """\
examples:
  parity list 'resnet*'                        registry entries matching a pattern
  parity check                                 every registry entry, four runtimes each
  parity check aspp --input-shape 1,1024,7,11  one entry at one input size (N,C,H,W)
  parity check vgg_stage --trace               and the per-layer torch ~ Keras table
  parity check torchvision.models:resnet18 --kwargs '{"weights": null}' --input-shape 1,3,224,224
  parity port resnet50 --from resnet50-0676ba61.pth --to resnet50.weights.h5
  parity summary resnet50 --framework torch    torch's per-layer table, without loading TensorFlow

exit codes:
  0  every check passed
  1  a check, a verification or a parameter count failed
  2  bad input: unknown name, bad shape or size, unreadable or unfitting checkpoint, bad option
"""
PAIR_WIDTHS = (23, 8, 8, 6)  # pair ("onnx:torch ~ onnx:keras"), max abs, relative ("1.23e-05"), result


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("backbone-parity")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _shape(text: str) -> tuple:
    try:
        return tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,C,H,W (for example 1,3,224,224), got {text!r}")


def _out(*lines, stream=None) -> None:
    print(*lines, sep="\n", file=stream or sys.stdout, flush=True)


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return seed


class _Parser(argparse.ArgumentParser):
    """Bad usage in one line (argparse prints the whole usage first), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- list -------------------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    names = registry.names()
    if args.patterns:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in args.patterns)]
        if not names:
            raise UnknownModelError(f"no registry name matches {' or '.join(map(repr, args.patterns))}; "
                                    f"`parity list` shows them all")
    rows = [(s.name, s.kind, shape_text(s.default_shape), f"{s.params.total:,}" if s.params else "-", s.description)
            for s in map(registry.get, names)]
    _out(format_table(("name", "kind", "input (NCHW)", "parameters", "description"), rows))
    return 0


# --- check ------------------------------------------------------------------------------------------------

def _validate_names(names, input_shape) -> None:
    """Unknown names, then (with ``--input-shape``) every entry's shape and size, before any real work."""
    for name in names:
        if not loader.is_target(name):
            registry.get(name)
    if input_shape is not None:
        from parity.sizes import check_entry

        for name in names:
            if not loader.is_target(name):
                check_entry(name, input_shape)


def _model_or_name(name: str, args):
    """A registry name as it is; a MODULE:CALLABLE target loaded (called with ``--kwargs``)."""
    if not loader.is_target(name):
        return name
    return loader.load(name, loader.parse_kwargs(args.kwargs))


def _shapes_text(shapes) -> str:
    shown = ", ".join(shape_text(s) for s in shapes[:3])
    return shown + (f" and {len(shapes) - 3} more" if len(shapes) > 3 else "")


def cmd_check(args) -> int:
    names = args.names or [n for n in registry.names() if not registry.get(n).zoo]  # the zoo: by name
    _validate_names(names, args.input_shape)
    if args.kwargs is not None:
        loader.parse_kwargs(args.kwargs)
    _frameworks(args)
    from parity.engine import RESULT_HEADER, Harness

    widths = (max(len(RESULT_HEADER[0]), *(len(loader.default_name(n) if loader.is_target(n) else n) for n in names)),
              *PAIR_WIDTHS)
    text = not args.json
    if text:
        tolerances = {registry.get(n).tolerance for n in names if not loader.is_target(n)} or {1e-5}
        within = f"<= {tolerances.pop():g}" if len(tolerances) == 1 else "within each spec's tolerance"
        _out(f"parity check: {len(names)} model{'s' if len(names) > 1 else ''} in torch, keras"
             f"{'' if args.no_onnx else ', onnx:torch, onnx:keras'}; PASS: relative error {within} and "
             f"counts as expected", format_row(RESULT_HEADER, widths))
    reports, t0 = [], time.perf_counter()
    for i, name in enumerate(names, 1):
        label = loader.default_name(name) if loader.is_target(name) else name
        shapes = [args.input_shape] if args.input_shape else (
            list(registry.get(name).input_shapes) if not loader.is_target(name) else None)
        if text:
            where = f" at {_shapes_text(shapes)}" if shapes else ""
            _out(f"[{i}/{len(names)}] {label}: running{where}")
        t = time.perf_counter()
        with Harness(_model_or_name(name, args), input_shapes=[args.input_shape] if args.input_shape else None,
                     seed=args.seed, onnx=not args.no_onnx, name=label if loader.is_target(name) else None) as h:
            report = h.report([args.input_shape] if args.input_shape else None)
            report.seconds = time.perf_counter() - t
            reports.append(report)
            if text:
                _out(*(format_row(r, widths) for r in report.rows()),
                     f"[{i}/{len(names)}] {label}: {'PASS' if report.ok else 'FAIL'} in {report.seconds:.1f} s")
                for problem in report.problems:
                    _out(f"  FAIL {label}: {problem}")
            if args.trace:
                shape = args.input_shape or h.spec.default_shape
                stream = sys.stderr if args.json else sys.stdout
                _out(f"{label}: per-layer errors against torch at {shape_text(shape)}", h.trace(shape).table(), stream=stream)
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=1, default=str, allow_nan=False)
        print()
    else:
        passed = sum(r.ok for r in reports)
        _out(f"{passed} passed, {len(reports) - passed} failed in {time.perf_counter() - t0:.1f} s")
    return 0 if all(r.ok for r in reports) else 1


# --- port, convert ----------------------------------------------------------------------------------------

def _pair_table(name, errors, counts, tolerance) -> str:
    from parity.engine import RESULT_HEADER, pair_rows

    return format_table(RESULT_HEADER, pair_rows(name, errors, counts, {"keras": counts["torch"]}, tolerance))


def cmd_port(args) -> int:
    from parity.porting import file_format

    registry.get(args.name)
    file_format(args.src), file_format(args.dst)
    if args.input_shape is not None:
        from parity.sizes import check_entry

        check_entry(args.name, args.input_shape)
    _frameworks(args)
    from parity.errors import VerificationError
    from parity.porting import port

    try:
        report = port(args.name, args.src, args.dst, seed=args.seed, input_shape=args.input_shape)
    except VerificationError as exc:
        r = exc.report
        _out(_pair_table(r.name, r.errors, r.counts, r.tolerance))
        _out(f"parity: FAIL: {exc}", stream=sys.stderr)
        return 1
    _out(_pair_table(report.name, report.errors, report.counts, report.tolerance))
    renamed = f", layer names mapped from {report.renamed}" if report.renamed else ""
    times = ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items())
    _out(f"ported {report.name} {report.direction}: {report.src} -> {report.dst} ({report.tensors} tensors"
         f"{renamed}; verified at {shape_text(report.input_shape)}; {times})")
    return 0


def cmd_convert(args) -> int:
    if not loader.is_target(args.target):
        raise UnknownModelError(f"convert takes MODULE:CALLABLE (torchvision.models:resnet18), got {args.target!r}")
    kwargs = loader.parse_kwargs(args.kwargs)
    _frameworks(args)
    from parity.convert.writer import write_twin
    from parity.errors import VerificationError

    model = loader.load(args.target, kwargs)
    try:
        result = write_twin(model, args.out, input_shape=args.input_shape,
                            name=args.name or loader.default_name(args.target), seed=args.seed)
    except VerificationError as exc:
        _out(exc.report.check.table())
        _out(f"parity: FAIL: {exc}", stream=sys.stderr)
        return 1
    _out(result.check.table())
    worst = max(e.rel for e in result.emitted_errors.values())
    _out(f"converted {result.name} {result.direction}: emitted source checked against the original "
         f"(relative error {worst:.2e}); wrote {', '.join(str(p) for p in result.files.values())} "
         f"in {result.seconds['total']:.1f} s")
    return 0


# --- summary ----------------------------------------------------------------------------------------------

def cmd_summary(args) -> int:
    registry.get(args.name)
    if args.input_shape is not None:
        from parity.sizes import check_entry

        check_entry(args.name, args.input_shape)
    _frameworks(args)
    from parity.summaries import summary

    text, ok = summary(args.name, args.framework, onnx=not args.no_onnx, input_shape=args.input_shape)
    _out(text)
    return 0 if ok else 1


# --- frameworks, parser, main -----------------------------------------------------------------------------

def _frameworks(args) -> None:
    """Loads TensorFlow, if the command needs it, with its start-up lines filtered (kept with ``-v``)."""
    if getattr(args, "framework", "both") == "torch":
        return
    if args.verbose:
        import tf_impl.backend  # noqa: F401
    else:
        from parity.quiet import import_tensorflow

        import_tensorflow()


def _floats(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers (for example 0.1,0.1,0.01), got {text!r}")


_TRAIN_OPTIONS = ("lr", "momentum", "weight_decay", "dampening", "betas", "eps", "alpha", "centered", "amsgrad")


def cmd_train_check(args) -> int:
    """``parity train-check NAME``: K training steps in both frameworks, compared after each (exit 0 pass,
    1 fail, 2 bad input: an unknown name, optimizer or option)."""
    _validate_names([args.name], args.input_shape)
    _frameworks(args)
    from parity.training import train_check

    options = {k: getattr(args, k) for k in _TRAIN_OPTIONS if getattr(args, k) is not None}
    label = loader.default_name(args.name) if loader.is_target(args.name) else None
    report = train_check(_model_or_name(args.name, args), args.optimizer, args.steps, args.seed,
                         input_shape=args.input_shape, loss=args.loss, loss_weights=args.loss_weights,
                         label_smoothing=args.label_smoothing, lr_schedule=args.lr_schedule, dtype=args.dtype,
                         jit=args.jit, name=label, **options)
    print(report.table())
    for p in report.problems:
        print(f"FAIL {report.name}: {p}")
    print(f"{report.name}: {'PASS' if report.ok else 'FAIL'} ({len(report.steps)} steps, {report.seconds:.1f} s)")
    return 0 if report.ok else 1


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="keep TensorFlow's and absl's start-up lines on stderr")
    p = _Parser(prog="parity", parents=[common], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Move CNNs between PyTorch and Keras 3 and prove the move exact: torch, "
                                            "Keras and both ONNX exports agree, parameter counts match.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help="one of:")

    def command(name, func, help_text, description=None):
        c = sub.add_parser(name, parents=[common], help=help_text, description=description or help_text,
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        c.set_defaults(func=func)
        return c

    def shape_option(c, help_text):
        c.add_argument("--input-shape", type=_shape, default=None, metavar="N,C,H,W", help=help_text)

    def seed_option(c, help_text):
        c.add_argument("--seed", type=_seed, default=0, metavar="S", help=help_text)

    c = command("list", cmd_list, "list the registry (names, kinds, default input, parameters)")
    c.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style name patterns such as 'resnet*' "
                                                                  "(default: every entry)")
    c = command("check", cmd_check, "check twins: torch vs Keras vs both ONNX exports, and parameter counts")
    c.add_argument("names", nargs="*", metavar="NAME",
                   help="registry names or MODULE:CALLABLE targets (default: the whole registry)")
    c.add_argument("--kwargs", default=None, metavar="JSON",
                   help="keyword arguments for MODULE:CALLABLE targets, a JSON object")
    c.add_argument("--no-onnx", action="store_true", help="skip the two ONNX exports (torch vs Keras only)")
    c.add_argument("--json", action="store_true", help="print the reports as JSON on stdout, nothing else")
    shape_option(c, "the input shape to check at (default: every shape of the spec)")
    seed_option(c, "seed of the random weights, BatchNorm statistics and inputs (default 0)")
    c.add_argument("--trace", action="store_true", help="also print the per-layer torch ~ Keras table")
    c = command("port", cmd_port, "convert a checkpoint torch <-> Keras, verify it, then write it")
    c.add_argument("name", help="registry name")
    c.add_argument("--from", dest="src", required=True, metavar="SRC",
                   help="source: .pt/.pth/.safetensors (torch) or .weights.h5/.h5/.keras (Keras)")
    c.add_argument("--to", dest="dst", required=True, metavar="DST",
                   help="destination: .pt/.pth/.safetensors/.weights.h5/.keras")
    shape_option(c, "the input shape to verify at (default: the spec's first)")
    seed_option(c, "seed of the random verification input (default 0)")
    c = command("convert", cmd_convert, "write a model's automatic twin as readable source + weights, once proven")
    c.add_argument("target", help="MODULE:CALLABLE returning a torch module or a Keras model")
    c.add_argument("--out", required=True, help="folder for <name>_keras.py or <name>_torch.py, the weights and "
                                                "<name>.report.json (created if missing)")
    shape_option(c, "the input shape (required for a torch module)")
    c.add_argument("--kwargs", default=None, metavar="JSON",
                   help='keyword arguments for the callable, a JSON object such as \'{"weights": null}\'')
    c.add_argument("--name", default=None, help="file name stem (default: the callable's name)")
    seed_option(c, "seed of the random weights of the check (default 0)")
    c = command("summary", cmd_summary, "per-layer tables: torch, Keras, or both reconciled (with ONNX counts)")
    c.add_argument("name", help="registry name")
    c.add_argument("--framework", choices=("torch", "keras", "both"), default="both",
                   help="torch or keras: that framework's table only (torch loads no TensorFlow); both (default): "
                        "both tables, the side-by-side reconciliation and the ONNX counts")
    c.add_argument("--no-onnx", action="store_true", help="skip the ONNX initializer counts")
    shape_option(c, "the input shape of the tables (default: the spec's first)")
    c = command("train-check", cmd_train_check, "train the twins K steps alike and compare them after each step")
    c.add_argument("name", help="registry name or MODULE:CALLABLE target")
    c.add_argument("--optimizer", default="sgd", help="sgd, sgd-momentum, nesterov, adam, adamw or rmsprop "
                                                      "(default sgd)")
    c.add_argument("--steps", type=int, default=3, metavar="K", help="training steps (default 3)")
    c.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's, see README)")
    c.add_argument("--lr-schedule", type=_floats, default=None, metavar="LR,LR,...",
                   help="one learning rate per step: 0.1,0.1,0.01")
    for flag in ("momentum", "weight-decay", "dampening", "eps", "alpha"):
        c.add_argument(f"--{flag}", type=float, default=None, help="torch's argument of that name")
    c.add_argument("--betas", type=_floats, default=None, metavar="B1,B2", help="Adam's and AdamW's betas")
    c.add_argument("--centered", action="store_const", const=True, default=None, help="RMSprop centered")
    c.add_argument("--amsgrad", action="store_const", const=True, default=None, help="Adam/AdamW amsgrad")
    c.add_argument("--loss", default=None, help="cross_entropy or mse for every output (default: cross-entropy "
                                                "for (N, K) logits, MSE otherwise)")
    c.add_argument("--loss-weights", type=_floats, default=None, metavar="W,W,...", help="one weight per output")
    c.add_argument("--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing (default 0)")
    c.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    c.add_argument("--jit", action="store_true", help="the Keras step under XLA (float64 kernels TensorFlow lacks)")
    shape_option(c, "the input shape (default: the spec's, batch >= 2)")
    c.add_argument("--kwargs", default=None, metavar="JSON",
                   help="keyword arguments for MODULE:CALLABLE targets, a JSON object")
    seed_option(c, "seed of the random weights, statistics, batches and targets (default 0)")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    if args.command is None:
        p.print_help()
        return 0
    try:
        return args.func(args)
    except (UnknownModelError, InputShapeError, CheckpointError, InvalidArgumentError) as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return 2
    except ParityError as exc:  # twins that do not match, an unreadable ONNX file: the check fails
        print(f"parity: FAIL: {exc}", file=sys.stderr)
        return 1
