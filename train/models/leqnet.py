"""LEQNet: a light EQTransformer (Lim et al. 2022, "LEQNet: light earthquake
deep neural network for earthquake detection and phase picking", Frontiers
in Earth Science 10).

Like EQTransformer (Mousavi et al. 2020) it returns three traces, event
detection D and P and S arrival probabilities, from one shared encoder and
three decoders.  LEQNet's savings: depthwise-separable convolutions, deeper
residual bottleneck blocks, and recurrent convolution blocks (one conv whose
weights are applied ``recurrent_steps`` times, Liang & Hu 2015) in place of
most of EQTransformer's LSTM and attention layers.

``recurrent="conv"`` (the default) is the int8-safe variant: convolutions
only.  ``recurrent="lstm"`` adds LEQNet's bidirectional LSTM at the
bottleneck; it converts to float TFLite but not to full int8, so keep it
off edge models.

Decoders go back up with ConvTranspose1d (kernel 4, stride 2), no
``nn.Upsample``.  Output (B, 3, T): sigmoid D, P, S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fieldpick.edge.errors import ConfigError

from .blocks import ConvBN, SeparableConv, card_template, fit_length

__all__ = ["LEQNet", "RECURRENT"]

RECURRENT = ("conv", "lstm")


class Bottleneck(nn.Module):
    """Residual bottleneck: 1x1 reduce -> dilated depthwise -> 1x1 expand, plus the input."""

    def __init__(self, ch, kernel, dilation):
        super().__init__()
        mid = max(ch // 2, 1)
        self.body = nn.Sequential(
            ConvBN(ch, mid, 1),
            ConvBN(mid, mid, kernel, dilation=dilation, groups=mid),
            ConvBN(mid, ch, 1, relu=False),
        )

    def forward(self, x):
        return torch.relu(x + self.body(x))


class RecurrentConv(nn.Module):
    """Recurrent convolution block: h <- relu(bn_t(conv(h)) + x), the same conv ``steps`` times."""

    def __init__(self, ch, kernel, steps):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, kernel, padding=kernel // 2, groups=ch, bias=False)
        self.mix = nn.Conv1d(ch, ch, 1, bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm1d(ch) for _ in range(steps))

    def forward(self, x):
        h = x
        for bn in self.norms:
            h = torch.relu(bn(self.mix(self.conv(h))) + x)
        return h


class LEQNet(nn.Module):
    """Detection + P + S picker.  Input (B, 3, T); output (B, 3, T) probabilities D, P, S."""

    architecture = "leqnet"

    @dataclass
    class Config:
        window_samples: int = 3000      # samples
        sampling_rate_hz: float = 100.0
        compress: str = "none"          # input compression after demean + std: 'none' or 'asinh' (card normalisation)
        compress_scale: float = 1.0     # window standard deviations; asinh is linear below, logarithmic above
        width: int = 12                 # channels after the stem; the encoder goes up to 2 * width
        levels: int = 3                 # stride-2 encoder stages (time / 2**levels at the bottleneck)
        kernel: int = 7                 # samples (depthwise kernels), odd
        bottlenecks: int = 3            # residual bottleneck blocks (dilation 1, 2, 4, ...)
        recurrent_steps: int = 2        # weight reuses in the recurrent conv block (0: no block)
        recurrent: str = "conv"         # 'conv' (int8-safe) or 'lstm' (float only)

    def __init__(self, config: "LEQNet.Config"):
        super().__init__()
        c = config
        if c.recurrent not in RECURRENT:
            raise ConfigError("leqnet recurrent %r; allowed: %s" % (c.recurrent, ", ".join(RECURRENT)))
        if c.width < 2 or c.levels < 1 or c.bottlenecks < 0 or c.recurrent_steps < 0:
            raise ConfigError(
                "leqnet width %r, levels %r, bottlenecks %r, recurrent_steps %r; need width >= 2, "
                "levels >= 1, the others >= 0" % (c.width, c.levels, c.bottlenecks, c.recurrent_steps)
            )
        if c.kernel < 3 or c.kernel % 2 == 0:
            raise ConfigError("leqnet kernel %r; it must be odd and >= 3 samples" % (c.kernel,))
        self.config = c
        w = c.width
        self.stem = ConvBN(3, w, c.kernel)
        chans = [w] + [min(2 * w, w * (i + 2)) for i in range(c.levels)]
        self.encoder = nn.Sequential(*[
            SeparableConv(chans[i], chans[i + 1], c.kernel, stride=2) for i in range(c.levels)
        ])
        ch = chans[-1]
        self.bottlenecks = nn.Sequential(*[Bottleneck(ch, c.kernel, 2 ** i) for i in range(c.bottlenecks)])
        self.rcnn = RecurrentConv(ch, c.kernel, c.recurrent_steps) if c.recurrent_steps else nn.Identity()
        self.lstm = nn.LSTM(ch, ch // 2, batch_first=True, bidirectional=True) if c.recurrent == "lstm" else None
        self.decoders = nn.ModuleList(self._decoder(chans, c.kernel) for _ in range(3))
        self.head = nn.ModuleList(nn.Conv1d(chans[0], 1, 1) for _ in range(3))
        self._lengths = [c.window_samples]
        for _ in range(c.levels):
            self._lengths.append((self._lengths[-1] + 2 * (c.kernel // 2) - c.kernel) // 2 + 1)

    @staticmethod
    def _decoder(chans, kernel):
        ups = []
        for i in range(len(chans) - 1, 0, -1):
            ups.append(nn.Sequential(
                nn.ConvTranspose1d(chans[i], chans[i - 1], 4, stride=2, padding=1, bias=False),
                nn.BatchNorm1d(chans[i - 1]),
                nn.ReLU(),
            ))
        return nn.ModuleList(ups)

    def logits(self, x):  # (B, 3, T) -> (B, 3, T) logits D, P, S
        h = self.rcnn(self.bottlenecks(self.encoder(self.stem(x))))
        if self.lstm is not None:
            h = h + self.lstm(h.transpose(1, 2))[0].transpose(1, 2)
        outs = []
        for decoder, head in zip(self.decoders, self.head):
            y = h
            for level, up in zip(range(len(decoder), 0, -1), decoder):
                y = fit_length(up(y), self._lengths[level - 1])
            outs.append(head(y))
        return torch.cat(outs, dim=1)

    def forward(self, x):
        """(B, 3, T) normalised -> (B, 3, T) sigmoid probabilities D, P, S."""
        return torch.sigmoid(self.logits(x))

    def card(self):
        c = self.config
        return card_template(
            self, "detection_probabilities", ["D", "P", "S"], c.window_samples, c.sampling_rate_hz,
            description="LEQNet-style light EQTransformer (Lim et al. 2022), recurrent=%s: detection, P, S traces"
            % c.recurrent,
        )
