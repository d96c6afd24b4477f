"""Activation equalisation: rescale channels so per-tensor int8 steps fit every channel.

Full-integer TFLite quantises each activation tensor with ONE scale (weights
get one per output channel).  A channel whose values span 0.5 shares the
step of a channel spanning 37 in the same tensor, and keeps 3 of its 255
levels.  A ReLU network computes the same function when the output of a
channel is divided by ``s`` and the weights that read it are multiplied by
``s`` (ReLU is positively homogeneous; Nagel et al. 2019, "Data-free
quantization through weight equalization and bias correction", applies this
between layers).  So before conversion each such tensor's channels are
rescaled towards one common range, measured on the calibration windows:

    s_c = (r_c / R) ** power,  r_c = the channel's calibration maximum, R = the tensor's

``power`` 1 gives every channel the whole int8 range; it also shrinks the
weights reading a small channel, which per-channel weight quantisation then
resolves more coarsely when they share an output channel with large ones
(pointwise convolutions).  ``power`` 0.5 splits the step between the two.

For LPPN the tensors are the stem's output, each separable stage's
depthwise and pointwise outputs, and the residual stream of the context
blocks.  The residual stream ``h + block(h)`` is one tensor for this
purpose: the same ``s`` is applied where it is made (the last stage's
pointwise BatchNorm and each context block's) and where it is read (each
block's depthwise weights and the head).  Measured on the shipped student
(docs/export.md): the residual stream spans 37 at the head while its median
channel spans 11, and rounding it was the largest single int8 loss.

The rescaled model computes what the original computes in float (checked:
:func:`equalise` raises when the outputs differ by more than 1e-4); the
export's parity gates still compare against the original model.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from fieldpick.edge.errors import ConfigError, ModelError

__all__ = ["equalise", "channel_ranges", "EqualisationError"]

log = logging.getLogger(__name__)

#: largest |output change| the rescaling may make in float (it is exact up to rounding)
TOLERANCE = 1e-4


class EqualisationError(ModelError):
    """The rescaled model does not compute what the original computes."""


def _conv_bn(block):
    """(conv, bn) of a fieldpick ConvBN (Conv1d -> BatchNorm1d -> ReLU), or None."""
    mods = list(block) if isinstance(block, nn.Sequential) else []
    if (len(mods) == 3 and isinstance(mods[0], nn.Conv1d) and isinstance(mods[1], nn.BatchNorm1d)
            and type(mods[2]) is nn.ReLU):
        return mods[0], mods[1]
    return None


def _lppn_plan(view):
    """The LPPN view's tensors: [(name, producers [bn], consumers [conv], measure points)].

    A measure point is (module, 'out') for a ConvBN's output or (module, 'in')
    for a module's input.  Returns None when the view is not the plain LPPN
    layout (ReLU6 or anything else: the rescaling would not be exact).
    """
    chain = [view.stem] + [m for stage in view.down for m in stage]
    if any(_conv_bn(b) is None for b in chain + [m for block in view.context for m in block]):
        return None
    tensors = []
    for i in range(len(chain) - 1):  # stem -> dw -> pw -> dw -> ... -> last pw (the stream)
        tensors.append(("down%d" % i, [_conv_bn(chain[i])[1]], [_conv_bn(chain[i + 1])[0]], [(chain[i], "out")]))
    for k, b in enumerate(view.context):  # inside each block: depthwise -> pointwise
        tensors.append(("context%d.dw" % k, [_conv_bn(b[0])[1]], [_conv_bn(b[1])[0]], [(b[0], "out")]))
    heads = [m for m in (getattr(view, "cls", None), getattr(view, "off", None), getattr(view, "head", None))
             if isinstance(m, nn.Conv1d)]
    producers = [_conv_bn(chain[-1])[1]] + [_conv_bn(b[1])[1] for b in view.context]
    consumers = [_conv_bn(b[0])[0] for b in view.context] + heads
    points = [(b, "in") for b in view.context] + [(heads[0], "in")]
    tensors.append(("stream", producers, consumers, points))
    return tensors


def _ranges(view, points, windows, batch=32):
    """Per-channel max |value| at each measure point over ``windows`` -> list of (C,) arrays."""
    peak = [None] * len(points)

    def keep(j, value):
        v = value.detach().abs().amax(dim=(0, 2)).numpy()
        peak[j] = v if peak[j] is None else np.maximum(peak[j], v)

    hooks = []
    for j, (mod, where) in enumerate(points):
        if where == "out":
            hooks.append(mod.register_forward_hook(lambda m, a, o, j=j: keep(j, o)))
        else:
            hooks.append(mod.register_forward_pre_hook(lambda m, a, j=j: keep(j, a[0])))
    try:
        with torch.no_grad():
            for k in range(0, len(windows), batch):
                view(torch.from_numpy(np.ascontiguousarray(windows[k:k + batch], dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return peak


def channel_ranges(view, windows, plan=None):
    """{tensor name: per-channel calibration maximum (C,)} of an LPPN view (the max over its measure points)."""
    plan = _lppn_plan(view) if plan is None else plan
    peaks = _ranges(view, [p for _, _, _, pts in plan for p in pts], windows)
    out, j = {}, 0
    for name, _, _, pts in plan:
        out[name] = np.max(np.stack(peaks[j:j + len(pts)]), axis=0).astype(np.float64)
        j += len(pts)
    return out


def equalise(view, windows, power=1.0):
    """A rescaled copy of an export view (LPPN) and a note, or ``(view, "")`` when it does not apply.

    windows: (N, C, T) normalised calibration windows.  power: in (0, 1]
    (module docstring).  The copy's float outputs equal the view's within
    :data:`TOLERANCE` on ``windows`` or :class:`EqualisationError` is raised.
    """
    if not 0.0 < power <= 1.0:
        raise ConfigError("equalisation power %r; allowed: a number in (0, 1]" % (power,))
    if not all(hasattr(view, a) for a in ("stem", "down", "context")):
        return view, ""
    out = copy.deepcopy(view).eval()
    plan = _lppn_plan(out)
    if plan is None:
        return view, ""
    ranges = channel_ranges(out, windows, plan)
    spread = []
    with torch.no_grad():
        for name, producers, consumers, _ in plan:
            r = ranges[name]
            live = r > 1e-6 * r.max()
            s = np.ones_like(r)
            s[live] = (r[live] / r.max()) ** power
            spread.append("%s %.0fx" % (name, r.max() / max(np.median(r[live]), 1e-12)))
            st = torch.from_numpy(s).to(torch.float32)
            for bn in producers:  # the channel's output / s (BatchNorm's affine, before the ReLU)
                bn.weight.div_(st)
                bn.bias.div_(st)
            for conv in consumers:  # and whatever reads it * s
                if conv.groups == conv.in_channels and conv.groups > 1:
                    conv.weight.mul_(st[:, None, None])
                else:
                    conv.weight.mul_(st[None, :, None])
    x = torch.from_numpy(np.ascontiguousarray(windows[:64], dtype=np.float32))
    with torch.no_grad():
        diff = float((out(x) - view(x)).abs().max())
    if not diff <= TOLERANCE:
        raise EqualisationError("equalised LPPN differs from the original by %.3g (allowed %g)" % (diff, TOLERANCE))
    note = ("channels equalised for per-tensor int8 (power %g; calibration max / median channel: %s; "
            "float max diff %.1e)" % (power, ", ".join(spread), diff))
    log.info("%s", note)
    return out, note
