"""Every error backbone-parity raises on bad input. Each message names what was expected and what was
received. Light module: the CLI imports it without importing torch or TensorFlow."""


class ParityError(Exception):
    """Base class."""


class UnknownModelError(ParityError, LookupError):
    """A name that is not in the registry."""


class InputShapeError(ParityError, ValueError):
    """An input shape of the wrong rank, layout or size."""


class InvalidArgumentError(ParityError, ValueError):
    """An argument of the wrong type or range that is not a shape or a file: a negative or non-integer seed,
    an unknown optimizer or loss name, an optimizer argument that optimizer does not take, a learning-rate
    schedule of the wrong length. The message names what was expected and what was received."""


class OnnxFileError(ParityError, ValueError):
    """A missing, unreadable or invalid ONNX file, or an export destination that cannot be written."""


class TransferError(ParityError, ValueError):
    """A transfer that cannot be exact. ``.report`` holds every problem found; the message names the first,
    with the expected and the received shape or value. The destination is left unchanged."""

    def __init__(self, report):
        self.report = report
        problems = report.problems()
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"transfer {report.direction} failed, destination unchanged: {problems[0]}{more}\n"
                         + str(report))


class CheckpointError(ParityError, ValueError):
    """A checkpoint that cannot be ported: unknown extension, unreadable (truncated, corrupted) file, another
    architecture (first missing / unexpected tensors named), or a tensor whose shape or dtype does not fit
    (name, expected and received shape). Nothing was written."""


class VerificationError(ParityError):
    """A ported pair whose outputs disagree beyond tolerance. ``.report`` is the :class:`parity.porting.PortReport`;
    nothing was written."""

    def __init__(self, message: str, report):
        self.report = report
        super().__init__(message)


class ExportError(ParityError, NotImplementedError):
    """An ONNX exporter that cannot write the model (torch's has no symbolic for an op, such as
    ``aten::_upsample_nearest_exact2d``): that runtime cannot be checked, so the check fails. The message names
    the exporter, the model and the exporter's own reason. Nothing was written."""


class UnsupportedOpError(ParityError, NotImplementedError):
    """A node of a source graph (a torch.fx node, a Keras layer) that no converter maps, or a graph that
    cannot be read (torch.fx cannot trace it). The message names the node, where it comes from (the module
    path, or the function and its source line), the op, and the ops that are supported. Never a silent
    approximation."""
