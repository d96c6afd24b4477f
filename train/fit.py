"""The trainer and the ``fieldpick train`` verb.

One :class:`~fieldpick.train.config.TrainConfig` drives a run: AdamW, a
learning-rate schedule (cosine with warm-up, one-cycle or constant), early
stopping on validation F1 (mean of P and S F1, picks matched within
``tolerance_s``), seeded generators, a checkpoint with the model card beside
it (``best.pt`` + ``best.json``), ``last.pt`` for resuming, and tqdm progress
bars showing loss and F1.

Data: training windows are random crops of the long (90 s) NCEDC traces,
so P lands anywhere in ``p_range`` of the window; a share of them are real
noise windows, or have real noise added, or keep only their vertical
component.  Validation and test windows are the fixed 30 s NCEDC crops
(re-cut to the model's window length) and the pre-P noise windows.  An
optional first stage pre-trains on synthetic windows
(``fieldpick.lab.synthetic``) before the real data.

The loss and target of each model follow its card's ``output.kind`` (one
:class:`Task` per kind), so every zoo model goes through the same loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from fieldpick.edge.card import Normalisation
from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.stream.windows import compress, normalise
from fieldpick.train.config import TrainConfig, add_arguments, config_from_args
from fieldpick.train.data.datasets import NCEDC_DIR, WindowSet, load_ncedc, load_ncedc_noise
from fieldpick.train.data.labels import DetectionLabeller, ProbabilityLabeller, StrideLabeller
from fieldpick.train.score import picks_from_outputs, score

__all__ = [
    "RealData", "load_real", "eval_windows", "pad_noise", "normalise", "linear_part", "RandomWindows",
    "task_for", "predict", "plateau_middle", "tune_thresholds", "evaluate", "fit", "train", "main",
]

log = logging.getLogger(__name__)

#: thresholds tried on the validation windows after every epoch (the best per phase counts)
VAL_GRID = (0.2, 0.3, 0.4, 0.5, 0.6)


# ---------------------------------------------------------------- data
@dataclass
class RealData:
    """The NCEDC set as the trainer uses it (all arrays share the trace order).

    events: 90 s traces (9001 samples, P at sample 3000) for random crops.
    crop_offset: (N,) where the published 30 s crop starts in each 90 s trace.
    noise: the 29 s pre-P noise windows of the same traces.
    """

    events: WindowSet
    crop_offset: np.ndarray
    noise: WindowSet

    def subset(self, index):
        return RealData(self.events.subset(index), self.crop_offset[index], self.noise.subset(index))

    @property
    def station(self):
        return self.events.station


def load_real(root=None) -> RealData:
    """Load the NCEDC 90 s traces, their 30 s crop offsets and the pre-P noise windows."""
    root = root or NCEDC_DIR
    events = load_ncedc(root, "90s")
    noise = load_ncedc_noise(root)
    path = os.path.join(root, "phasenet_ncedc_30s.npz")
    if not os.path.exists(path):
        raise DataError("NCEDC file %s is missing; point FIELDPICK_NCEDC at the NCEDC folder" % path)
    z = np.load(path, allow_pickle=False)
    if not np.array_equal(z["trace_name"], events.meta["trace_name"]):
        raise DataError("%s lists its traces in another order than the 90 s file" % path)
    return RealData(events, z["crop_offset_in_90s"].astype(np.int64), noise)


def eval_windows(data: RealData, window_samples) -> WindowSet:
    """The fixed evaluation windows: each 90 s trace cut at its published 30 s crop offset.

    With ``window_samples`` 3000 these are exactly the ``phasenet_ncedc_30s`` windows.
    """
    ev = data.events
    if int(data.crop_offset.max()) + window_samples > ev.window_samples:
        raise DataError("window_samples %d runs past the %d-sample traces" % (window_samples, ev.window_samples))
    idx = data.crop_offset[:, None] + np.arange(window_samples)[None, :]
    waves = np.take_along_axis(ev.waveforms, np.broadcast_to(idx[:, None, :], (len(ev), 3, window_samples)), -1)
    return WindowSet(waves, ev.p_idx - data.crop_offset, ev.s_idx - data.crop_offset, ev.station, ev.fs,
                     dict(ev.meta))


def pad_noise(noise: WindowSet, window_samples):
    """Noise windows cut or reflect-padded at the end to ``window_samples``; returns (waves, valid_samples)."""
    w = noise.waveforms
    valid = min(w.shape[-1], window_samples)
    if w.shape[-1] >= window_samples:
        return w[..., :window_samples].copy(), valid
    extra = window_samples - w.shape[-1]
    if extra >= w.shape[-1]:
        raise DataError("noise windows of %d samples cannot be padded to %d" % (w.shape[-1], window_samples))
    return np.pad(w, ((0, 0), (0, 0), (0, extra)), mode="reflect"), valid


def linear_part(norm: Normalisation) -> Normalisation:
    """``norm`` without its compression: the detrend and scaling, under which windows can be mixed."""
    return dataclasses.replace(norm, compress="none")


class RandomWindows:
    """Random training windows cut from long labeled traces, with real noise mixed in.

    Each call returns ``(x, p, s)``: x (B, 3, T) float32 normalised by
    ``norm`` (the model card's :class:`~fieldpick.edge.card.Normalisation`,
    :func:`fieldpick.edge.stream.windows.normalise`; noise is mixed in
    before its compression), p and s (B,) arrival samples in the window
    (NaN: absent or a noise window).
    P lands uniformly in ``p_range`` (fractions of T) where the trace allows.
    ``noise_fraction`` of the windows are pure noise windows, ``noise_add_fraction``
    of the event windows get a random noise window added at a random
    signal-to-noise ratio, and ``vertical_only_fraction`` of all windows
    lose their N and E components (as 39 of the NCEDC traces have).
    ``soft``: optional (N, 2, L) teacher P/S probabilities of the traces;
    then each call also returns their crops (zero for pure noise windows).
    """

    def __init__(self, events: WindowSet, noise=None, window_samples=3000, p_range=(0.1, 0.75),
                 noise_fraction=0.2, noise_add_fraction=0.2, vertical_only_fraction=0.15, norm=None, soft=None):
        if soft is not None and soft.shape[0] != len(events) or soft is not None and soft.shape[2] != \
                events.window_samples:
            raise DataError("soft targets of shape %s for %d traces of %d samples"
                            % (soft.shape, len(events), events.window_samples))
        self.soft = soft
        if events.window_samples < window_samples:
            raise DataError("event traces have %d samples; need >= window_samples %d"
                            % (events.window_samples, window_samples))
        if len(events) == 0:
            raise DataError("no event traces to train on")
        self.events = events
        self.noise = None
        if noise is not None and len(noise):
            self.noise, self.noise_valid = pad_noise(noise, window_samples)
        self.window_samples = window_samples
        self.p_range = p_range
        self.noise_fraction = noise_fraction if self.noise is not None else 0.0
        self.noise_add_fraction = noise_add_fraction if self.noise is not None else 0.0
        self.vertical_only_fraction = vertical_only_fraction
        self.norm = norm if norm is not None else Normalisation()
        self.norm.validate("RandomWindows norm")

    def crop_starts(self, rng, rows):
        t, n = self.window_samples, self.events.window_samples
        p = self.events.p_idx[rows]
        anchor = np.where(np.isnan(p), self.events.s_idx[rows], p)
        want = anchor - rng.uniform(self.p_range[0], self.p_range[1], len(rows)) * t
        want = np.where(np.isnan(want), rng.uniform(0, n - t, len(rows)), want)
        return np.clip(np.round(want), 0, n - t).astype(np.int64)

    def __call__(self, rng, batch, compressed=True):
        """``compressed=False``: the windows before the normalisation's compression step."""
        t = self.window_samples
        lin = linear_part(self.norm)
        rows = rng.integers(0, len(self.events), batch)
        start = self.crop_starts(rng, rows)
        idx = start[:, None] + np.arange(t)[None, :]
        x = np.take_along_axis(self.events.waveforms[rows], np.broadcast_to(idx[:, None, :], (batch, 3, t)), -1)
        x = normalise(x, lin)
        p = self.events.p_idx[rows] - start
        s = self.events.s_idx[rows] - start
        if self.noise is not None:
            pure = rng.random(batch) < self.noise_fraction
            added = ~pure & (rng.random(batch) < self.noise_add_fraction)
            picks = rng.integers(0, len(self.noise), batch)
            nz = normalise(self.noise[picks], lin)
            x[pure] = nz[pure]
            p[pure] = np.nan
            s[pure] = np.nan
            gain = 10 ** (-rng.uniform(0, 20, batch) / 20)[:, None, None]  # 0-20 dB below the event
            x[added] = normalise(x[added] + gain[added] * nz[added], lin)
        vertical = rng.random(batch) < self.vertical_only_fraction
        x[vertical, 1:] = 0.0
        if compressed:
            x = compress(x, self.norm)
        if self.soft is None:
            return x, p, s
        soft = np.take_along_axis(self.soft[rows], np.broadcast_to(idx[:, None, :], (batch, 2, t)), -1)
        soft = soft.astype(np.float32)
        if self.noise is not None:
            soft[pure] = 0.0
        return x, p, s, soft

    def __str__(self):
        squash = "" if self.norm.compress == "none" else ", %s %g" % (self.norm.compress, self.norm.compress_scale)
        return ("RandomWindows(%d traces, T=%d, P in %s of T, noise %.2f, noise added %.2f, vertical-only %.2f%s)"
                % (len(self.events), self.window_samples, self.p_range, self.noise_fraction,
                   self.noise_add_fraction, self.vertical_only_fraction, squash))


