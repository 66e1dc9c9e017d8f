"""Every Keras layer of a twin is named after a torch module path, including the layers of ops that have no
torch module (a ``torch.cat`` in ``forward`` becomes ``<module path>_cat``): the names do not depend on what
the process built before, so traces, summaries and transfers match by name alone."""
import pytest

import parity


@pytest.mark.parametrize("name, cats", [
    ("aspp", ["aspp_cat"]),
    ("inception_module", ["inception_module_cat"]),
    ("inception_v2_stacked3x3", ["inception_v2_stacked3x3_cat"]),
    ("inception_v2_factorized7", ["inception_v2_factorized7_cat"]),
])
def test_concatenations_are_named_after_their_module(name, cats):
    first, second = (parity.build(name, "keras") for _ in range(2))
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers], "layer names changed between two builds"
    assert [n for n in names if n.endswith("_cat")] == cats
    paths = {p or name for p, _ in parity.build(name, "torch").named_modules()}  # the root's path: the model name
    strays = [n for n in names if n != "input" and n not in paths and n.rsplit("_", 1)[0] not in paths]
    assert not strays, f"layers not named <torch path> or <torch path>_<op>: {strays}"


def test_inception_v1_modules_name_their_concatenation():
    """Nine Inception modules, nine ``<torch path of the module>_cat`` layers."""
    torch_paths = [p for p, m in parity.build("inception_v1_blog", "torch").named_modules()
                   if type(m).__name__ == "Inception"]
    cats = [layer.name for layer in parity.build("inception_v1_blog", "keras").layers if layer.name.endswith("_cat")]
    print(cats)
    assert len(cats) == 9 and cats == [f"{p}_cat" for p in torch_paths]
