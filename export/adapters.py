"""Export views: the same function as a zoo model, in a shape onnx2tf converts cleanly.

onnx2tf 1.29 guesses which axis of each tensor is the channel axis when it
moves a graph from NCT to NTC.  Two patterns in the zoo defeat the guess
(measured on the default configs, see docs/export.md):

- slicing the CHANNEL axis and re-joining it (LPPN's ``out[:, :3]`` and
  ``out[:, 3]`` + ``[:, None]`` + ``cat``): onnx2tf slices the time axis
  instead and the Concat fails;
- cropping the TIME axis after a transposed convolution and concatenating
  with a skip (PhaseNet's ``fit_length``): the Concat and the next Conv get
  the wrong layout;
- flattening (B, C, L) for a Linear layer (CPIC's head): to keep PyTorch's
  flatten order onnx2tf inserts a TRANSPOSE back to NCT (wasted work).

A view reuses the trained modules and copies weights, so it computes
exactly what the model computes (up to float rounding); the export still
measures parity against the ORIGINAL model, so a view that were wrong would
fail the ONNX gate.  A model whose layers export as they are needs no view:
:func:`export_view` returns the model itself.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

__all__ = ["export_view"]

log = logging.getLogger(__name__)


class _LPPNView(nn.Module):
    """LPPN with its 4-channel head split into a 3-class conv and a 1-channel offset conv."""

    def __init__(self, model):
        super().__init__()
        self.stem, self.down, self.context = model.stem, model.down, model.context
        head = model.head
        cin = head.in_channels
        self.cls = nn.Conv1d(cin, 3, 1)
        self.off = nn.Conv1d(cin, 1, 1)
        with torch.no_grad():
            self.cls.weight.copy_(head.weight[:3])
            self.cls.bias.copy_(head.bias[:3])
            self.off.weight.copy_(head.weight[3:])
            self.off.bias.copy_(head.bias[3:])

    def forward(self, x):  # (B, 3, T) -> (B, 4, T // stride)
        h = self.down(self.stem(x))
        for block in self.context:
            h = h + block(h)
        return torch.cat([torch.softmax(self.cls(h), dim=1), torch.sigmoid(self.off(h))], dim=1)


def _lppn(model):
    head = getattr(model, "head", None)
    if not (isinstance(head, nn.Conv1d) and head.out_channels == 4 and head.kernel_size == (1,)
            and head.bias is not None and all(hasattr(model, a) for a in ("stem", "down", "context"))):
        return None
    return _LPPNView(model), "lppn: head split into class (3) and offset (1) convolutions (no channel slicing)"


class _PhaseNetView(nn.Module):
    """PhaseNet whose transposed convs pad and output-pad instead of being cropped afterwards."""

    def __init__(self, model, ups):
        super().__init__()
        self.inc, self.down_same, self.down_step = model.inc, model.down_same, model.down_step
        self.up_step, self.up_same, self.head = ups, model.up_same, model.head

    def forward(self, x):
        x = self.inc(x)
        skips = []
        for i, same in enumerate(self.down_same):
            x = same(x)
            if i < len(self.down_step):
                skips.append(x)
                x = self.down_step[i](x)
        for up, same in zip(self.up_step, self.up_same):
            x = same(torch.cat([skips.pop(), up(x)], dim=1))
        return torch.softmax(self.head(x), dim=1)


def _phasenet(model):
    c = getattr(model, "config", None)
    lengths = getattr(model, "_lengths", None)
    if c is None or lengths is None or not hasattr(model, "up_step"):
        return None
    k, s = c.kernel, c.stride
    p = k // 2
    ups = copy.deepcopy(model.up_step)
    # up_step[j] goes from level n-1-j to level n-2-j; the crop keeps [p, p + target)
    n = len(lengths)
    for j, seq in enumerate(ups):
        ct = seq[0]
        src, target = lengths[n - 1 - j], lengths[n - 2 - j]
        op = target - ((src - 1) * s + 1)  # output length with padding p is (src-1)*s - 2p + k + op
        if not (isinstance(ct, nn.ConvTranspose1d) and ct.padding == (0,) and ct.kernel_size == (k,)
                and 0 <= op < s and op <= p):
            return None  # the crop is not expressible as padding: export the model as it is
        new = nn.ConvTranspose1d(ct.in_channels, ct.out_channels, k, stride=s, padding=p, output_padding=op,
                                 bias=ct.bias is not None)
        new.load_state_dict(ct.state_dict())
        seq[0] = new
    return _PhaseNetView(model, ups), "phasenet: transposed convs padded (p=%d) instead of cropped (no Slice)" % p


class _CPICView(nn.Module):
    """CPIC with flatten + Linear as one convolution spanning the whole pooled length."""

    def __init__(self, model, length):
        super().__init__()
        self.features = model.features
        head = model.head
        cin = head.in_features // length
        self.head = nn.Conv1d(cin, head.out_features, length)
        with torch.no_grad():
            # flatten order of (B, C, L) is c * L + l, which is the conv weight's (C, L) order
            self.head.weight.copy_(head.weight.reshape(head.out_features, cin, length))
            self.head.bias.copy_(head.bias)

    def forward(self, x):  # (B, 3, W) -> (B, 3)
        return torch.softmax(torch.flatten(self.head(self.features(x)), 1), dim=1)


def _cpic(model):
    c = getattr(model, "config", None)
    head = getattr(model, "head", None)
    if c is None or not isinstance(head, nn.Linear) or not hasattr(model, "features"):
        return None
    with torch.no_grad():
        shape = model.features(torch.zeros(1, 3, c.window_samples)).shape
    if len(shape) != 3 or shape[1] * shape[2] != head.in_features:
        return None
    return _CPICView(model, int(shape[2])), "cpic: flatten + Linear as one full-length convolution (no TRANSPOSE)"


_ADAPTERS = {"lppn": _lppn, "phasenet": _phasenet, "cpic": _cpic}


def export_view(model):
    """``(module, note)``: an export-friendly view of ``model`` and what it changed, or ``(model, "")``."""
    fn = _ADAPTERS.get(getattr(model, "architecture", None))
    got = fn(model) if fn else None
    if got is None:
        return model, ""
    view, note = got
    view.eval()
    log.info("exporting a view of %s: %s", type(model).__name__, note)
    return view, note
