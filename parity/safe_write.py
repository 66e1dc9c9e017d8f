"""Writing result files so that a failure, a full disk or a crash can never leave a half-written destination.

Used by ``parity port`` (:mod:`parity.porting`), ``parity convert`` (:mod:`parity.convert.writer`) and
:func:`parity.export_onnx`. The rules:

- :func:`check_destination` runs before any expensive work: the destination must not be a directory, its
  folder must exist and be a folder, and a file must be creatable there (probed by creating and removing a
  temporary file, which also catches a read-only file system and names too long for it; ``os.access``
  would not, as it says yes to root).
- Every file is written to a temporary name in the destination's own folder (same file system, so
  ``os.replace`` moves it into place atomically) and moved only once all of them are complete. The
  destination is therefore complete or untouched, whatever happens.
- Temporary names are short and ours: ``.parity-<pid>-<8 hex><extension>`` (at most about 40 characters, so
  a 240-character destination name still works). A crash (``kill -9``) can leave one behind; the next write
  into that folder removes every one of ours whose process is gone or that is older than a day.
- Free space is checked against the expected size plus a margin before writing: h5py meets ENOSPC with a
  segmentation fault, not an exception.
- A replaced file keeps its permission bits; a new one gets the umask default (``0o666 & ~umask``), as any
  ``open()`` would give it, not ``mkstemp``'s 0600.
- Any ``OSError`` while writing becomes the caller's error class (:class:`CheckpointError` by default): one
  line naming the destination and the cause.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from parity.errors import CheckpointError

TEMP_PREFIX = ".parity-"
_TEMP = re.compile(r"^\.parity-(?P<pid>\d+)-[0-9a-f]{8}(\.[A-Za-z0-9.]+)?$")
STALE_SECONDS = 24 * 3600  # an older temporary of ours is stale even if its process id was reused
SPACE_MARGIN = 1.1  # h5 and zip headers, per-tensor metadata: 10% over the raw bytes, plus 1 MiB
SPACE_SLACK = 1 << 20


def temp_name(suffix: str = "") -> str:
    """A short temporary file name of our own pattern, ending in ``suffix`` (Keras needs its extension)."""
    return f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Removes our temporary files in ``folder`` whose process is gone or that are older than a day; returns
    them. Files of other names are never touched."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(m["pid"])
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if old or (pid != os.getpid() and not _alive(pid)):
                os.remove(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
    return removed


def check_destination(dst, extensions=None, error=CheckpointError) -> Path:
    """``dst`` as a Path once it is known to be writable; raises ``error`` naming what was expected.

    ``extensions``: accepted endings (lower case, compared case-insensitively), or None for any."""
    dst = Path(dst)
    if extensions and not dst.name.lower().endswith(tuple(extensions)):
        raise error(f"expected a destination ending in {', '.join(extensions)}, got {dst}")
    if dst.is_dir():
        raise error(f"expected a file name for the destination, {dst} is a directory")
    folder = dst.parent
    if not folder.exists():
        raise error(f"expected an existing folder for {dst}, {folder} does not exist")
    if not folder.is_dir():
        raise error(f"expected a folder for {dst}, {folder} is not a directory")
    probe = folder / temp_name(".probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.remove(probe)
    except OSError as exc:
        raise error(f"expected a writable folder for {dst}, cannot create a file in {folder}: "
                    f"{exc.strerror or exc}") from None
    if len(dst.name.encode()) > _name_max(folder):
        raise error(f"expected a file name of at most {_name_max(folder)} bytes, got {len(dst.name.encode())}: "
                    f"{dst.name[:40]}...")
    return dst


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_space(folder, expected_bytes: int, error=CheckpointError) -> None:
    """Raises ``error`` when ``folder`` has less free space than ``expected_bytes`` plus the margin."""
    need = int(expected_bytes * SPACE_MARGIN) + SPACE_SLACK
    free = shutil.disk_usage(folder).free
    if free < need:
        raise error(f"not enough free space in {folder}: expected about {need / 2**20:.1f} MiB, "
                    f"{free / 2**20:.1f} MiB free")


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)  # no /proc: read it by setting it (not thread-safe, hence /proc first)
    os.umask(mask)
    return mask


def _suffix(dst: Path, extensions) -> str:
    """The destination's extension in lower case (the longest of ``extensions`` that fits, else its last)."""
    name = dst.name.lower()
    for ext in sorted(extensions or (), key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return dst.suffix.lower()


@contextmanager
def staged(*destinations, expected_bytes: int = 0, extensions=None, error=CheckpointError):
    """Yields one temporary path per destination (same folder, short name of our pattern, the destination's
    extension in lower case). On a normal exit every temporary is moved onto its destination
    (``os.replace``; an existing destination's mode kept, a new one given the umask default); on an
    exception every temporary is removed and no destination is touched. ``OSError`` becomes ``error``."""
    dsts = [check_destination(d, extensions, error) for d in destinations]
    for folder in {d.parent for d in dsts}:
        clean_stale(folder)
        check_space(folder, expected_bytes, error)
    temps = [d.parent / temp_name(_suffix(d, extensions)) for d in dsts]
    try:
        yield temps
        for tmp, dst in zip(temps, dsts):
            _set_mode(tmp, dst)
        for tmp, dst in zip(temps, dsts):
            os.replace(tmp, dst)
    except OSError as exc:
        raise error(f"cannot write {dsts[0] if len(dsts) == 1 else dsts[0].parent}: "
                    f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")) from None
    finally:
        for tmp in temps:
            if os.path.lexists(tmp):
                os.remove(tmp)


def _set_mode(tmp: Path, dst: Path) -> None:
    mode = stat.S_IMODE(os.stat(dst).st_mode) if dst.exists() else 0o666 & ~_umask()
    os.chmod(tmp, mode)
