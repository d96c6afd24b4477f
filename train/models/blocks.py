"""Building blocks shared by the zoo, and the card template every model returns.

All blocks are export-friendly: static shapes, BatchNorm right after each
convolution (foldable into it), ReLU, no upsampling layers.
"""

from __future__ import annotations

from torch import nn

from fieldpick.edge.card import InputSpec, ModelCard, Normalisation, OutputSpec

__all__ = ["ConvBN", "SeparableConv", "fit_length", "card_template", "count_parameters", "normalise"]


class ConvBN(nn.Sequential):
    """Conv1d (no bias) -> BatchNorm1d -> ReLU; 'same' padding for odd kernels.  (B, C, T)."""

    def __init__(self, cin, cout, kernel=7, stride=1, dilation=1, groups=1, relu=True):
        layers = [
            nn.Conv1d(cin, cout, kernel, stride=stride, padding=dilation * (kernel - 1) // 2,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm1d(cout),
        ]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise-separable convolution (MobileNet; Howard et al. 2017).

    A depthwise Conv1d (kernel ``kernel``, ``stride``, ``dilation``) then a
    pointwise 1x1 Conv1d, each followed by BatchNorm and ReLU.  (B, cin, T)
    -> (B, cout, ceil(T / stride)).
    """

    def __init__(self, cin, cout, kernel=7, stride=1, dilation=1):
        super().__init__(
            ConvBN(cin, cin, kernel, stride=stride, dilation=dilation, groups=cin),
            ConvBN(cin, cout, 1),
        )


def fit_length(x, length, left=0):
    """Crop ``x`` (B, C, T') to ``length`` samples starting at ``left``, zero-padding the end if short.

    Shapes are static, so this traces to one slice (and at most one pad).
    """
    x = x[..., left:left + length]
    short = length - x.shape[-1]
    if short > 0:
        x = nn.functional.pad(x, (0, short))
    return x


def count_parameters(model):
    return int(sum(p.numel() for p in model.parameters()))


def card_template(model, kind, labels, window_samples, sampling_rate_hz, stride_samples=1,
                  description="", thresholds=None):
    """A :class:`ModelCard` with the model's I/O contract; export fills the file fields.

    Layouts are those of the exported TFLite file (batch, time, channel);
    in PyTorch the same tensors are (batch, channel, time).
    """
    phases = [lab for lab in labels if lab in ("P", "S")]
    return ModelCard(
        name=model.architecture,
        architecture=model.architecture,
        input=InputSpec(
            sampling_rate_hz=float(sampling_rate_hz),
            window_samples=int(window_samples),
            channels=["Z", "N", "E"],
            layout="NTC",
            normalisation=Normalisation(detrend="demean", scale="std", per_channel=True, epsilon=1e-10),
        ),
        output=OutputSpec(kind=kind, labels=list(labels), stride_samples=int(stride_samples), layout="NTC"),
        thresholds=dict(thresholds or getattr(model, "thresholds", None) or {p: 0.5 for p in phases}),
        parameters=count_parameters(model),
        provenance={"config": _config_dict(model)},
        description=description,
    ).validate()


def _config_dict(model):
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(model.config).items()}


def normalise(x, epsilon=1e-10):
    """Demean and divide by the standard deviation per channel, as the cards declare.  (B, C, T)."""
    x = x - x.mean(dim=-1, keepdim=True)
    return x / (x.std(dim=-1, keepdim=True, unbiased=False) + epsilon)