class OnsetWindows:
    """CPIC training windows: short windows with a P onset, an S onset or no onset at ``onset_sample``.

    Draws from :class:`RandomWindows` crops, so the same noise and
    vertical-only mixing applies.  Returns ``(x, cls)``: (B, 3, W) normalised
    and (B,) int64 classes 0 noise, 1 P, 2 S (a third each).  Positive windows
    are jittered by up to ``jitter`` samples; noise windows keep their
    candidate sample at least ``3 * jitter + 10`` samples from any arrival.
    """

    def __init__(self, source: RandomWindows, window_samples, onset_sample, jitter=3):
        self.source, self.w, self.onset, self.jitter = source, window_samples, onset_sample, jitter

    def __call__(self, rng, batch):
        x, p, s = self.source(rng, batch, compressed=False)
        t = x.shape[-1]
        cls = rng.integers(0, 3, batch)
        target = np.where(cls == 1, p, np.where(cls == 2, s, np.nan))
        ok = np.isfinite(target) & (target - self.onset - self.jitter >= 0) & \
            (target - self.onset + self.w + self.jitter <= t)
        cls = np.where(ok, cls, 0)
        onset = np.where(ok, target + rng.integers(-self.jitter, self.jitter + 1, batch), 0.0)
        for i in np.flatnonzero(cls == 0):  # noise: a candidate far from both arrivals
            for _ in range(20):
                c = rng.integers(self.onset, t - self.w + self.onset + 1)
                if all(not np.isfinite(a) or abs(c - a) > 3 * self.jitter + 10 for a in (p[i], s[i])):
                    break
            onset[i] = c
        start = (onset - self.onset).astype(np.int64)
        idx = start[:, None] + np.arange(self.w)[None, :]
        out = np.take_along_axis(x, np.broadcast_to(idx[:, None, :], (batch, 3, self.w)), -1)
        return normalise(out, self.source.norm), cls.astype(np.int64)

    def __str__(self):
        return "OnsetWindows(W=%d, onset at %d, jitter %d, from %s)" % (self.w, self.onset, self.jitter, self.source)


