"""Writes that fail: checked before any work, turned into one-line errors, never half done, never leaving
temporaries of ours behind; long names, file modes, upper-case extensions, a full disk."""
import os
import shutil
import stat
import time
import zipfile
from collections import namedtuple

import pytest
import torch

import parity
from parity import cli, porting, safe_write
from parity.randomize import randomize_torch

NAME = "resnet_conv_bn"  # 9,664 parameters, 3 input channels: the registry's smallest block with weights


@pytest.fixture
def checkpoint(tmp_path):
    module = randomize_torch(parity.build(NAME, "torch"), seed=2)
    path = tmp_path / "src" / "block.pt"
    path.parent.mkdir()
    torch.save(module.state_dict(), path)
    return path


def _listing(folder) -> list:
    return sorted(p.name for p in folder.iterdir())


def unwritable_folder(tmp_path):
    """A folder in which no file can be created: permission bits where they bind (not for root), else a
    sysfs folder, which refuses new files even to root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, "/sys/kernel"):
        try:
            probe = os.path.join(candidate, ".parity-probe")
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY))
            os.remove(probe)
        except OSError:
            return candidate
    pytest.skip("no folder here refuses a new file (root without sysfs)")


@pytest.fixture
def no_build(monkeypatch):
    """Fails the test if a model is built: the destination must be refused before any expensive work."""
    def build(*args, **kwargs):
        raise AssertionError("a model was built before the destination was checked")

    monkeypatch.setattr(porting, "build", build)


@pytest.mark.parametrize("case, expected", [
    ("read-only folder", r"expected a writable folder for .*out\.weights\.h5, cannot create a file in"),
    ("destination is a directory", r"expected a file name for the destination, .*out\.weights\.h5 is a directory"),
    ("missing parent", r"expected an existing folder for .*out\.weights\.h5, .*nowhere does not exist"),
    ("parent is a file", r"expected a folder for .*out\.weights\.h5, .*afile is not a directory"),
])
def test_an_unwritable_destination_is_refused_before_anything_is_built(tmp_path, checkpoint, no_build, case,
                                                                       expected):
    (tmp_path / "afile").write_text("x")
    dst = {"read-only folder": lambda: os.path.join(unwritable_folder(tmp_path), "out.weights.h5"),
           "destination is a directory": lambda: tmp_path / "out.weights.h5",
           "missing parent": lambda: tmp_path / "nowhere" / "out.weights.h5",
           "parent is a file": lambda: tmp_path / "afile" / "out.weights.h5"}[case]()
    if case == "destination is a directory":
        os.mkdir(dst)
    before = _listing(tmp_path)
    with pytest.raises(parity.CheckpointError, match=expected) as info:
        parity.port(NAME, checkpoint, dst)
    print(f"{case}: {info.value}")
    assert "\n" not in str(info.value) and _listing(tmp_path) == before


def test_a_write_error_is_a_checkpoint_error_exit_2_and_leaves_nothing(tmp_path, checkpoint, monkeypatch, capsys):
    def full_disk(model, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(porting.WRITERS, "state_dict", full_disk)
    dst = tmp_path / "out.pt"
    assert cli.main(["port", NAME, "--from", str(checkpoint), "--to", str(dst)]) == 2
    err = capsys.readouterr().err
    print(err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("parity: error: cannot write ") and "out.pt: No space left on device" in err
    assert _listing(tmp_path) == ["src"]


def test_h5_is_not_written_when_free_space_is_short(tmp_path, checkpoint, monkeypatch):
    """h5py meets ENOSPC with a segmentation fault, so the space is checked first (a small free figure,
    not a full disk, stands in for it here)."""
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(parity.CheckpointError, match=r"not enough free space in .*: expected about 1\.\d MiB, "
                                                     r"0\.0 MiB free"):
        parity.port(NAME, checkpoint, tmp_path / "out.weights.h5")
    assert _listing(tmp_path) == ["src"]


def test_a_240_character_destination_name_works(tmp_path, checkpoint):
    dst = tmp_path / ("b" * (240 - len(".weights.h5")) + ".weights.h5")
    assert len(dst.name) == 240
    report = parity.port(NAME, checkpoint, dst)
    assert report.ok and _listing(tmp_path) == sorted([dst.name, "src"])


def test_stale_temporaries_of_ours_are_cleaned_and_nothing_else(tmp_path, checkpoint):
    dead = tmp_path / ".parity-999999999-deadbeef.weights.h5"  # a process that no longer runs (kill -9)
    old = tmp_path / ".parity-1-0badf00d.keras"  # pid 1 lives, but the file is two days old
    live = tmp_path / ".parity-1-c0ffee00.pt"  # pid 1, fresh: maybe another writer's, left alone
    theirs = tmp_path / ".hidden-of-someone-else.weights.h5"
    for p in (dead, old, live, theirs):
        p.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    parity.port(NAME, checkpoint, tmp_path / "out.weights.h5")
    assert _listing(tmp_path) == sorted([live.name, theirs.name, "out.weights.h5", "src"])


def test_modes_new_files_get_the_umask_default_replaced_ones_keep_theirs(tmp_path, checkpoint):
    old = os.umask(0o022)
    try:
        parity.port(NAME, checkpoint, tmp_path / "new.pth")
        kept = tmp_path / "kept.safetensors"
        kept.write_bytes(b"previous")
        kept.chmod(0o640)
        parity.port(NAME, checkpoint, kept)
    finally:
        os.umask(old)
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in (tmp_path / "new.pth", kept)}
    print(modes)
    assert modes == {"new.pth": "0o644", "kept.safetensors": "0o640"}


def test_upper_case_extensions_round_trip(tmp_path, checkpoint):
    """``--to UP2.KERAS`` then ``--from UP2.KERAS``: Keras's loader wants a lower-case ``.keras`` name."""
    keras_file, back = tmp_path / "UP2.KERAS", tmp_path / "BACK.PTH"
    parity.port(NAME, checkpoint, keras_file)
    report = parity.port(NAME, keras_file, back)
    assert report.ok and report.direction == "keras -> torch"
    start, end = torch.load(checkpoint, weights_only=True), torch.load(back, weights_only=True)
    assert all(torch.equal(start[k], end[k]) for k in start if start[k].is_floating_point())


