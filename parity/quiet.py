"""TensorFlow imported without its start-up lines, for the CLI.

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

START_UP_LINES = (  # each a whole line that TensorFlow writes while it loads
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"),
    re.compile(r"I\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] .*"),
)


def _noise(line: str) -> bool:
    return any(p.fullmatch(line) for p in START_UP_LINES)


def import_tensorflow() -> None:
    """Imports ``tf_impl.backend`` (the backend pin, Keras and TensorFlow) with TensorFlow's start-up lines
    filtered out of stderr; anything else written meanwhile is passed on. Does nothing once TensorFlow is
    loaded."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tf_impl.backend  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not _noise(line.rstrip("\r\n")))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