# ---------------------------------------------------------------- tasks (one per output kind)
class Task:
    """Targets, loss and evaluation outputs for one output kind."""

    def __init__(self, model, cfg: TrainConfig):
        self.model, self.cfg = model, cfg

    def sampler(self, source: RandomWindows):
        return source

    def batch(self, sampler, rng, size):
        """(x, target) tensors for one training step."""
        raise NotImplementedError

    def loss(self, x, target):
        raise NotImplementedError

    def bound(self, logits):
        """The logit-bound penalty (0 when ``cfg.logit_bound`` is 0).

        Full-int8 export quantises the class logits per tensor, so their
        calibrated range sets the probability step near the pick threshold:
        logits spanning [-27, 15] give a step of 0.16 in logit, about 0.04 in
        probability at 0.5.  Penalising the excess beyond +-bound keeps the
        range, and so the step, small.
        """
        if not self.cfg.logit_bound:
            return logits.new_zeros(())
        excess = (logits.abs() - self.cfg.logit_bound).clamp(min=0)
        return self.cfg.logit_penalty * (excess * excess).mean()

    def outputs(self, waves, chunk=32):
        """Raw (N, 3, T) windows -> the model's card outputs (N, C, L) as numpy, in eval mode."""
        import torch

        x = normalise(waves, self.model.card().input.normalisation)
        with torch.no_grad():
            if not len(x):  # no windows: the output's shape from one blank window
                return self.model(torch.zeros((1,) + x.shape[1:])).numpy()[:0]
            return np.concatenate([self.model(torch.from_numpy(x[i:i + chunk])).numpy()
                                   for i in range(0, len(x), chunk)])


class ProbabilityTask(Task):
    """PhaseNet: soft-label cross-entropy over N, P, S per sample."""

    def __init__(self, model, cfg):
        super().__init__(model, cfg)
        self.labeller = ProbabilityLabeller(cfg.label_shape, cfg.label_width)

    def batch(self, sampler, rng, size):
        import torch

        x, p, s = sampler(rng, size)
        return torch.from_numpy(x), torch.from_numpy(self.labeller(p, s, x.shape[-1]))

    def loss(self, x, target):
        import torch

        logits = self.model.logits(x)
        logp = torch.log_softmax(logits, dim=1)
        return -(target * logp).sum(dim=1).mean() + self.bound(logits)


class DetectionTask(ProbabilityTask):
    """LEQNet: binary cross-entropy on D, P, S, weighted 0.2 / 0.4 / 0.4 (EQTransformer's emphasis on picks)."""

    weights = (0.2, 0.4, 0.4)

    def __init__(self, model, cfg):
        Task.__init__(self, model, cfg)
        self.labeller = DetectionLabeller(shape=cfg.label_shape, width_samples=cfg.label_width)

    def loss(self, x, target):
        import torch

        logits = self.model.logits(x)
        pos = torch.tensor([1.0, self.cfg.positive_weight, self.cfg.positive_weight])[None, :, None]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pos)
        w = torch.tensor(self.weights)[None, :, None]
        return 3 * (bce * w).mean() + self.bound(logits)


