"""Where does the picker look?  Grad-CAM++ over time (``fieldpick explain``).

Grad-CAM++ (Chattopadhay et al. 2018, "Grad-CAM++: Improved Visual
Explanations for Deep Convolutional Networks") weighs the activation maps
``A_k`` of one convolutional layer by the positive gradients of a target
score ``Y``.  With ``Y = exp(S)`` (the paper's "exponential trick") the
second- and third-order derivatives follow from the first-order gradient
``g = dS/dA`` alone:

    alpha_k(t) = g^2 / (2 g^2 + sum_t' A_k(t') g^3)
    w_k        = sum_t alpha_k(t) relu(g(t))
    L(t)       = relu(sum_k w_k A_k(t))

(the common factor ``exp(S)`` cancels after normalisation).  Over time,
for 1-D networks: ``L`` lives on the layer's cells and is linearly
interpolated (``np.interp``) to the input samples, then scaled to [0, 1].
Li et al. (2020) used this to show that a picker looks where an analyst
would.  ``smooth`` > 0 averages over that many noisy copies of the
normalised input (SmoothGrad, Smilkov et al. 2017; noise sigma =
``noise`` x the input's range), which removes speckle.

The target score S of each output kind:

- ``probabilities`` / ``detection_probabilities`` (PhaseNet, LEQNet): the
  phase probability summed over +-``half_width_s`` around the target sample;
- ``stride_class_offset`` (LPPN): the phase's class logit summed over the
  strides within +-``half_width_s``;
- ``window_class`` (CPIC): the phase's class logit of the window placed
  with its candidate onset (``onset_sample``) on the target sample.

The target sample is the model's own pick of that phase unless given
(explain the pick the station would make).

Which map.  Grad-CAM++ is here as the papers describe it, but over long
1-D maps it loses what makes it useful: the sum ``sum_t A_k(t)`` runs over
thousands of cells, so ``sum_t A g >> 2`` and its channel weight becomes
``w_k ~ (cells with g > 0) / sum_t A_k(t)``, whatever the size of the
gradient; every channel with some positive gradient then adds its whole
time course with the same weight.  On the NCEDC windows its maps put no
more mass near the true onsets than those of a randomised network
(``benchmarks/saliency.py``, NCEDC, default model and PhaseNet teacher:
real / random 0.4-0.7), while plain Grad-CAM (Selvaraju et al. 2017:
``w_k`` = the gradient's mean over time) puts 1.7-3.9x more there.  So ``fieldpick explain`` draws Grad-CAM unless
``--method gradcam++`` (or ``layercam``) is asked for.  :func:`randomised` gives the
same network with re-initialised weights: the model-randomisation sanity
check of Adebayo et al. (2018) (``benchmarks/saliency.py``).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from dataclasses import dataclass

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.stream.windows import normalise

__all__ = ["Explanation", "default_layer", "layer_names", "gradcam_pp", "explain", "randomised",
           "saliency_mass", "main"]

log = logging.getLogger(__name__)

#: seconds either side of the target sample whose outputs make the target score
HALF_WIDTH_S = 0.5
#: what the target score is made of: the phase's logit (default) or its probability
TARGETS = ("logit", "probability")
#: class-activation-map methods (Grad-CAM++ is the default and the subject of this module)
METHODS = ("gradcam++", "gradcam", "layercam")
#: what ``fieldpick explain`` draws unless told (see "Which map" in the module documentation)
DEFAULT_METHOD = "gradcam"


@dataclass
class Explanation:
    """Grad-CAM++ of one phase of one record.

    saliency: (N,) in [0, 1] over the record's samples (0 outside the model's window).
    sample: the target sample (float) in the record.  window: (first, last + 1)
    samples of the record the model saw.  layer: the hooked module's name.
    probability: the model's probability of the phase at the target.
    """

    phase: str
    sample: float
    saliency: np.ndarray
    window: tuple
    layer: str
    probability: float
    smooth: int = 0


def layer_names(model):
    """Names of the modules that may be hooked (convolution blocks and convolutions)."""
    import torch

    return [n for n, m in model.named_modules()
            if n and (isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))
                      or type(m).__name__ in ("ConvBN", "SeparableConv", "Bottleneck", "RecurrentConv"))]


def default_layer(model):
    """The last convolution block before the head: its maps still keep time and see the most.

    PhaseNet: a decoder block at 1/16 of the rate; LPPN: the last context
    block; LEQNet: the recurrent bottleneck shared by D, P and S; CPIC: the
    last convolution block.
    """
    arch = getattr(model, "architecture", "")
    if arch == "phasenet":
        # the decoder block three levels up from the output (1/16 of the rate with stride 4): at the
        # full-rate last block the S logit without its bias is negative everywhere, so S maps are empty
        return "up_same.%d" % max(len(model.up_same) - 3, 0)
    if arch == "lppn":
        return "context.%d" % (len(model.context) - 1) if len(model.context) else "down.%d" % (len(model.down) - 1)
    if arch == "leqnet":
        return "rcnn"
    if arch == "cpic":
        return "features.%d" % (2 * (model.config.blocks - 1))
    names = layer_names(model)
    if not names:
        raise ConfigError("model %r has no convolution layer to explain" % arch)
    return names[-1]


def _module(model, name):
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ConfigError("layer %r; allowed: %s" % (name, ", ".join(layer_names(model))))
    return modules[name]


def _target(model, card, x, phase, index, half_width, target="logit"):
    """(B,) target scores S of ``phase`` at sample ``index`` of windows ``x`` (B, 3, W)."""
    kind = card.output.kind
    col = list(card.output.labels).index(phase)
    if target not in TARGETS:
        raise ConfigError("target %r; allowed: %s" % (target, ", ".join(TARGETS)))
    if kind == "window_class":
        out = model.logits(x)
        return (out if target == "logit" else out.softmax(1))[:, col]
    if kind == "stride_class_offset":
        s = card.output.stride_samples
        logits, _ = model.raw(x)
        logits = logits if target == "logit" else logits.softmax(1)
        cell = int(index // s)
        h = max(int(round(half_width / s)), 0)
        return logits[:, col, max(cell - h, 0): cell + h + 1].sum(-1)
    out = model.logits(x) if target == "logit" else model(x)
    i = int(round(index))
    return out[:, col, max(i - half_width, 0): i + half_width + 1].sum(-1)


def class_map(A, g, method="gradcam++"):
    """Class activation maps (B, L) from activations ``A`` and gradients ``g`` (B, K, L) of one layer.

    'gradcam++': Chattopadhay et al. 2018 with the exponential trick (module
    documentation).  'gradcam': Selvaraju et al. 2017, channel weight = the
    gradient's mean over time.  'layercam': Jiang et al. 2021, positive
    gradient times activation per cell (no pooling over time), meant for
    layers whose maps keep fine time detail.
    """
    if method not in METHODS:
        raise ConfigError("method %r; allowed: %s" % (method, ", ".join(METHODS)))
    if method == "layercam":
        return np.maximum((np.maximum(g, 0.0) * A).sum(1), 0.0)
    if method == "gradcam":
        weights = g.mean(-1)
    else:
        g2, g3 = g * g, g * g * g
        denom = 2.0 * g2 + A.sum(-1, keepdims=True) * g3
        alpha = g2 / np.where(denom != 0.0, denom, 1.0)
        weights = (alpha * np.maximum(g, 0.0)).sum(-1)                # (B, K)
    return np.maximum((weights[:, :, None] * A).sum(1), 0.0)


def gradcam_pp(model, card, window, phase, index, layer=None, smooth=0, noise=0.15, seed=0,
               half_width_s=HALF_WIDTH_S, target="logit", method="gradcam++"):
    """A class activation map over time (``method``, Grad-CAM++ by name) of one raw window (3, W).

    Returns ((W,) saliency in [0, 1], the model's probability of ``phase`` at ``index``).

    index: target sample in the window (for CPIC the window's ``onset_sample``
    is the target).  layer: module name (default :func:`default_layer`).
    smooth: number of noisy copies (0: the window alone).  noise: SmoothGrad
    sigma as a fraction of the normalised window's range.  seed: of that noise.
    target: 'logit' or 'probability' (see the module documentation).
    method: see :func:`class_map`.
    """
    import torch

    if phase not in card.output.labels or phase not in ("P", "S"):
        raise ConfigError("phase %r; allowed: %s" % (phase, ", ".join(p for p in ("P", "S") if p in card.output.labels)))
    if smooth < 0 or not (0.0 <= noise < 1.0):
        raise ConfigError("smooth %r (copies >= 0) / noise %r (fraction of the range in [0, 1))" % (smooth, noise))
    W = card.input.window_samples
    window = np.asarray(window, np.float32)
    if window.shape != (3, W):
        raise DataError("window has shape %s; model %r takes (3, %d)" % (window.shape, card.name, W))
    name = layer or default_layer(model)
    module = _module(model, name)
    x = normalise(window[None], card.input.normalisation)
    if smooth:
        rng = np.random.default_rng(seed)
        sigma = noise * float(x.max() - x.min())
        x = np.concatenate([x, x + rng.normal(0.0, sigma, (smooth,) + x.shape[1:]).astype(np.float32)])
    saved = {}

    def hook(_, __, output):
        saved["A"] = output

    handle = module.register_forward_hook(hook)
    model.eval()
    try:
        xt = torch.from_numpy(x).requires_grad_(False)
        half = int(round(half_width_s * card.input.sampling_rate_hz))
        score = _target(model, card, xt, phase, index, half, target)
        A = saved.get("A")
        if A is None or A.dim() != 3:
            raise ConfigError("layer %r gives %s; Grad-CAM++ over time needs a (B, channels, time) map"
                              % (name, None if A is None else tuple(A.shape)))
        (g,) = torch.autograd.grad(score.sum(), A)
    finally:
        handle.remove()
    cam = class_map(A.detach().double().numpy(), g.double().numpy(), method)  # (B, L)
    L = cam.shape[-1]
    centres = (np.arange(L) + 0.5) * (W / L) - 0.5
    up = np.stack([np.interp(np.arange(W), centres, c) for c in cam]).mean(0)
    top = up.max()
    with torch.no_grad():
        prob = _probability(model, card, torch.from_numpy(x[:1]), phase, index)
    return (up / top if top > 0 else up), prob


def _probability(model, card, x, phase, index):
    col = list(card.output.labels).index(phase)
    out = model(x)[0].numpy()
    if card.output.kind == "window_class":
        return float(out[col])
    cell = int(index // card.output.stride_samples)
    return float(out[col, min(max(cell, 0), out.shape[-1] - 1)])


def _model_window(card, model, n, sample):
    """(first sample, the window's target index) of the model window explaining ``sample`` in a record of ``n``."""
    W = card.input.window_samples
    if card.output.kind == "window_class":
        first = int(round(sample)) - model.config.onset_sample
    else:
        first = int(min(max(round(sample - W / 2.0), 0), max(n - W, 0)))
    return first, sample - first


def _cut(data, first, W):
    """data[:, first:first + W], zero where the window runs past the record."""
    out = np.zeros((3, W), np.float32)
    a, b = max(first, 0), min(first + W, data.shape[1])
    if b > a:
        out[:, a - first: b - first] = data[:, a:b]
    return out


def explain(model, card, data, phase, sample=None, layer=None, smooth=0, noise=0.15, seed=0,
            half_width_s=HALF_WIDTH_S, annotation=None, target="logit", method=DEFAULT_METHOD):
    """Grad-CAM++ of ``phase`` over a record ``data`` (3, N) raw, ZNE: an :class:`Explanation`.

    sample: target sample in the record (default: the model's most probable
    pick of the phase, else the maximum of its probability trace; pass
    ``annotation`` from :func:`fieldpick.train.plot.annotate` to reuse it).
    """
    data = np.asarray(data, np.float32)
    if data.ndim != 2 or data.shape[0] != 3:
        raise DataError("record has shape %s; expected (3, N) in Z, N, E order" % (data.shape,))
    n = data.shape[1]
    if sample is None:
        if annotation is None:
            from fieldpick.train.plot import annotate

            annotation = annotate(model, card, data)
        picks = [p for p in annotation.picks if p[0] == phase]
        if picks:
            sample = max(picks, key=lambda p: p[2])[1]
        else:
            pos, val = annotation.trace(phase)
            sample = float(pos[int(np.argmax(val))])
            log.info("no %s pick above threshold; explaining the probability maximum at sample %.0f", phase, sample)
    if not 0 <= sample < n:
        raise DataError("target sample %r lies outside the record (0 .. %d)" % (sample, n - 1))
    W = card.input.window_samples
    first, index = _model_window(card, model, n, sample)
    sal_w, prob = gradcam_pp(model, card, _cut(data, first, W), phase, index, layer, smooth, noise, seed,
                             half_width_s, target, method)
    sal = np.zeros(n)
    a, b = max(first, 0), min(first + W, n)
    sal[a:b] = sal_w[a - first: b - first]
    return Explanation(phase, float(sample), sal, (a, b), layer or default_layer(model), prob, int(smooth))


_METHOD_NAMES = {"gradcam++": "Grad-CAM++", "gradcam": "Grad-CAM", "layercam": "LayerCAM"}


def randomised(model, seed=0):
    """A copy of ``model`` with every weight re-initialised (and BatchNorm statistics reset): Adebayo et al.'s control."""
    import torch

    torch.manual_seed(seed)
    other = copy.deepcopy(model)
    for m in other.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    other.eval()
    return other


def saliency_mass(saliency, onset, fs, within_s=1.0):
    """Fraction of the saliency's sum within ``within_s`` seconds of ``onset`` (sample); NaN when it sums to 0."""
    s = np.asarray(saliency, np.float64)
    total = s.sum()
    if not total > 0 or not np.isfinite(onset):
        return float("nan")
    t = np.arange(len(s))
    return float(s[np.abs(t - onset) <= within_s * fs].sum() / total)


# ---------------------------------------------------------------- command line
def _parser():
    from fieldpick.train.plot import add_record_arguments

    p = argparse.ArgumentParser(
        prog="fieldpick explain", allow_abbrev=False,
        description="Class activation maps over time: which samples drive the model's P and S picks, drawn "
                    "beneath the waveform and probabilities.  Grad-CAM (Selvaraju et al. 2017) by default; "
                    "Grad-CAM++ (Chattopadhay et al. 2018, as Li et al. 2020 used it for pickers) with "
                    "--method gradcam++ (it fails the randomisation check of benchmarks/saliency.py here).")
    add_record_arguments(p)
    p.add_argument("--model", required=True, metavar="CHECKPOINT", help="a zoo checkpoint (.pt)")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the picture")
    p.add_argument("--phase", choices=("P", "S", "both"), default="both", help="which pick to explain (default both)")
    p.add_argument("--at", type=float, action="append", default=[], metavar="SECONDS",
                   help="explain the output at this time (s after the record start) instead of the model's pick; "
                        "once per phase, in the order P, S")
    p.add_argument("--layer", default=None, help="module to hook (default: the last convolution block)")
    p.add_argument("--smooth", type=int, default=0, metavar="N",
                   help="SmoothGrad: average over N noisy copies (e.g. 16; default 0: off)")
    p.add_argument("--noise", type=float, default=0.15, help="SmoothGrad noise, fraction of the input range (default 0.15)")
    p.add_argument("--half-width", type=float, default=HALF_WIDTH_S,
                   help="seconds either side of the target that make the target score (default %.1f)" % HALF_WIDTH_S)
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,  # see "Which map" above
                   help="class activation map: gradcam++ (Chattopadhay et al. 2018), gradcam (Selvaraju et al. "
                        "2017) or layercam (Jiang et al. 2021); default %s, the one that passes the model-"
                        "randomisation check in benchmarks/saliency.py" % DEFAULT_METHOD)
    p.add_argument("--target", choices=TARGETS, default="logit",
                   help="target score: the phase's logit (default) or its probability, summed around the target")
    p.add_argument("--threshold", action="append", default=[], metavar="PHASE=P", help="override a pick threshold")
    p.add_argument("--dpi", type=int, default=110)
    return p


def main(argv) -> int:
    """``fieldpick explain``: a PNG of Grad-CAM++ beneath the waveform and the probabilities."""
    from fieldpick.train.plot import (
        Record,
        annotate,
        load_model,
        load_record,
        parse_thresholds,
        plot_window,
        start_ns_from,
    )

    args = _parser().parse_args(argv)
    args.start_ns = start_ns_from(args)
    record = load_record(args)
    model, card = load_model(args.model)
    if abs(card.input.sampling_rate_hz - record.fs) > 1e-6:
        raise DataError("record is %g Hz but model %s expects %g Hz" % (record.fs, args.model, card.input.sampling_rate_hz))
    phases = [ph for ph in ("P", "S") if args.phase in (ph, "both") and ph in card.output.labels]
    if len(args.at) > len(phases):
        raise ConfigError("--at given %d times for %d phase(s) (%s)" % (len(args.at), len(phases), ", ".join(phases)))
    n = record.data.shape[1]
    annotation = annotate(model, card, record.data, thresholds=parse_thresholds(args.threshold))
    explanations = []
    for k, phase in enumerate(phases):
        sample = args.at[k] * record.fs if k < len(args.at) else None
        explanations.append(explain(model, card, record.data, phase, sample, args.layer, args.smooth, args.noise,
                                    half_width_s=args.half_width, annotation=annotation, target=args.target,
                                    method=args.method))
    # show the model's window (at least 30 s) around the explained samples
    span = int(max(card.input.window_samples, 30 * record.fs))
    centre = np.mean([e.sample for e in explanations]) if explanations else n / 2.0
    first = int(min(max(round(centre - span / 2.0), 0), max(n - span, 0)))
    last = min(first + span, n)
    shown = Record(record.data[:, first:last], record.fs, record.start_ns + int(round(first * 1e9 / record.fs)),
                   {ph: [s - first for s in v if first <= s < last] for ph, v in record.reference.items()},
                   record.title)
    sub = annotate(model, card, shown.data, thresholds=parse_thresholds(args.threshold))
    saliency = {e.phase: e.saliency[first:last] for e in explanations}
    layer = explanations[0].layer if explanations else default_layer(model)
    title = "%s \u2014 %s at %s%s" % (record.title, _METHOD_NAMES[args.method], layer, ", SmoothGrad x%d" % args.smooth if args.smooth else "")
    plot_window(args.out, shown, sub, saliency=saliency, dpi=args.dpi, title=title,
                saliency_name=_METHOD_NAMES[args.method],
                utc=False if last - first <= 120 * record.fs else None)
    sys.stdout.write("wrote %s (layer %s)\n" % (args.out, layer))
    for e in explanations:
        ref = record.reference.get(e.phase, [])
        near = ""
        if ref:
            onset = min(ref, key=lambda s: abs(s - e.sample))
            near = ", saliency within 1 s of the reference %s: %.2f" % (
                e.phase, saliency_mass(e.saliency, onset, record.fs))
        sys.stdout.write("%s target at %.2f s (p=%.2f)%s\n" % (e.phase, e.sample / record.fs, e.probability, near))
    return 0
