"""CPIC: a CNN window classifier for phase identification (Zhu, Peng et al.
2019, "Deep learning for seismic phase detection and picking in the
aftershock zone of 2008 Mw 7.9 Wenchuan earthquake", PEPI 293).

CPIC looks at a short window and says whether a P onset, an S onset or no
onset sits at its candidate sample (``onset_sample``, the centre by
default).  Convolution + BatchNorm + max-pool blocks feed one fully
connected layer, ``head``: moving the model to a new region means
fine-tuning that layer alone (``fieldpick finetune``), which is how CPIC
reached 97 % with few labels.

Forward (B, 3, W) -> (B, 3) probabilities N, P, S.  To pick in a longer
record, :meth:`CPIC.scan` slides the classifier along it (each sub-window
normalised on its own, as the station does) and returns probability traces
at a hop of ``scan_hop`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fieldpick.edge.errors import ConfigError

from .blocks import ConvBN, card_template, model_normalisation, normalise

__all__ = ["CPIC"]


class CPIC(nn.Module):
    """Window classifier.  Input (B, 3, W) normalised; output (B, 3) probabilities N, P, S."""

    architecture = "cpic"

    @dataclass
    class Config:
        window_samples: int = 400       # samples per classified window (4 s at 100 Hz)
        sampling_rate_hz: float = 100.0
        compress: str = "none"          # input compression after demean + std: 'none' or 'asinh' (card normalisation)
        compress_scale: float = 1.0     # window standard deviations; asinh is linear below, logarithmic above
        onset_sample: int = 200         # where in the window the candidate onset sits
        width: int = 16                 # channels of the first block (later blocks up to 2 * width)
        blocks: int = 4                 # conv + max-pool(2) blocks
        kernel: int = 7                 # samples, odd
        scan_hop: int = 5               # samples between classified windows in scan()

    def __init__(self, config: "CPIC.Config"):
        super().__init__()
        c = config
        if c.blocks < 1 or c.width < 2:
            raise ConfigError("cpic blocks %r, width %r; need blocks >= 1, width >= 2" % (c.blocks, c.width))
        if c.window_samples % (2 ** c.blocks):
            raise ConfigError(
                "cpic window_samples %d is not a multiple of 2**blocks = %d" % (c.window_samples, 2 ** c.blocks)
            )
        if not 0 <= c.onset_sample < c.window_samples:
            raise ConfigError(
                "cpic onset_sample %r; allowed: 0 .. %d" % (c.onset_sample, c.window_samples - 1)
            )
        if c.kernel < 1 or c.kernel % 2 == 0 or c.scan_hop < 1:
            raise ConfigError("cpic kernel %r (odd >= 1) / scan_hop %r (>= 1 samples)" % (c.kernel, c.scan_hop))
        self.config = c
        layers, cin = [], 3
        for i in range(c.blocks):
            cout = c.width if i < c.blocks // 2 else 2 * c.width
            layers += [ConvBN(cin, cout, c.kernel), nn.MaxPool1d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin * (c.window_samples // 2 ** c.blocks), 3)

    def logits(self, x):  # (B, 3, W) -> (B, 3)
        return self.head(torch.flatten(self.features(x), 1))

    def forward(self, x):
        """(B, 3, W) normalised -> (B, 3) probabilities N, P, S of an onset at ``onset_sample``."""
        return torch.softmax(self.logits(x), dim=1)

    @torch.no_grad()
    def scan(self, x, batch=512):
        """Slide over (B, 3, T) raw or normalised records -> (B, 3, L) probabilities, L = (T - W) // hop + 1.

        Output step j is the candidate onset at sample ``j * scan_hop + onset_sample``.
        """
        c = self.config
        win = x.unfold(-1, c.window_samples, c.scan_hop)        # (B, 3, L, W)
        b, _, steps, _ = win.shape
        win = normalise(win.permute(0, 2, 1, 3).reshape(b * steps, 3, c.window_samples), model_normalisation(self))
        out = torch.cat([self(win[i:i + batch]) for i in range(0, len(win), batch)])
        return out.reshape(b, steps, 3).permute(0, 2, 1)

    def card(self):
        c = self.config
        return card_template(
            self, "window_class", ["N", "P", "S"], c.window_samples, c.sampling_rate_hz,
            stride_samples=c.window_samples,
            description=(
                "CPIC-style window classifier (Zhu et al. 2019): noise/P/S probability of an onset at "
                "sample %d of each %d-sample window; slide it (hop %d samples) to pick"
                % (c.onset_sample, c.window_samples, c.scan_hop)
            ),
        )