class StrideTask(Task):
    """LPPN: weighted cross-entropy per stride plus L1 on the in-stride offset of P and S strides."""

    def __init__(self, model, cfg):
        super().__init__(model, cfg)
        self.labeller = StrideLabeller(model.config.stride)

    def batch(self, sampler, rng, size):
        import torch

        x, p, s = sampler(rng, size)
        cls, off = self.labeller(p, s, x.shape[-1])
        return torch.from_numpy(x), (torch.from_numpy(cls), torch.from_numpy(off))

    def loss(self, x, target):
        import torch

        cls, off = target
        logits, offset = self.model.raw(x)
        w = torch.tensor([1.0, self.cfg.positive_weight, self.cfg.positive_weight])
        ce = torch.nn.functional.cross_entropy(logits, cls, weight=w)
        mask = cls > 0
        l1 = (torch.sigmoid(offset)[mask] - off[mask]).abs().mean() if mask.any() else offset.sum() * 0
        total = ce + 2.0 * l1 + self.neighbours(offset, mask) + self.bound(logits)
        if self.cfg.stability:
            total = total + self.cfg.stability * self.consistency(x, logits, offset, mask)
        return total

    def consistency(self, x, logits, offset, mask):
        """How far a second pass with int8-sized rounding noise moves the outputs (0 for identical passes).

        The noisy pass adds uniform noise of one int8 step (``U(-q/2, q/2)``)
        to the input (``q = max|x| / 127`` of the batch) and to every ReLU /
        ReLU6 output (``q = max / 255``), which is the error full-int8
        rounding makes at those places.  The loss is the mean squared change
        of the P and S probabilities over all cells plus the mean absolute
        change of the offset on the arrival cells: the two things that move
        a pick.  Gradients flow through both passes.
        """
        import torch

        def jitter(t, levels):
            q = t.detach().abs().amax() / levels
            return t + (torch.rand_like(t) - 0.5) * q

        hooks = [self.model.register_forward_pre_hook(lambda mod, a: (jitter(a[0], 127.0),) + tuple(a[1:]))]
        for m in self.model.modules():
            if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)):
                hooks.append(m.register_forward_hook(lambda mod, a, out: jitter(out, 255.0)))
        try:
            logits2, offset2 = self.model.raw(x)
        finally:
            for h in hooks:
                h.remove()
        p1 = torch.softmax(logits, dim=1)[:, 1:]
        p2 = torch.softmax(logits2, dim=1)[:, 1:]
        loss = ((p1 - p2) ** 2).sum(dim=1).mean()
        if mask.any():
            loss = loss + (torch.sigmoid(offset)[mask] - torch.sigmoid(offset2)[mask]).abs().mean()
        return loss

    def neighbours(self, offset, mask):
        """Offset loss on the noise cells next to an arrival cell (0 when ``cfg.offset_neighbours`` is 0).

        The picker reads the offset of the most probable cell; near a cell
        edge two neighbours are almost tied, and a small change (int8
        rounding, another window's stack) can hand the peak to the
        neighbour, whose offset was never trained.  Here the cell before an
        arrival learns to point at its own end and the cell after at its own
        start (half a sample inside, so the sigmoid stays finite): whichever
        cell wins, the pick lands within a sample of that edge.
        """
        import torch

        if not self.cfg.offset_neighbours:
            return offset.new_zeros(())
        before = torch.zeros_like(mask)
        before[:, :-1] = mask[:, 1:]
        after = torch.zeros_like(mask)
        after[:, 1:] = mask[:, :-1]
        before &= ~mask
        after &= ~mask
        if not (before.any() or after.any()):
            return offset.new_zeros(())
        edge = 0.5 / self.model.config.stride
        q = torch.sigmoid(offset)
        err = torch.cat([(q[before] - (1.0 - edge)).abs(), (q[after] - edge).abs()])
        return self.cfg.offset_neighbours * 2.0 * err.mean()


class WindowClassTask(Task):
    """CPIC: cross-entropy over N, P, S of the window's candidate onset; evaluated by scanning."""

    def sampler(self, source):
        c = self.model.config
        return OnsetWindows(source, c.window_samples, c.onset_sample)

    def batch(self, sampler, rng, size):
        import torch

        x, cls = sampler(rng, size)
        return torch.from_numpy(x), torch.from_numpy(cls)

    def loss(self, x, target):
        import torch

        logits = self.model.logits(x)
        return torch.nn.functional.cross_entropy(logits, target) + self.bound(logits)

    def outputs(self, waves, chunk=8):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
        return np.concatenate([self.model.scan(x[i:i + chunk]).numpy() for i in range(0, len(x), chunk)])


TASKS = {
    "probabilities": ProbabilityTask,
    "detection_probabilities": DetectionTask,
    "stride_class_offset": StrideTask,
    "window_class": WindowClassTask,
}


def task_for(model, cfg):
    kind = model.card().output.kind
    if kind not in TASKS:
        raise ConfigError("output kind %r has no training task; allowed: %s" % (kind, ", ".join(TASKS)))
    return TASKS[kind](model, cfg)


def record_samples(model, cfg):
    """Samples per evaluation record: the model's window, or ``cfg.record_samples`` for a window classifier."""
    c = model.config
    return max(cfg.record_samples, c.window_samples) if model.architecture == "cpic" else c.window_samples


