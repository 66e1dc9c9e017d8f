"""Fixtures for the registry-driven parity tests, and what they measured: one closing line (how many errors,
the worst and where), or the table of every error with ``--measured`` or ``-s``."""
import pytest

from parity.engine import Harness
from parity.registry import get, names

MEASURED: list[tuple] = []


def record(name: str, input_shape, errors: dict) -> None:
    for pair, err in errors.items():
        MEASURED.append((name, "x".join(map(str, input_shape)), pair, err.max_abs, err.rel))


def pytest_generate_tests(metafunc):
    """``harness`` runs once per registry entry (module scope: pytest groups the tests of one entry and
    frees it before building the next); ``input_shape`` runs over that entry's shapes."""
    if "harness" not in metafunc.fixturenames:
        return
    if "input_shape" in metafunc.fixturenames:
        cases = [(n, s) for n in names() for s in get(n).input_shapes]
        ids = [f"{n}-{'x'.join(map(str, s))}" for n, s in cases]
        metafunc.parametrize(["harness", "input_shape"], cases, ids=ids, indirect=["harness"], scope="module")
    else:
        metafunc.parametrize("harness", names(), indirect=True, scope="module")


def pytest_itemcollected(item):
    """A test of a zoo entry is marked ``zoo`` (deselected by default, ``pytest -m zoo`` runs it)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(isinstance(v, str) and v in _zoo_names() for v in params.values()):
        item.add_marker(pytest.mark.zoo)


def _zoo_names() -> set:
    return {n for n in names() if get(n).zoo}


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(items):
    """Puts the tests of one registry entry next to each other within each file, so that every harness is
    built once. pytest's own grouping goes by parameter index, which differs between the (entry, shape)
    cases and the plain entry list: it split the tests of vgg19, resnet50, resnet50_blog, fpn and fpn_blog
    (each harness built twice, about 60 s of the default run)."""
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


def pytest_addoption(parser):
    parser.addoption("--measured", action="store_true", default=False,
                     help="print every measured error of the parity tests at the end (also shown with -s)")


def worst_line(measured: list[tuple]) -> str:
    """One line for the whole run: how many errors were measured, the worst relative one and where."""
    name, shape, pair, max_abs, rel = max(measured, key=lambda m: m[4])
    return (f"{len(measured)} errors measured (relative = max|a-b| / max|a|); worst {rel:.2e} (max abs "
            f"{max_abs:.2e}): {name} {shape} {pair}; --measured or -s prints them all")


def measured_table(measured: list[tuple]) -> list[str]:
    lines = [f"{'model':26} {'input':16} {'pair':32} {'max abs':>9} {'relative':>9}"]
    lines += [f"{name:26} {shape:16} {pair:32} {max_abs:9.2e} {rel:9.2e}" for name, shape, pair, max_abs, rel in measured]
    return lines


def pytest_terminal_summary(terminalreporter, config):
    if not MEASURED:
        return
    full = config.getoption("measured", default=False) or config.getoption("capture", default="fd") == "no"
    terminalreporter.section("measured errors")
    for line in (measured_table(MEASURED) if full else []) + [worst_line(MEASURED)]:
        terminalreporter.write_line(line)
