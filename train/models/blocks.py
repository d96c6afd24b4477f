"""Building blocks shared by the zoo, and the card template every model returns.

All blocks are export-friendly: static shapes, BatchNorm right after each
convolution (foldable into it), ReLU, no upsampling layers.
"""

from __future__ import annotations

from torch import nn

from fieldpick.edge.card import InputSpec, ModelCard, Normalisation, OutputSpec
from fieldpick.edge.errors import ConfigError

__all__ = ["ACTIVATIONS", "activation_layer", "ConvBN", "SeparableConv", "fit_length", "card_template", "count_parameters", "model_normalisation",
           "normalise"]


#: activations a block may use
ACTIVATIONS = ("relu",)


def activation_layer(name):
    """The activation module called ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "relu":
        return nn.ReLU()
    raise ConfigError("activation %r; allowed: %s" % (name, ", ".join(ACTIVATIONS)))


class ConvBN(nn.Sequential):
    """Conv1d (no bias) -> BatchNorm1d -> ReLU; 'same' padding for odd kernels.  (B, C, T)."""

    def __init__(self, cin, cout, kernel=7, stride=1, dilation=1, groups=1, relu=True, activation="relu"):
        layers = [
            nn.Conv1d(cin, cout, kernel, stride=stride, padding=dilation * (kernel - 1) // 2,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm1d(cout),
        ]
        if relu:
            layers.append(activation_layer(activation))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise-separable convolution (MobileNet; Howard et al. 2017).

    A depthwise Conv1d (kernel ``kernel``, ``stride``, ``dilation``) then a
    pointwise 1x1 Conv1d, each followed by BatchNorm and ReLU.  (B, cin, T)
    -> (B, cout, ceil(T / stride)).
    """

    def __init__(self, cin, cout, kernel=7, stride=1, dilation=1, activation="relu"):
        super().__init__(
            ConvBN(cin, cin, kernel, stride=stride, dilation=dilation, groups=cin, activation=activation),
            ConvBN(cin, cout, 1, activation=activation),
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
            normalisation=model_normalisation(model),
            highpass_hz=float(getattr(model.config, "highpass_hz", 0.0)),
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


def model_normalisation(model):
    """The card's :class:`Normalisation` of a zoo model: demean, std per channel, and its config's compression.

    epsilon 1e-30 leaves data in physical units (m/s, around 1e-9 and below) intact; 1e-10 flattened it.
    """
    c = model.config
    return Normalisation(detrend="demean", scale="std", per_channel=True, epsilon=1e-30,
                         compress=getattr(c, "compress", "none"), compress_scale=float(getattr(c, "compress_scale", 1.0)))


def normalise(x, norm=None):
    """Torch twin of :func:`fieldpick.edge.stream.windows.normalise` for tensors (B, C, T).

    Used where windows are cut inside the graph (CPIC's scan); supports the
    zoo's normalisation (demean, std per channel, optional asinh) and
    equals the numpy function to float32 rounding (tested).
    """
    import torch

    norm = norm if norm is not None else Normalisation()
    if (norm.detrend, norm.scale, norm.per_channel) != ("demean", "std", True):
        from fieldpick.edge.errors import ConfigError

        raise ConfigError("torch normalise supports detrend 'demean', scale 'std', per channel; got %r, %r, %r"
                          % (norm.detrend, norm.scale, norm.per_channel))
    dtype = x.dtype
    x64 = x.double()
    y = (x64 - x64.mean(dim=-1, keepdim=True)).to(dtype)  # demeaned in float64, as the numpy function
    s = torch.sqrt((y.double() ** 2).mean(dim=-1, keepdim=True))
    y = y * (1.0 / (s + norm.epsilon)).to(dtype)
    if norm.compress == "asinh":
        y = torch.asinh(y * (1.0 / float(norm.compress_scale)))
    return y