# ---------------------------------------------------------------- evaluation
def predict(model, data: RealData, cfg: TrainConfig, card=None):
    """Picks of ``model`` on the fixed windows of ``data``.

    Returns ``(events, picks, noise_picks, noise_seconds)``: the evaluation
    WindowSet, one pick list per event window, one per noise window (picks
    in the reflected padding dropped), and the noise windows' total length, s.
    """
    card = card or model.card()
    task = task_for(model, cfg)
    model.eval()
    t = record_samples(model, cfg)
    events = eval_windows(data, t)
    picks = picks_from_outputs(task.outputs(events.waveforms), card)
    noise, valid = pad_noise(data.noise, t)
    noise_picks = [[pk for pk in w if pk[1] < valid] for w in picks_from_outputs(task.outputs(noise), card)]
    return events, picks, noise_picks, len(noise) * valid / events.fs


def plateau_middle(grid, f1):
    """The threshold in the middle of the best plateau of ``f1`` (one F1 per entry of ``grid``)."""
    top = np.flatnonzero(f1 >= f1.max() - 1e-9)
    return float(grid[top[len(top) // 2]])


def tune_thresholds(model, val: RealData, cfg: TrainConfig, grid=None, apply=True, choose=plateau_middle):
    """Per-phase pick thresholds that maximise F1 on ``val``, noise-window picks counted as false.

    The model's outputs are computed once; only the picking is repeated for
    each threshold of ``grid``.  ``choose(grid, f1)`` turns each phase's F1
    curve into its threshold (:func:`plateau_middle`; other rules are
    compared in ``benchmarks/pareto.py thresholds``).  With ``apply``, sets
    ``model.thresholds`` (which its ``card()`` reports).  Returns
    ``(thresholds, scores)``, the scores (:func:`score`'s dict) at the
    chosen thresholds.
    """
    grid = np.round(np.arange(0.1, 0.91, 0.05), 2) if grid is None else np.asarray(grid)
    card = model.card()
    task = task_for(model, cfg)
    model.eval()
    t = record_samples(model, cfg)
    events = eval_windows(val, t)
    out = task.outputs(events.waveforms)
    noise, valid = pad_noise(val.noise, t)
    nout = task.outputs(noise)
    seconds = len(noise) * valid / events.fs

    def run(thresholds):
        picks = picks_from_outputs(out, card, thresholds)
        npicks = [[pk for pk in w if pk[1] < valid] for w in picks_from_outputs(nout, card, thresholds)]
        return picks, npicks

    f1 = {"P": [], "S": []}
    blank = np.full(len(noise), np.nan)  # noise windows join as windows without arrivals: their picks are false
    p_all, s_all = np.concatenate([events.p_idx, blank]), np.concatenate([events.s_idx, blank])
    for thr in grid:
        picks, npicks = run({"P": float(thr), "S": float(thr)})
        s = score(picks + npicks, p_all, s_all, events.fs, cfg.tolerance_s)
        for phase in f1:
            f1[phase].append(s[phase + "_f1"])
    best = {phase: choose(grid, np.asarray(values)) for phase, values in f1.items()}
    picks, npicks = run(best)
    scores = score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npicks, seconds)
    if apply:
        model.thresholds = best
        log.info("thresholds tuned on %d validation windows: %s", len(events), best)
    return best, scores


def evaluate(model, data: RealData, cfg: TrainConfig, card=None):
    """Score ``model`` on the fixed windows of ``data`` (events and noise); returns :func:`score`'s dict."""
    events, picks, noise_picks, seconds = predict(model, data, cfg, card)
    return score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s,
                 noise_picks=noise_picks, noise_seconds=seconds)


# ---------------------------------------------------------------- the loop
def _schedule(optimizer, cfg, total_steps, warmup_steps):
    import torch

    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 2))
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    def cosine(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        frac = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


def _train_mode(model):
    """Train mode, but BatchNorm layers whose weights are frozen keep their running statistics."""
    import torch

    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.weight is not None and not m.weight.requires_grad:
            m.eval()


def fit(model, cfg: TrainConfig, source: RandomWindows, val: RealData, out_dir, epochs=None, stage="train",
        select="best", task=None):
    """Train ``model`` in place; keep the best validation-F1 weights in it and in ``out_dir/best.pt``.

    source: training windows.  val: held-out data for early stopping.
    Only parameters with ``requires_grad`` are trained (fine-tuning freezes
    the rest).  Writes ``best.pt`` + ``best.json`` (card) and ``last.pt``
    (resumable: optimiser, schedule, generators, history) every epoch.
    ``select='last'`` keeps the last epoch's weights instead (a final run
    whose validation windows are part of its training data).
    With ``cfg.ema_decay``, an exponential moving average of the weights
    (BatchNorm statistics included) is updated after every step, and it is
    what is validated, saved as ``best.pt`` and left in ``model``: on a few
    hundred windows it smooths out the last steps' noise, which otherwise
    decides which epoch early stopping keeps.
    ``task``: a :class:`Task` to train with instead of ``task_for(model, cfg)``
    (distillation passes one whose loss adds the teacher's terms; evaluation
    always uses the model's own task).
    Returns the history: one dict per epoch.
    """
    import torch
    from tqdm import tqdm

    from fieldpick.edge.card import MetricSet
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint

    os.makedirs(out_dir, exist_ok=True)
    epochs = cfg.epochs if epochs is None else epochs
    task = task if task is not None else task_for(model, cfg)
    sampler = task.sampler(source)
    size = len(source.events) if hasattr(source, "events") else len(source)
    steps = cfg.steps_per_epoch or max(1, math.ceil(size / cfg.batch_size))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _schedule(optimizer, cfg, epochs * steps, max(1, int(cfg.warmup_epochs * steps)))
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    history, best, start_epoch, stale = [], None, 0, 0
    ema = _weights(model) if cfg.ema_decay else None
    last_path, best_path = os.path.join(out_dir, "last.pt"), os.path.join(out_dir, "best.pt")
    if cfg.resume and os.path.exists(last_path):
        saved, _, extra = load_checkpoint(last_path)
        if extra.get("stage") == stage:
            model.load_state_dict(saved.state_dict())
            optimizer.load_state_dict(extra["optimizer"])
            scheduler.load_state_dict(extra["scheduler"])
            rng.bit_generator.state = extra["numpy_rng"]
            torch.set_rng_state(extra["torch_rng"])
            history, best, stale = extra["history"], extra["best"], extra["stale"]
            if ema is not None:
                ema = extra.get("ema") or _weights(model)
            start_epoch = len(history)
            log.info("resuming %s stage %r at epoch %d", out_dir, stage, start_epoch)
        else:
            log.info("%s holds stage %r, not %r: starting this stage afresh", last_path, extra.get("stage"), stage)
    log.info("%s: %s, %d epochs x %d steps, data %s", stage, model.architecture, epochs, steps, sampler)
    for epoch in range(start_epoch, epochs):
        _train_mode(model)
        losses = []
        from fieldpick.train.progress import bar as progress_bar

        # a bar (loss, time left) on a terminal only; silent in logs and pipes
        bar = progress_bar(range(steps), desc="%s %d/%d" % (stage, epoch + 1, epochs), unit="step", want=cfg.progress)
        t0 = time.time()
        for _ in bar:
            x, target = task.batch(sampler, rng, cfg.batch_size)
            loss = task.loss(x, target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                _ema_step(ema, model, cfg.ema_decay)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss="%.4f" % np.mean(losses[-20:]))
        live = None
        if ema is not None:  # validate and keep the average; train on from the live weights
            live = _weights(model)
            model.load_state_dict(ema)
        thresholds, metrics = tune_thresholds(model, val, cfg, VAL_GRID, apply=False)
        row = {"stage": stage, "epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
               "seconds": time.time() - t0}
        row.update({k: metrics.get(k, float("nan")) for k in ("f1", "P_f1", "S_f1", "P_mae_s", "S_mae_s",
                                                              "false_picks_per_hour")})
        history.append(row)
        key = (row["f1"], -np.nan_to_num(row["P_mae_s"] + row["S_mae_s"], nan=9.0))
        improved = best is None or key > tuple(best)
        if improved:
            best, stale = list(key), 0
            card = model.card()
            card.thresholds = thresholds
            card.metrics = [MetricSet(data="ncedc", split="%s validation (%d windows, stations held out)"
                                      % (stage, len(val.events)),
                                      values={k: float(v) for k, v in metrics.items() if np.isfinite(v)})]
            card.provenance["train_config"] = cfg.to_dict()
            card.provenance["epoch"] = epoch + 1
            save_checkpoint(best_path, model, card)
            card.save(os.path.join(out_dir, "best.json"))
        else:
            stale += 1
        if live is not None:
            model.load_state_dict(live)
        msg = "%s epoch %d/%d loss %.4f val F1 %.3f (P %.3f S %.3f)%s" % (
            stage, epoch + 1, epochs, row["loss"], row["f1"], row["P_f1"], row["S_f1"], " *" if improved else "")
        if cfg.progress:
            tqdm.write(msg, file=sys.stderr)
        log.info(msg)
        save_checkpoint(last_path, model, extra={
            "stage": stage, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "history": history, "best": best, "stale": stale, "config": cfg.to_dict(), "ema": ema})
        if cfg.patience and stale >= cfg.patience:
            log.info("%s: no better validation F1 for %d epochs; stopping", stage, stale)
            break
    if select == "best" and os.path.exists(best_path):
        saved, best_card, _ = load_checkpoint(best_path)
        model.load_state_dict(saved.state_dict())
        model.thresholds = dict(best_card.thresholds)
    elif ema is not None:
        model.load_state_dict(ema)
    with open(os.path.join(out_dir, "history_%s.json" % stage), "w") as f:
        json.dump(history, f, indent=1)
    return history


def _weights(model):
    """A detached copy of ``model``'s state (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _ema_step(ema, model, decay):
    """ema <- decay * ema + (1 - decay) * weights, for every float tensor; integer buffers are copied."""
    for k, v in model.state_dict().items():
        if v.dtype.is_floating_point:
            ema[k].mul_(decay).add_(v.detach(), alpha=1.0 - decay)
        else:
            ema[k].copy_(v)


def station_split(stations, fraction, seed):
    """Boolean mask of the windows whose station falls in a seeded ``fraction`` of the stations."""
    names = np.unique(stations)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(names, max(1, int(round(fraction * len(names)))), replace=False))
    return np.array([s in held for s in stations])


_SYNTHETIC = {}  # (windows, seed, samples, options) -> the generated event and noise windows, this process only


def synthetic_source(cfg, window_samples, norm=None):
    """Synthetic training windows from ``fieldpick.lab.synthetic`` (pre-training), normalised by ``norm``."""
    try:
        from fieldpick.lab import synthetic
    except ImportError:
        raise ConfigError("pretrain_windows needs fieldpick.lab.synthetic, which is not in this build") from None
    length = 2 * window_samples
    key = (cfg.pretrain_windows, cfg.seed, length, json.dumps(cfg.synthetic, sort_keys=True))
    if key not in _SYNTHETIC:  # generating thousands of windows takes minutes; folds share them
        _SYNTHETIC.clear()
        _SYNTHETIC[key] = (
            synthetic.event_windows(cfg.pretrain_windows, cfg.seed, window_samples=length, fs=100.0,
                                    **cfg.synthetic),
            synthetic.noise_windows(max(1, cfg.pretrain_windows // 4), cfg.seed + 1, window_samples=length, fs=100.0,
                                    **cfg.synthetic),
        )
    ev, nz = _SYNTHETIC[key]
    events = WindowSet(ev["waveforms"].astype(np.float32), ev["p_idx"].astype(float), ev["s_idx"].astype(float),
                       np.array(["SYN"] * len(ev["waveforms"])))
    noise = WindowSet(nz["waveforms"].astype(np.float32), nz["p_idx"].astype(float), nz["s_idx"].astype(float),
                      np.array(["SYN"] * len(nz["waveforms"])))
    return RandomWindows(events, noise, window_samples, cfg.p_range, cfg.noise_fraction,
                         cfg.noise_add_fraction, cfg.vertical_only_fraction, norm=norm)


def real_source(cfg, data: RealData, window_samples, norm=None):
    """Random crops of the real traces (:class:`RandomWindows`), normalised by ``norm`` (the model card's)."""
    return RandomWindows(data.events, data.noise, window_samples, cfg.p_range, cfg.noise_fraction,
                         cfg.noise_add_fraction, cfg.vertical_only_fraction, norm=norm)


def train(cfg: TrainConfig, train_data: RealData, val_data: RealData, out_dir=None, model=None, select="best",
          source=None, task=None):
    """The whole recipe: optional synthetic pre-training, then the real windows.  Returns (model, history).

    source: the real-data training windows (default: random crops of ``train_data``, :func:`real_source`);
    task: the training task for them (default: the model's own, :func:`task_for`).
    """
    import torch

    from fieldpick.train.models import build

    cfg.validate()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = out_dir or cfg.out_dir
    model = model if model is not None else build(cfg.architecture, cfg.model)
    t_train = record_samples(model, cfg)
    norm = model.card().input.normalisation
    history = []
    if cfg.pretrain_windows:
        history += fit(model, cfg, synthetic_source(cfg, t_train, norm), val_data, out_dir,
                       epochs=cfg.pretrain_epochs, stage="pretrain", select=select)
    source = source if source is not None else real_source(cfg, train_data, t_train, norm)
    history += fit(model, cfg, source, val_data, out_dir, stage="train", select=select, task=task)
    if cfg.tune_thresholds and select == "best":
        tune_thresholds(model, val_data, cfg)
        _rewrite_best(model, out_dir)
    return model, history


def _rewrite_best(model, out_dir):
    """Put the tuned thresholds into the saved best card and checkpoint."""
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint

    path = os.path.join(out_dir, "best.pt")
    if not os.path.exists(path):
        return
    _, card, extra = load_checkpoint(path)
    card.thresholds = dict(model.thresholds)
    save_checkpoint(path, model, card, extra)
    card.save(os.path.join(out_dir, "best.json"))


def best_epoch(history, stage="train"):
    """The first epoch of the real-data ``stage`` with the best validation F1 (0 when there is none)."""
    real = [h for h in history if h.get("stage") == stage]
    if not real:
        return 0
    best_f1 = max(h["f1"] for h in real)
    return int([h["epoch"] for h in real if h["f1"] == best_f1][0])


# ---------------------------------------------------------------- command line
def final_epochs(fold_epochs, history, stage="train"):
    """The epoch count of a final retrain on all stations, and the rule that chose it.

    The median of the fold models' best epochs when the recipe was
    cross-validated (five validation splits), else the validation run's own.
    """
    fold_epochs = [e for e in fold_epochs if e]
    if fold_epochs:
        return int(np.ceil(np.median(fold_epochs))), "median of the %d fold models' best epochs %s" % (
            len(fold_epochs), fold_epochs)
    return best_epoch(history, stage), "best epoch of the validation run"


def final_thresholds(fold_thresholds, own):
    """The pick thresholds of a final model, and the rule that chose them.

    Per phase, the median of the fold models' tuned thresholds when the
    recipe was cross-validated (five validation splits of ~25 windows each,
    whose choices scatter by 0.3), else ``own``, the validation run's.
    """
    fold_thresholds = [t for t in fold_thresholds if t]
    if not fold_thresholds:
        return dict(own), "tuned on the validation stations"
    out = {ph: float(np.median([t[ph] for t in fold_thresholds])) for ph in sorted(fold_thresholds[0])}
    return out, "median of the %d fold models' tuned thresholds %s" % (len(fold_thresholds), fold_thresholds)


def publish(model, card, prefix):
    """Write ``model`` as PREFIX.pt and its ``card`` as PREFIX.json (``--publish``); returns ``prefix``."""
    from fieldpick.train.checkpoint import save_checkpoint

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    save_checkpoint(prefix + ".pt", model, card)
    card.save(prefix + ".json")
    return prefix


def _metric_set(split, values):
    from fieldpick.edge.card import MetricSet

    return MetricSet(data="ncedc", split=split,
                     values={k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and np.isfinite(v)})


def main(argv) -> int:
    """``fieldpick train``: train one model from a recipe file and/or options."""
    from fieldpick.train.checkpoint import save_checkpoint

    parser = argparse.ArgumentParser(
        prog="fieldpick train", allow_abbrev=False,
        description="Train a picker on the NCEDC windows (stations split into train and validation). "
                    "Options override the recipe file; --model KEY=VALUE sets the network's own config.")
    add_arguments(parser)
    parser.add_argument("--crossval", type=int, default=0, metavar="K",
                        help="first score the recipe by K-fold cross-validation split by station; "
                             "the pooled scores go into the card")
    parser.add_argument("--fold-seed", type=int, metavar="N",
                        help="with --crossval: seed of the station folds and validation stations (default: the "
                             "recipe's seed); fix it to vary only the weights and training windows with --seed")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="with --crossval and data 'corpus': train N folds at once in separate processes")
    parser.add_argument("--final", action="store_true",
                        help="after choosing the epoch count on the validation split, retrain on all stations")
    parser.add_argument("--publish", metavar="PREFIX",
                        help="also write the chosen model as PREFIX.pt and its card as PREFIX.json")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    if cfg.data == "corpus":
        from fieldpick.train.generalise import main_corpus

        return main_corpus(cfg, args, argv)
    if cfg.data != "ncedc":
        raise ConfigError("fieldpick train --data %r: only 'ncedc' trains end to end here (synthetic data "
                          "is used through pretrain_windows)" % cfg.data)
    data = load_real(cfg.data_dir or None)
    out = {"out_dir": cfg.out_dir}
    metric_sets = []
    if args.crossval:
        from fieldpick.train.crossval import cross_validate

        cv = cross_validate(cfg, data, k=args.crossval, out_dir=os.path.join(cfg.out_dir, "cv"),
                            fold_seed=args.fold_seed)
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(os.path.join(cfg.out_dir, "crossval.json"), "w") as f:
            json.dump(cv, f, indent=1, default=float)
        out["crossval"] = cv["pooled"]
        metric_sets.append(_metric_set(
            "%d-fold cross-validation split by station, pooled over %d event and %d noise windows (each scored "
            "by a model that never saw its station)" % (args.crossval, len(data.events), len(data.noise)),
            cv["pooled"]))
    held = station_split(data.station, cfg.val_fraction, cfg.seed)
    model, history = train(cfg, data.subset(~held), data.subset(held))
    metrics = evaluate(model, data.subset(held), cfg)
    out["validation"] = metrics
    metric_sets.append(_metric_set("validation stations (%d windows)%s" % (
        int(held.sum()), ", before the final retrain on all stations" if args.final else ""), metrics))
    card_path = os.path.join(cfg.out_dir, "best.json")
    if args.final:
        epochs, epochs_rule = final_epochs([s.get("best_epoch") for s in (cv["folds"] if args.crossval else [])],
                                           history)
        log.info("final retrain on all stations: %d epochs (%s)", epochs, epochs_rule)
        final_cfg = TrainConfig.from_dict(dict(cfg.to_dict(), epochs=max(epochs, 1), patience=0))
        thresholds, thresholds_rule = final_thresholds(
            [f.get("thresholds") for f in (cv["folds"] if args.crossval else [])], model.thresholds)
        final_dir = os.path.join(cfg.out_dir, "final")
        model, _ = train(final_cfg, data, data.subset(held), out_dir=final_dir, select="last")
        model.thresholds = thresholds  # chosen on validation stations, before the retrain
        card_path = os.path.join(final_dir, "final.json")
        out["final"] = final_dir
    card = model.card()
    card.name = cfg.name
    card.metrics = metric_sets
    card.provenance.update({"train_config": cfg.to_dict(), "final_retrain_epochs": final_cfg.epochs if args.final else 0,
                            "command": "fieldpick train " + " ".join(argv)})
    if args.final:
        card.provenance["final_retrain_epochs_rule"] = epochs_rule
        card.provenance["final_thresholds_rule"] = thresholds_rule
        save_checkpoint(os.path.join(final_dir, "final.pt"), model, card)
    card.save(card_path)
    if args.publish:
        out["published"] = publish(model, card, args.publish)
    sys.stdout.write(json.dumps(out, indent=1, default=float) + "\n")
    return 0
