"""PhaseNet: a 1-D U-Net that turns a 3-component window into noise / P / S
probability traces (Zhu & Beroza 2019, GJI 216, 261-273).

The teacher and accuracy reference of the zoo (about 270k parameters with
the default config).  Export-friendly: stride-4 convolutions down,
ConvTranspose1d up (no ``nn.Upsample``, which onnx2tf turns into
RESIZE + GATHER on padded 4-D tensors), BatchNorm after every convolution,
static shapes (crops are fixed slices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch
from torch import nn

from fieldpick.edge.errors import ConfigError

from .blocks import ConvBN, card_template, fit_length

__all__ = ["PhaseNet"]


class PhaseNet(nn.Module):
    """U-Net picker.  Input (B, 3, T) normalised ZNE; output (B, 3, T) probabilities N, P, S."""

    architecture = "phasenet"

    @dataclass
    class Config:
        window_samples: int = 3000      # samples per window
        sampling_rate_hz: float = 100.0
        compress: str = "none"          # input compression after demean + std: 'none' or 'asinh' (card normalisation)
        compress_scale: float = 1.0     # window standard deviations; asinh is linear below, logarithmic above
        filters: List[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])  # per level
        kernel: int = 7                 # samples, odd
        stride: int = 4                 # down-sampling factor per level

    def __init__(self, config: "PhaseNet.Config"):
        super().__init__()
        c = config
        if not c.filters or any(int(f) < 1 for f in c.filters):
            raise ConfigError("phasenet filters %r; give one positive channel count per level" % (c.filters,))
        if c.kernel < 1 or c.kernel % 2 == 0:
            raise ConfigError("phasenet kernel %r; it must be odd and >= 1 samples" % (c.kernel,))
        if c.stride < 2 or c.stride > c.kernel:
            raise ConfigError("phasenet stride %r; allowed: 2 .. kernel (%d)" % (c.stride, c.kernel))
        if c.window_samples < c.stride ** len(c.filters):
            raise ConfigError("phasenet window_samples %r is shorter than stride**levels" % (c.window_samples,))
        self.config = c
        k, s, f = c.kernel, c.stride, list(c.filters)
        self.inc = ConvBN(3, f[0], k)
        self.down_same = nn.ModuleList()
        self.down_step = nn.ModuleList()
        cin = f[0]
        for i, ch in enumerate(f):
            self.down_same.append(ConvBN(cin, ch, k))
            if i < len(f) - 1:
                self.down_step.append(ConvBN(ch, ch, k, stride=s))
            cin = ch
        self.up_step = nn.ModuleList()
        self.up_same = nn.ModuleList()
        for i in range(len(f) - 1, 0, -1):
            self.up_step.append(nn.Sequential(
                nn.ConvTranspose1d(f[i], f[i - 1], k, stride=s, bias=False),
                nn.BatchNorm1d(f[i - 1]),
                nn.ReLU(),
            ))
            self.up_same.append(ConvBN(2 * f[i - 1], f[i - 1], k))
        self.head = nn.Conv1d(f[0], 3, 1)
        # lengths at each level (static): conv with padding k//2 and stride s
        self._lengths = [c.window_samples]
        for _ in range(len(f) - 1):
            self._lengths.append((self._lengths[-1] + 2 * (k // 2) - k) // s + 1)

    def logits(self, x):  # (B, 3, T) -> (B, 3, T)
        x = self.inc(x)
        skips = []
        for i, same in enumerate(self.down_same):
            x = same(x)
            if i < len(self.down_step):
                skips.append(x)
                x = self.down_step[i](x)
        k = self.config.kernel
        for up, same in zip(self.up_step, self.up_same):
            skip = skips.pop()
            # a transposed conv without padding centres input j on output s*j + k//2
            x = fit_length(up(x), skip.shape[-1], left=k // 2)
            x = same(torch.cat([skip, x], dim=1))
        return self.head(x)

    def forward(self, x):
        """(B, 3, T) normalised -> (B, 3, T) probabilities (N, P, S), what the card declares."""
        return torch.softmax(self.logits(x), dim=1)

    def card(self):
        c = self.config
        return card_template(
            self, "probabilities", ["N", "P", "S"], c.window_samples, c.sampling_rate_hz,
            description="PhaseNet-style U-Net (Zhu & Beroza 2019): per-sample noise/P/S probabilities",
        )
