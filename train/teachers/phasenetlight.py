"""PhaseNetLight (SeisBench's reduced PhaseNet; Zhu & Beroza 2019) with the ETHZ weights, as a teacher.

The architecture as published in SeisBench (layer names and shapes follow
the state dict ``phasenetlight_ethz/ethz.pt.v2``): a 1x1 convolution to 8
channels, four stride-4 kernel-7 convolutions down (8 -> 11 -> 16 -> 22 ->
32 channels; 3001 -> 751 -> 188 -> 47 -> 12 samples), four stride-4
transposed convolutions up, each concatenated with the skip of its level,
BatchNorm and ReLU after every layer, and a 1x1 transposed convolution to
P, S, noise with a softmax.  Input: 3001 samples Z, N, E at 100 Hz, each
window demeaned and divided by its per-channel peak (+1e-10), the
normalisation its weights were trained with (``ethz.json.v2``: norm
'peak', phases 'PSN').
"""

from __future__ import annotations

import numpy as np

from .base import FixedWindowTeacher, teacher_file

__all__ = ["PhaseNetLightTeacher", "build_phasenetlight", "WINDOW"]

WINDOW = 3001


def build_phasenetlight():
    """The PyTorch module (untrained): (B, 3, 3001) normalised ZNE -> (B, 3, 3001) softmax P, S, N."""
    import torch
    from torch import nn

    class Down(nn.Module):
        """Stride-4 kernel-7 convolution that keeps ceil(T / 4) samples (TensorFlow 'same')."""

        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.Conv1d(cin, cout, 7, stride=4, padding=3)

        def forward(self, x):
            return self.conv(x)

    class PhaseNetLight(nn.Module):
        def __init__(self):
            super().__init__()
            width = [8, 11, 16, 22, 32]
            self.inc = nn.Conv1d(3, width[0], 1)
            self.in_bn = nn.BatchNorm1d(width[0])
            for i in range(1, 5):
                setattr(self, "conv%d" % i, Down(width[i - 1], width[i]))
                setattr(self, "bnd%d" % i, nn.BatchNorm1d(width[i]))
            # up level i maps width[5-i] (x2 after the first, for the skip) to width[4-i];
            # padding / output_padding make the lengths 12 -> 47 -> 188 -> 751 -> 3001
            geometry = [(2, 0), (2, 1), (2, 0), (3, 0)]
            for i, (pad, extra) in enumerate(geometry, start=1):
                cin = width[5 - i] * (1 if i == 1 else 2)
                setattr(self, "up%d" % i, nn.ConvTranspose1d(cin, width[4 - i], 7, stride=4, padding=pad,
                                                            output_padding=extra))
                setattr(self, "bnu%d" % i, nn.BatchNorm1d(width[4 - i]))
            self.out = nn.ConvTranspose1d(2 * width[0], 3, 1)

        def forward(self, x):
            x = torch.relu(self.in_bn(self.inc(x)))
            skips = [x]
            for i in range(1, 5):
                x = torch.relu(getattr(self, "bnd%d" % i)(getattr(self, "conv%d" % i)(x)))
                skips.append(x)
            skips.pop()
            for i in range(1, 5):
                x = torch.relu(getattr(self, "bnu%d" % i)(getattr(self, "up%d" % i)(x)))
                x = torch.cat([x, skips.pop()], dim=1)
            return torch.softmax(self.out(x), dim=1)

    return PhaseNetLight()


def normalise(segs):
    """(B, 3, T) -> each window demeaned and divided by its per-channel peak + 1e-10."""
    segs = segs - segs.mean(axis=-1, keepdims=True)
    return segs / (np.abs(segs).max(axis=-1, keepdims=True) + 1e-10)


class PhaseNetLightTeacher(FixedWindowTeacher):
    """PhaseNetLight ETHZ on 3001-sample windows at 50 % overlap, overlaps combined by an edge taper."""

    window = WINDOW

    def __init__(self, name, root, threads=1, family="", trained_on="", licence=""):
        super().__init__(threads)
        self.name, self.family, self.trained_on, self.licence = name, family, trained_on, licence
        self.path = teacher_file(root, "phasenetlight_ethz", "ethz.pt.v2")
        import torch

        self.model = build_phasenetlight()
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state, strict=True)
        self.model.eval()

    def _run(self, segs):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self.model(torch.from_numpy(normalise(segs).astype(np.float32)))
        finally:
            torch.set_num_threads(before)
        return out[:, :2].numpy()
