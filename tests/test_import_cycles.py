"""No import cycles among our modules (``parity``, ``tf_impl``, ``torch_impl``), shown two ways.

1. Statically, every import statement of every module, at the top and inside functions (a lazy import that
   points back up is a cycle too, one that only waits for its call), as a graph: it must have no cycle. The
   test prints the modules in an order in which each imports only modules before it.
2. Dynamically, every module imported alone in a fresh interpreter, watching each import statement as it
   runs: importing a module that is still initialising (``module.__spec__._initializing``) is a cycle in
   action. To keep this cheap, one child interpreter loads the third-party libraries (torch, TensorFlow,
   onnx, ...) once and forks a process per module; each fork starts with none of our modules loaded
   (``parity.__main__`` is left out here: importing it runs the command).
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("parity", "tf_impl", "torch_impl")


def our_modules() -> dict[str, Path]:
    """``{dotted name: file}`` for every library module (tests and conftests left out)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1].startswith("test_") or parts[-1] == "conftest":
                continue
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set]:
    """Edges ``importer -> imported`` between our modules. ``from X import a`` points at ``X.a`` when that is
    a module, else at ``X``; ``import X.Y`` at ``X.Y``."""
    def ours(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(ours(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.add(sub if sub in modules else ours(base))
        edges[name] = {t for t in targets if t and t != name}
    return edges


def topological_order(edges: dict[str, set]) -> tuple[list, list]:
    """``(order, cycle)``: modules with every import before its importer; if that is impossible, one cycle."""
    order, state = [], {}

    def visit(v, path):
        state[v] = "open"
        for w in sorted(edges[v]):
            if state.get(w) == "open":
                return path[path.index(w):] + [w]
            if w not in state:
                cycle = visit(w, path + [w])
                if cycle:
                    return cycle
        state[v] = "done"
        order.append(v)
        return []

    for v in sorted(edges):
        if v not in state:
            cycle = visit(v, [v])
            if cycle:
                return order, cycle
    return order, []


def test_no_import_cycle_in_the_source():
    edges = import_graph(our_modules())
    order, cycle = topological_order(edges)
    print("import order:", " < ".join(order))
    assert not cycle, "import cycle: " + " -> ".join(cycle)
    assert {"parity.engine", "parity.trace", "tf_impl.nn", "tf_impl.layers"} <= set(order)


def test_the_graph_sees_a_cycle_when_there_is_one():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert topological_order(edges)[1] in (["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert topological_order({"a": {"b"}, "b": set()}) == (["b", "a"], [])


THIRD_PARTY = ["numpy", "torch", "torch.nn", "torch.onnx", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx",
               "h5py", "safetensors.torch"]
CHILD = r"""
import builtins, importlib, json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
MODULES, PACKAGES, PRELOAD = (json.loads(a) for a in sys.argv[1:4])
for lib in PRELOAD:
    importlib.import_module(lib)
assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES]

def initializing(name):
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))

def watch(found):
    real = builtins.__import__
    def hooked(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get("__name__", "?")
        full = importlib.util.resolve_name("." * level + name, (globals or {}).get("__package__")) if level else name
        items = [f for f in (fromlist or ()) if f != "*"]
        before = {t: initializing(t) for t in [full] + [f"{full}.{f}" for f in items]}
        module = real(name, globals, locals, fromlist, level)
        targets = [f"{full}.{f}" if f"{full}.{f}" in sys.modules else full for f in items] or [full]
        for t in targets:
            if t.split(".")[0] in PACKAGES and before.get(t):
                found.append([importer, t])
        return module
    builtins.__import__ = hooked

results = {}
for mod in MODULES:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into this loop, whatever the import does
        found, error = [], None
        try:
            os.close(read)
            watch(found)
            importlib.import_module(mod)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, json.dumps({"cycles": found, "error": error}).encode())
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    results[mod] = json.loads(data)
print(json.dumps(results))
"""


def run_alone(modules, packages, preload, cwd) -> dict:
    """``{module: {"cycles": [[importer, module still initialising]], "error": str | None}}``."""
    out = subprocess.run([sys.executable, "-c", CHILD, *map(json.dumps, (modules, packages, preload))],
                         capture_output=True, text=True, cwd=cwd, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_watcher_sees_a_cycle_in_action(tmp_path):
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("from cyc import b\nX = 1\n")
    (tmp_path / "cyc" / "b.py").write_text("import cyc.a\n")
    (tmp_path / "cyc" / "c.py").write_text("from cyc import d\nimport cyc.d\n")
    (tmp_path / "cyc" / "d.py").write_text("Y = 2\n")
    results = run_alone(["cyc.a", "cyc.b", "cyc.c"], ["cyc"], [], tmp_path)
    print(results)
    assert results["cyc.a"]["cycles"] == [["cyc.b", "cyc.a"]]  # a -> b -> a: b meets a half-built
    assert results["cyc.b"]["cycles"] == [["cyc.a", "cyc.b"]]
    assert results["cyc.c"] == {"cycles": [], "error": None}


@pytest.mark.zoo  # ~20 s, most of it loading TensorFlow once; the static test above runs by default
def test_each_module_imports_alone_without_meeting_itself():
    modules = sorted(m for m in our_modules() if not m.endswith("__main__"))  # __main__ runs the CLI
    results = run_alone(modules, list(PACKAGES), THIRD_PARTY, ROOT)
    assert sorted(results) == modules
    for mod, r in results.items():
        print(f"{mod}: {'cycle ' + str(r['cycles']) if r['cycles'] else 'ok'}{'; ' + r['error'] if r['error'] else ''}")
    assert {m: r["error"] for m, r in results.items() if r["error"]} == {}
    assert {m: r["cycles"] for m, r in results.items() if r["cycles"]} == {}