def test_a_keras_file_that_does_not_parse_is_not_reported_missing(tmp_path):
    garbage = tmp_path / "broken.keras"
    garbage.write_bytes(b"\x00not a zip archive" * 50)
    with pytest.raises(parity.CheckpointError, match=r"cannot read .*broken\.keras as a keras file \(truncated or "
                                                     r"corrupted\?\): not a zip archive") as info:
        parity.port(NAME, garbage, tmp_path / "out.pt")
    not_a_model = tmp_path / "other.keras"
    with zipfile.ZipFile(not_a_model, "w") as z:
        z.writestr("readme.txt", "a zip, but no Keras model")
    with pytest.raises(parity.CheckpointError, match=r"cannot read .*other\.keras as a keras file") as other:
        parity.port(NAME, not_a_model, tmp_path / "out.pt")
    for exc in (info.value, other.value):
        print(exc)
        assert "not found" not in str(exc).lower()


def test_the_temporary_name_is_short_and_ours():
    name = safe_write.temp_name(".weights.h5")
    assert len(name) <= 40 and safe_write._TEMP.match(name)


def test_convert_writer_writes_through_safe_write(tmp_path, monkeypatch):
    """``parity convert``'s three files: all or nothing, the umask default mode, no temporaries left."""
    from parity.convert import writer

    module = parity.build(NAME, "torch")
    result = type("Result", (), {"to_dict": lambda self: {"ok": True}, "seconds": {}})()
    files = {"source": tmp_path / "m_torch.py", "weights": tmp_path / "m.safetensors",
             "report": tmp_path / "m.report.json"}
    old = os.umask(0o022)
    try:
        writer._write_all(files, "x = 1\n", module, False, result, {"start": 0.0})
    finally:
        os.umask(old)
    assert _listing(tmp_path) == ["m.report.json", "m.safetensors", "m_torch.py"]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files.values()} == {"0o644"}
    for p in files.values():
        p.unlink()
    monkeypatch.setattr("safetensors.torch.save_file", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(parity.CheckpointError, match="cannot write .*: full"):
        writer._write_all(files, "x = 1\n", module, False, result, {"start": 0.0})
    assert _listing(tmp_path) == []
