"""The standalone PyTorch source of an automatic torch twin (``parity convert`` for a Keras model).

The file holds, in order: a docstring that says how to load the weights; ``import torch`` and its
submodules, and nothing else; the facade definitions the twin uses, copied from ``torch_impl/keras_nn.py``
(each class and helper read from that file as it is, the closure of the names the model needs, in the
file's order); the twin's class, whose text is the very text compiled for the in-memory twin
(``SOURCE``, :mod:`parity.convert.from_keras`); and ``build_model()``.
"""
from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import torch_impl.keras_nn as knn

_IMPORTS = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


@cache
def facade_definitions() -> dict[str, str]:
    """``{name: source}`` of every top-level class, function and constant of ``torch_impl/keras_nn.py``, in
    the file's order (imports left out)."""
    text = Path(knn.__file__).read_text()
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = ast.get_source_segment(text, node)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            for target in node.targets:
                out[target.id] = ast.get_source_segment(text, node)
    return out


def _names(source: str) -> set[str]:
    return set(re.findall(r"\b[A-Za-z_]\w*\b", source))


def needed(source: str) -> list[str]:
    """The facade names ``source`` uses, with everything they use in turn, in the facade file's order."""
    defs = facade_definitions()
    todo, found = list(_names(source) & defs.keys()), set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += list(_names(defs[name]) & defs.keys() - found)
    return [name for name in defs if name in found]


def emit(torch_twin, name: str) -> str:
    """The source of ``<name>_torch.py`` for ``torch_twin``, an automatic twin from ``parity.twin(keras_model)``."""
    source = getattr(type(torch_twin), "SOURCE", None)
    if source is None:
        raise TypeError(f"emit_torch writes automatic twins of Keras models (parity.twin(keras_model)); "
                        f"got a {type(torch_twin).__name__} without generated source")
    cls = re.match(r"class (\w+)\(", source).group(1)
    defs = facade_definitions()
    blocks = []
    for n in needed(source):
        if defs[n] not in blocks:  # one assignment may define several names
            blocks.append(defs[n])
    doc = (f'"""{name}: the PyTorch twin of a Keras model, written by backbone-parity (``parity convert``).\n\n'
           f"Standalone: it imports only torch. Input NCHW; every module is named after its Keras layer. Load the "
           f"converted\nweights with\n\n"
           f"    model = build_model()\n"
           f'    model.load_state_dict(safetensors.torch.load_file("{name}.safetensors"))\n\n'
           f"The classes up to ``{cls}`` are backbone-parity's Keras layers as torch modules "
           f"(``torch_impl/keras_nn.py``),\ncopied as they are: each says where Keras and torch differ.\n"
           f'"""\n')
    build = (f"def build_model():\n"
             f'    """``{cls}`` in eval mode, freshly initialised: load the converted weights with '
             f'``load_state_dict``."""\n'
             f"    return {cls}().eval()\n")
    return "\n\n\n".join(part.strip("\n") for part in [doc + _IMPORTS, *blocks, source, build]) + "\n"
