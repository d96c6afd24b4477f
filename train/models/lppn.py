"""LPPN: lightweight phase picking network (Yu et al. 2022, "LPPN: a
lightweight network for fast phase picking", Seismological Research Letters).

Instead of one probability per sample, LPPN classifies each stride of
``stride`` samples (noise / P / S) and regresses where the arrival lies inside
that stride, as a fraction in [0, 1).  The encoder is depthwise-separable
convolutions that halve the time axis log2(stride) times, then dilated
separable blocks for context; there is no decoder and no upsampling, which
keeps the int8 graph small.

Output (B, 4, T / stride): channels 0..2 are the class probabilities in card
label order N, P, S (softmax), channel 3 is the in-stride offset (sigmoid).
The arrival time of a P (or S) stride k is ``(k + offset) * stride`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fieldpick.edge.errors import ConfigError

from .blocks import ACTIVATIONS, ConvBN, SeparableConv, card_template

__all__ = ["LPPN", "STRIDES"]

STRIDES = (8, 16, 32)


class LPPN(nn.Module):
    """Per-stride class + offset picker.  Input (B, 3, T); output (B, 4, T // stride)."""

    architecture = "lppn"

    @dataclass
    class Config:
        window_samples: int = 3072      # samples; a multiple of ``stride``
        sampling_rate_hz: float = 100.0
        compress: str = "none"          # input compression after demean + std: 'none' or 'asinh' (card normalisation)
        compress_scale: float = 1.0     # window standard deviations; asinh is linear below, logarithmic above
        stride: int = 16                # samples per output step: 8, 16 or 32
        width: int = 16                 # n: channels of the first stage; later stages use up to 2n
        kernel: int = 7                 # samples (depthwise kernels), odd
        context_blocks: int = 4         # dilated separable blocks at the output rate (dilation 1, 2, 4, ...)
        activation: str = "relu"        # 'relu' (the only one; published checkpoints carry the key)
        highpass_hz: float = 0.0        # causal Butterworth highpass (order 2) the stream goes through first, Hz
                                        # (card input.highpass_hz; 0: none)
        stem_stride: int = 1            # 1, or 2: the stem convolution halves the time axis itself (one
                                        # separable stage fewer; the full-rate stem is ~40 % of a w8's FLOPs)

    def __init__(self, config: "LPPN.Config"):
        super().__init__()
        c = config
        if c.stride not in STRIDES:
            raise ConfigError("lppn stride %r; allowed: %s" % (c.stride, ", ".join(map(str, STRIDES))))
        if c.window_samples % c.stride:
            raise ConfigError(
                "lppn window_samples %d is not a multiple of stride %d; use e.g. %d"
                % (c.window_samples, c.stride, (c.window_samples // c.stride + 1) * c.stride)
            )
        if c.width < 2:
            raise ConfigError("lppn width %r; it must be >= 2 channels" % (c.width,))
        if c.kernel < 3 or c.kernel % 2 == 0:
            raise ConfigError("lppn kernel %r; it must be odd and >= 3 samples" % (c.kernel,))
        if c.context_blocks < 0:
            raise ConfigError("lppn context_blocks %r; it must be >= 0" % (c.context_blocks,))
        if c.stem_stride not in (1, 2):
            raise ConfigError("lppn stem_stride %r; allowed: 1, 2" % (c.stem_stride,))
        if c.activation not in ACTIVATIONS:
            raise ConfigError("lppn activation %r; allowed: %s" % (c.activation, ", ".join(ACTIVATIONS)))
        self.config = c
        n = c.width
        act = c.activation
        self.stem = ConvBN(3, n, c.kernel, stride=c.stem_stride, activation=act)
        stages, cin = [], n
        for i in range((c.stride // c.stem_stride).bit_length() - 1):
            cout = n if i == 0 else 2 * n
            stages.append(SeparableConv(cin, cout, c.kernel, stride=2, activation=act))
            cin = cout
        self.down = nn.Sequential(*stages)
        self.context = nn.ModuleList(
            SeparableConv(cin, cin, c.kernel, dilation=2 ** i, activation=act) for i in range(c.context_blocks)
        )
        self.head = nn.Conv1d(cin, 4, 1)

    def _head(self, x):  # (B, 3, T) -> (B, 4, L)
        h = self.down(self.stem(x))
        for block in self.context:
            h = h + block(h)
        return self.head(h)

    def raw(self, x):
        """(B, 3, T) -> class logits (B, 3, L) and offset logits (B, L), L = T // stride."""
        out = self._head(x)
        return out[:, :3], out[:, 3]

    def forward(self, x):
        """(B, 3, T) normalised -> (B, 4, T // stride): N, P, S probabilities and the offset."""
        out = self._head(x)
        # slices, not an index: the exported graph stays free of GATHER
        return torch.cat([torch.softmax(out[:, :3], dim=1), torch.sigmoid(out[:, 3:])], dim=1)

    def card(self):
        c = self.config
        return card_template(
            self, "stride_class_offset", ["N", "P", "S"], c.window_samples, c.sampling_rate_hz,
            stride_samples=c.stride,
            description=(
                "LPPN (Yu et al. 2022): per-stride noise/P/S probabilities (channels 0-2, label order) "
                "+ in-stride arrival offset in [0, 1) (channel 3); arrival = (k + offset) * stride samples"
            ),
        )
