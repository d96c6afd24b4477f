"""What a model may ask of a station's memory, computed at load before anything runs.

A model file decides the sizes the numpy kernels allocate: tensor shapes,
and also operator options and constants (a convolution's dilation sets how
much padding its input gets, a PAD operator's constants set its output).
One changed byte can turn a 30 KB picker into a request for tens of
gigabytes at the first ``invoke``.  So at load the interpreter computes,
per operator and for one window, an upper bound of the largest scratch
buffer its kernel allocates (:func:`op_scratch_bytes`), checks that the
shapes computed from options and constants agree with the shapes the model
declares, and refuses (:class:`~fieldpick.edge.errors.ModelBudgetError`,
naming the numbers) a model whose worst case exceeds the memory budget:

    need = activations planned (batch 1) + weights as the kernels hold them
           (float64: 8 bytes a value) + the largest scratch of any operator

The default budget, :data:`DEFAULT_MEMORY_BUDGET` (256 MiB), fits the
smallest board profile (512 MiB of RAM); :func:`budget_from_profile` gives
a quarter of a board profile's RAM.  The bundled model needs under 1 MiB.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ConfigError, ModelBudgetError, ModelFormatError
from .kernels.conv import SAME, VALID, conv_geometry

__all__ = ["DEFAULT_MEMORY_BUDGET", "budget_from_profile", "op_scratch_bytes", "model_need", "check_budget"]

DEFAULT_MEMORY_BUDGET = 256 << 20
_F64 = 8  # the int8 kernels compute in float64: the widest element any scratch holds


def budget_from_profile(profile: dict) -> int:
    """A quarter of a board profile's ``memory.ram_bytes`` (the rest: OS, buffers, journal)."""
    try:
        ram = int(profile["memory"]["ram_bytes"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError("board profile has no memory.ram_bytes; cannot derive a memory budget") from None
    if ram <= 0:
        raise ConfigError("board profile memory.ram_bytes is %r; expected > 0" % (ram,))
    return ram // 4


def _elems(shape) -> int:
    n = 1
    for s in shape:
        n *= max(int(s), 1)
    return n


def _tail(shape):
    return tuple(int(s) for s in shape[1:])


def base_bytes(widest: int) -> int:
    """Elementwise kernels: a float64 copy of an input and of the output."""
    return 2 * widest * _F64


def op_scratch_bytes(op, tensors) -> int:
    """Upper bound of the largest buffer the numpy kernel of ``op`` allocates for one window.

    Raises ModelFormatError when a shape computed from the operator's
    options or constants contradicts the shape its output declares.
    """
    ins = [tensors[i] if i >= 0 else None for i in op.inputs] + [None] * 4  # absent inputs read as None
    y = tensors[op.outputs[0]] if op.outputs else None
    widest = max([_elems(t.shape) for t in ins + [y] if t is not None] or [0])
    if ins[0] is None:
        return base_bytes(widest)
    base = base_bytes(widest)
    o = op.options
    name = op.name
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D") and ins[0] is not None:
        x = ins[0]
        if len(x.shape) != 4:
            return base
        _, h, w, cin = (int(s) for s in x.shape)
        if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            kh, kw, dh, dw = o.get("filter_h", 1), o.get("filter_w", 1), 1, 1
        else:
            wt = ins[1]
            if wt is None or len(wt.shape) != 4:
                return base
            kh, kw = int(wt.shape[1]), int(wt.shape[2])
            dh, dw = o.get("dilation_h", 1), o.get("dilation_w", 1)
        sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
        if min(kh, kw, dh, dw, sh, sw) < 1 or o.get("padding") not in (SAME, VALID):
            return base  # the kernel builder refuses these with its own message
        oh, pt, pb = conv_geometry(h, kh, sh, dh, o["padding"])
        ow, pl, pr = conv_geometry(w, kw, sw, dw, o["padding"])
        padded = (h + pt + pb) * (w + pl + pr) * cin * _F64
        patches = max(oh, 0) * max(ow, 0) * kh * kw * cin * _F64
        return max(base, padded + patches)
    if name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[1] is not None and ins[2] is not None:
        wt, x = ins[1], ins[2]
        if len(wt.shape) != 4 or len(x.shape) != 4:
            return base
        cout, kh, kw = int(wt.shape[0]), int(wt.shape[1]), int(wt.shape[2])
        h, w = int(x.shape[1]), int(x.shape[2])
        sh, sw = max(o.get("stride_h", 1), 1), max(o.get("stride_w", 1), 1)
        full = ((h - 1) * sh + kh) * ((w - 1) * sw + kw) * cout * _F64
        cols = h * w * kh * kw * cout * _F64
        return max(base, full + cols)
    if name == "PAD" and len(ins) > 1 and ins[1] is not None and ins[1].data is not None and y is not None:
        pads = np.asarray(ins[1].data).astype(np.int64).reshape(-1)
        x = ins[0]
        if x is None or pads.size != 2 * len(x.shape) or np.any(pads < 0):
            return base  # refused by the kernel builder
        out = tuple(int(n) + int(a) + int(b) for n, (a, b) in zip(x.shape, pads.reshape(-1, 2)))
        if _tail(out) != _tail(y.shape):
            raise ModelFormatError("corrupt .tflite: operator %d (PAD) pads %s to %s but declares output %s"
                                   % (op.index, list(x.shape), list(out), list(y.shape)))
        return max(base, _elems(out) * _F64)
    if name == "RESIZE_NEAREST_NEIGHBOR" and len(ins) > 1 and ins[1] is not None and ins[1].data is not None:
        size = np.asarray(ins[1].data).astype(np.int64).reshape(-1)
        if y is not None and len(y.shape) == 4 and size.size == 2 and (int(size[0]), int(size[1])) != _tail(y.shape)[:2]:
            raise ModelFormatError("corrupt .tflite: operator %d (RESIZE_NEAREST_NEIGHBOR) resizes to %s but "
                                   "declares output %s" % (op.index, size.tolist(), list(y.shape)))
    return base


def model_need(sg, planned_bytes: int):
    """(bytes needed, largest single buffer, operator index of the largest scratch)."""
    weights = sum(_elems(t.shape) for t in sg.tensors if t.data is not None) * _F64
    scratch = [op_scratch_bytes(op, sg.tensors) for op in sg.operators]
    worst = int(np.argmax(scratch)) if scratch else -1
    largest_tensor = max([t.nbytes for t in sg.tensors if t.dtype is not None] or [0])
    largest = max(largest_tensor, scratch[worst] if scratch else 0)
    return planned_bytes + weights + (scratch[worst] if scratch else 0), largest, worst


def check_budget(sg, planned_bytes: int, budget: Optional[int]) -> int:
    """Raise ModelBudgetError when the model may need more than ``budget`` bytes; return the need."""
    need, largest, worst = model_need(sg, planned_bytes)
    if budget is None:
        return need
    if need > budget or largest > budget:
        op = sg.operators[worst] if worst >= 0 else None
        raise ModelBudgetError(
            "the model may need %.1f MiB at run time (activations %.1f MiB, weights as float64, largest scratch "
            "%.1f MiB in operator %s); the memory budget is %.1f MiB: refused (a corrupt or hostile model?)"
            % (need / 2.0 ** 20, planned_bytes / 2.0 ** 20, largest / 2.0 ** 20,
               "%d (%s)" % (op.index, op.name) if op is not None else "-", budget / 2.0 ** 20))
    return need
