"""TensorFlow imported without its start-up lines, for the CLI; and file descriptors captured around C++ code
that writes to them directly (torch's ONNX exporter prints its IR graph on an error: ``parity.onnx_io``).

While TensorFlow's libraries load, its C++ code writes "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR" and the oneDNN notice ("oneDNN custom operations are
on ...") straight to file descriptor 2, twice (two shared libraries), before absl's logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot filter them. ``TF_ENABLE_ONEDNN_OPTS=0`` would hide the notice by turning
oneDNN off, which changes TensorFlow's kernels and so the numbers we report.

Instead, descriptor 2 points at a temporary file for the length of the import; afterwards the known start-up
lines are dropped and every other byte is written to stderr as it came (a real error is never hidden). Only
where those bytes go changes: TensorFlow computes exactly as before (``tests/test_cli.py`` compares the
reported errors with and without ``--verbose``).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

START_UP_LINES = (  # each a whole line that TensorFlow writes while it loads
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"),
    re.compile(r"I\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] .*"),
)


def _noise(line: str) -> bool:
    return any(p.fullmatch(line) for p in START_UP_LINES)


@contextmanager
def captured(fd: int):
    """Points file descriptor ``fd`` (1 or 2) at a temporary file for the length of the block (C++ code writes
    there directly, past ``sys.stdout``/``sys.stderr``) and yields a list that receives the captured lines
    when the block ends, with an exception too. Nothing reaches the real descriptor: the caller passes on
    what it keeps (:func:`pass_on`)."""
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    lines: list[str] = []
    try:
        saved = os.dup(fd)
    except OSError:  # no such descriptor (a process started with it closed): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), fd)
        try:
            yield lines
        finally:
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            file.seek(0)
            lines += file.read().decode(errors="replace").splitlines(keepends=True)


def pass_on(lines: list[str], fd: int = 2) -> None:
    """Writes ``lines`` to stdout (``fd`` 1) or stderr (2)."""
    stream = sys.stdout if fd == 1 else sys.stderr
    if lines:
        stream.write("".join(lines))
        stream.flush()


def import_tensorflow() -> None:
    """Imports ``tf_impl.backend`` (the backend pin, Keras and TensorFlow) with TensorFlow's start-up lines
    filtered out of stderr; anything else written meanwhile is passed on. Does nothing once TensorFlow is
    loaded."""
    if "tensorflow" in sys.modules:
        return
    lines: list[str] = []
    try:
        with captured(2) as lines:
            import tf_impl.backend  # noqa: F401
    finally:
        pass_on([line for line in lines if not _noise(line.rstrip("\r\n"))])
