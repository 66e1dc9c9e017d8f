"""Fixtures for the registry-driven parity tests, and a closing table of every measured error."""
import pytest

from parity.engine import Harness
from parity.registry import get, names

MEASURED: list[tuple] = []


def record(name: str, input_shape, errors: dict) -> None:
    for pair, err in errors.items():
        MEASURED.append((name, "x".join(map(str, input_shape)), pair, err.max_abs, err.rel))


def marked(name: str, *values, id: str | None = None):
    """``pytest.param(*values)`` with the registry entry's marks (``zoo``: heavy, ``pytest -m zoo``)."""
    return pytest.param(*values, marks=[getattr(pytest.mark, m) for m in get(name).marks], id=id or name)


def pytest_generate_tests(metafunc):
    """``harness`` runs once per registry entry (module scope: pytest groups the tests of one entry and
    frees it before building the next); ``input_shape`` runs over that entry's shapes. Entries marked
    ``zoo`` carry the mark: ``pytest parity/`` deselects them (pyproject's ``-m "not zoo"``)."""
    if "harness" not in metafunc.fixturenames:
        return
    if "input_shape" in metafunc.fixturenames:
        cases = [marked(n, n, s, id=f"{n}-{'x'.join(map(str, s))}") for n in names() for s in get(n).input_shapes]
        metafunc.parametrize(["harness", "input_shape"], cases, indirect=["harness"], scope="module")
    else:
        metafunc.parametrize("harness", [marked(n, n) for n in names()], indirect=True, scope="module")


def pytest_collection_modifyitems(items):
    """Puts the tests of one registry entry next to each other within each file, so that every harness is
    built once. pytest's own grouping goes by parameter index, which differs between the (entry, shape)
    cases and the plain entry list, and split the first entry's tests (one more ResNet-50 build)."""
    order = {n: i for i, n in enumerate(names())}
    files = {}
    for item in items:
        files.setdefault(item.fspath, len(files))

    def key(item):
        params = getattr(getattr(item, "callspec", None), "params", {})
        return files[item.fspath], order.get(params.get("harness"), -1)

    items.sort(key=key)


@pytest.fixture(scope="module")
def harness(request):
    with Harness(request.param) as h:
        yield h


def pytest_terminal_summary(terminalreporter):
    if not MEASURED:
        return
    terminalreporter.section("measured errors (relative = max|a-b| / max|a|)")
    terminalreporter.write_line(f"{'model':26} {'input':16} {'pair':24} {'max abs':>9} {'relative':>9}")
    for name, shape, pair, max_abs, rel in MEASURED:
        terminalreporter.write_line(f"{name:26} {shape:16} {pair:24} {max_abs:9.2e} {rel:9.2e}")
