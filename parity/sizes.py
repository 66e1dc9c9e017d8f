"""Input sizes: whether the torch model runs at a given (N, C, H, W), the H, W range it accepts, and whether
the activations fit in this machine's memory, all found before anything is allocated.

Shapes propagate on torch's ``meta`` device: tensors with a shape and no data, so a 20000 x 20000 input costs
nothing to try. A model's own parameters are swapped for meta stand-ins for the call
(``torch.func.functional_call``), so no copy of the model is made. ``check``, ``port`` and ``summary`` all
validate through :func:`check_input`; the torch model decides which sizes are valid, and the Keras twin of a
fixed-size entry (a Flatten feeding a Dense) is then built at each size the torch model accepts.

The memory estimate is a floor, not a forecast: the input plus the largest input + output of one layer
(no runtime can hold less), in float32, against the memory this machine has available now. A size above
the floor cannot run; one below it may still be tight.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from parity.errors import InputShapeError
from parity.tables import shape_text

FLOAT32_BYTES = 4  # every input and activation is float32, in every runtime
_SEARCH_LIMIT = 1 << 16  # sizes are searched up to 65,536 px; a model that runs there has no upper limit


@dataclass(frozen=True)
class Footprint:
    """What one forward pass at ``input_shape`` needs: the floor of its memory in bytes, and the layer that
    sets it (module path, ``""`` for the root)."""

    input_shape: tuple
    floor_bytes: int
    largest_layer: str


def validate_shape(input_shape, channels: int, name: str) -> tuple:
    """``input_shape`` as a tuple of ints, or :class:`InputShapeError`: rank 4, positive integers (not a
    string, a float or a bool), ``channels`` in axis 1 (an NHWC shape is recognised and named)."""
    expect = f"(N, C, H, W) with C={channels}"
    dims = () if isinstance(input_shape, (str, bytes)) else input_shape
    try:
        dims = tuple(dims)
    except TypeError:
        dims = None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise InputShapeError(f"input_shape for {name!r} must be {expect}, integers, got {input_shape!r}")
    shape = tuple(int(d) for d in dims)
    if len(shape) != 4 or min(shape) < 1:
        raise InputShapeError(f"input_shape for {name!r} must be {expect}, all positive, got {shape_text(shape)}")
    if shape[1] != channels:
        hint = " (that looks like NHWC; pass NCHW)" if shape[3] == channels else ""
        raise InputShapeError(f"input_shape for {name!r} must be {expect}, got {shape_text(shape)}{hint}")
    return shape


def _meta_state(module: nn.Module) -> dict:
    return {k: torch.empty_like(v, device="meta")
            for k, v in [*module.named_parameters(), *module.named_buffers()]}


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


class _TorchFails(Exception):
    """The torch model raised at this size (``__cause__`` holds torch's error)."""


class _MetaUnsupported(Exception):
    """The model does something the meta device cannot (reads a value): no verdict, the real run decides."""


def footprint(module: nn.Module, input_shape) -> Footprint:
    """Runs ``module`` on a meta tensor of ``input_shape``; raises :class:`_TorchFails` where torch fails."""
    state = _meta_state(module)
    largest, layer = 0, ""

    def hook(path):
        def fn(m, inputs, output):
            nonlocal largest, layer
            seen = {id(t): t for t in _tensors(inputs) + _tensors(output)}  # an in-place output counts once
            size = sum(t.numel() for t in seen.values()) * FLOAT32_BYTES
            if size > largest:
                largest, layer = size, path
        return fn

    leaves = [(p, m) for p, m in module.named_modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(hook(p)) for p, m in leaves]
    try:
        with torch.no_grad():
            torch.func.functional_call(module, state, (torch.empty(input_shape, device="meta"),))
    except NotImplementedError as exc:
        raise _MetaUnsupported() from exc
    except Exception as exc:  # any error torch raises for this shape (RuntimeError, ValueError, ...)
        if "meta" in str(exc).lower():
            raise _MetaUnsupported() from exc
        raise _TorchFails() from exc
    finally:
        for h in hooks:
            h.remove()
    return Footprint(tuple(input_shape), math.prod(input_shape) * FLOAT32_BYTES + largest, layer)


def _runs(module, n, c, h, w) -> bool:
    """Whether torch runs at that shape (True where the meta device cannot tell)."""
    try:
        footprint(module, (n, c, h, w))
    except _TorchFails:
        return False
    except _MetaUnsupported:
        return True
    return True


def _bound(runs, good: int, bad: int) -> int:
    """The valid size next to ``bad``: ``runs(good)`` holds, ``runs(bad)`` does not, validity changes once
    between them (an op's output size never shrinks as its input grows, so the sizes a model accepts along
    one axis form one interval)."""
    while abs(bad - good) > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if runs(mid) else (good, mid)
    return good


def size_range(module: nn.Module, channels: int, hw: tuple) -> tuple | None:
    """``((h_min, h_max), (w_min, w_max))``: the H (W fixed at ``hw[1]``) and the W (H fixed at ``hw[0]``)
    at which torch runs, around the size ``hw`` at which it does; a maximum is None where the model runs up to
    :data:`_SEARCH_LIMIT`. None when the model does not run at ``hw`` either."""
    h0, w0 = hw
    if not _runs(module, 1, channels, h0, w0):
        return None
    out = []
    for axis, start in enumerate(hw):
        runs = (lambda s: _runs(module, 1, channels, s, w0)) if axis == 0 else \
               (lambda s: _runs(module, 1, channels, h0, s))
        low = 1 if runs(1) else _bound(runs, start, 1)
        good, high = start, None
        while good < _SEARCH_LIMIT:  # doubling first: an upper limit is usually near the default size
            step = min(2 * good, _SEARCH_LIMIT)
            if not runs(step):
                high = _bound(runs, good, step)
                break
            good = step
        out.append((low, high))
    return tuple(out)


def _span(low: int, high: int | None) -> str:
    if high is None:
        return f">= {low}"
    return f"= {low}" if low == high else f"{low}..{high}"


def available_memory() -> int:
    """Bytes this process may still allocate: ``MemAvailable`` from ``/proc/meminfo``, capped by a cgroup
    limit where one is set; the physical memory where neither can be read."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            text = f.read().strip()
            if text != "max":
                limits.append(int(text) - int(g.read()))
    except (OSError, ValueError):
        pass
    if not limits:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return min(limits)


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB"


def check_runs(module: nn.Module, input_shape: tuple, name: str, default_hw: tuple) -> Footprint | None:
    """:class:`InputShapeError` unless the torch ``module`` runs at ``input_shape`` and the activations fit in
    memory. The error names torch's own complaint and the sizes the model accepts (searched around
    ``default_hw``); it names the smallest size when the input is below it. None where the meta device cannot
    tell (the model reads values); the real run then decides."""
    try:
        fp = footprint(module, input_shape)
    except _MetaUnsupported:
        return None
    except _TorchFails as exc:
        why = str(exc.__cause__).strip().splitlines()[0][:200]
        n, c, h, w = input_shape
        found = size_range(module, c, tuple(default_hw))
        if found is None:
            raise InputShapeError(f"{name!r} does not run at {shape_text(input_shape)} in torch ({why})") from None
        (h_lo, h_hi), (w_lo, w_hi) = found
        smallest = f"the smallest input is {shape_text((n, c, h_lo, w_lo))}"
        spans = (f"it runs at H {_span(h_lo, h_hi)} with W = {default_hw[1]}, and W {_span(w_lo, w_hi)} with "
                 f"H = {default_hw[0]}")
        if h_hi is None and w_hi is None:
            hint = smallest
        else:
            hint = f"{smallest}; {spans}" if h < h_lo or w < w_lo else spans
        raise InputShapeError(f"{name!r} does not run at {shape_text(input_shape)} in torch ({why}); {hint}") from None
    have = available_memory()
    if fp.floor_bytes > have:
        raise InputShapeError(f"input {shape_text(input_shape)} for {name!r} needs at least {_gib(fp.floor_bytes)} "
                              f"of float32 activations (the input, and the input and output of layer "
                              f"{fp.largest_layer or name!r}), and "
                              f"this machine has {_gib(have)} available; pass a smaller --input-shape")
    return fp


def check_input(module: nn.Module, input_shape, name: str, channels: int, default_hw: tuple) -> tuple:
    """:func:`validate_shape`, then :func:`check_runs`: the shape as a tuple, or :class:`InputShapeError`."""
    shape = validate_shape(input_shape, channels, name)
    check_runs(module, shape, name, default_hw)
    return shape


def check_entry(name: str, input_shape, **overrides) -> tuple:
    """:func:`check_input` for registry entry ``name``, its torch model built on the meta device (no weights
    allocated): cheap enough to validate every name before any real work."""
    from parity.registry import AUTO, build, get

    spec = get(name)
    channels = spec.input_channels(**overrides)
    shape = validate_shape(input_shape, channels, name)
    if spec.torch == AUTO:  # the torch side is a converted Keras model: the engine checks it once built
        return shape
    with torch.device("meta"):
        module = build(name, "torch", **overrides)
    check_runs(module, shape, name, spec.default_shape[2:])
    return shape
