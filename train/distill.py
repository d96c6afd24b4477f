"""Teacher-student distillation and the ``fieldpick distill`` verb.

A small per-stride student (LPPN, Yu et al. 2022) learns from a PhaseNet
teacher (Zhu & Beroza 2019) through two extra losses on top of its own
labeled loss, in the spirit of selective knowledge distillation (Hinton et
al. 2015 for soft targets; Romero et al. 2015, FitNets, for feature
regression; a sparse choice of teacher channels as in selective KD):

- soft targets: the teacher's per-sample probabilities at temperature
  ``temperature``, averaged over each student stride (so a stride gets the
  share of the teacher's P/S mass that falls inside it), taught by a
  class-weighted cross-entropy scaled by ``temperature**2``; and the
  teacher's in-stride arrival (the centroid of its P+S probability inside
  the stride) for the student's offset channel.  The teacher can label any
  window, so ``unlabeled_per_batch`` synthetic windows
  (:mod:`fieldpick.lab.synthetic`, their labels thrown away) join every
  batch and are learned from the teacher alone.
- selective feature regression: the ``feature_channels`` teacher channels
  of layer ``teacher_layer`` with the largest effect on the teacher's P and
  S output (first-order Taylor importance, |activation x gradient|, Molchanov
  et al. 2017) are chosen once; a 1x1 convolution (the adapter, discarded
  after training) maps the student's last features onto them and the mean
  squared error of the standardised channels is added to the loss.  The
  adapter is solved in closed form on each batch (ridge least squares), so
  it adds no parameters and nothing to the checkpoint.

Everything else (optimiser, schedule, early stopping on validation F1,
checkpoints, threshold tuning) is :func:`fieldpick.train.fit.fit`: this
module only supplies a :class:`DistillTask` to it.

Cross-validation reuses the teacher of each fold (``runs/zoo/phasenet/foldK``
from ``benchmarks/zoo.py`` or ``fieldpick train --crossval``), which must
have been trained with the same ``k`` and seed, so no teacher ever saw the
stations its student is scored on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig, add_arguments, config_from_args
from fieldpick.train.fit import RandomWindows, StrideTask

__all__ = ["DistillConfig", "stride_targets", "peak_offsets", "select_channels", "DistillTask", "UnlabeledMix",
           "distill", "cross_validate_distill", "main"]

log = logging.getLogger(__name__)


TEACHER_OFFSETS = ("all", "unlabeled", "peak")


@dataclass
class DistillConfig:
    """The distillation knobs (the student's own recipe is a :class:`TrainConfig`)."""

    temperature: float = 2.0          # softens the teacher's per-sample probabilities
    soft_weight: float = 0.5          # weight of the soft-target terms (labeled loss gets 1 - soft_weight)
    feature_weight: float = 0.5       # weight of the selective feature regression (0: off)
    feature_channels: int = 8         # teacher channels regressed onto (the sparse selection)
    teacher_layer: str = "up_same.1"  # teacher module whose output is regressed (PhaseNet: 32 ch at T/16)
    unlabeled_per_batch: int = 4      # synthetic windows per batch, learned from the teacher only
    unlabeled_windows: int = 400      # size of the synthetic pool they are drawn from
    selection_windows: int = 64       # windows used to rank the teacher channels
    teacher_offsets: str = "all"      # what the teacher teaches the offset channel: 'all' (every window,
                                      # the centroid of its mass inside each stride), 'unlabeled' (the same on
                                      # unlabeled windows only: labeled ones learn offsets from their picks),
                                      # or 'peak' (every window; each stride points at the teacher's nearest
                                      # peak, clamped into the stride: see :func:`peak_offsets`)

    def validate(self):
        if not self.temperature > 0:
            raise ConfigError("temperature is %r; it must be > 0" % (self.temperature,))
        for name in ("soft_weight",):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError("%s is %r; it must lie in [0, 1]" % (name, getattr(self, name)))
        if self.feature_weight < 0:
            raise ConfigError("feature_weight is %r; it must be >= 0" % (self.feature_weight,))
        for name in ("feature_channels", "selection_windows"):
            if getattr(self, name) < 1:
                raise ConfigError("%s is %r; it must be >= 1" % (name, getattr(self, name)))
        for name in ("unlabeled_per_batch", "unlabeled_windows"):
            if getattr(self, name) < 0:
                raise ConfigError("%s is %r; it must be >= 0" % (name, getattr(self, name)))
        if self.teacher_offsets not in TEACHER_OFFSETS:
            raise ConfigError("teacher_offsets %r; allowed: %s" % (self.teacher_offsets, ", ".join(TEACHER_OFFSETS)))
        if self.unlabeled_per_batch and not self.unlabeled_windows:
            raise ConfigError("unlabeled_per_batch is %d but unlabeled_windows is 0" % self.unlabeled_per_batch)
        return self


# ---------------------------------------------------------------- teacher targets
def stride_targets(probs, stride):
    """Teacher per-sample probabilities (B, 3, T) -> per-stride soft targets.

    Returns ``(classes, offset, weight)``: classes (B, 3, T // stride), the
    mean of the probabilities over each stride (each column sums to 1);
    offset (B, T // stride), the centroid of the P+S probability inside the
    stride as a fraction in [0, 1) (the LPPN offset convention); weight
    (B, T // stride), the mean P+S probability of the stride (how much the
    offset target counts).
    """
    import torch

    b, c, t = probs.shape
    if t % stride:
        raise ConfigError("teacher output has %d samples, not a multiple of the student stride %d" % (t, stride))
    steps = t // stride
    cls = probs.reshape(b, c, steps, stride).mean(dim=-1)
    mass = probs[:, 1:].sum(dim=1).reshape(b, steps, stride)
    pos = torch.arange(stride, dtype=probs.dtype) / stride
    offset = (mass * pos).sum(-1) / mass.sum(-1).clamp_min(1e-6)
    return cls, offset, mass.mean(-1)


def peak_offsets(probs, stride, smooth=9):
    """Per-stride offset targets that point at the teacher's peak (B, T // stride).

    The centroid of :func:`stride_targets` is where the teacher's mass sits
    *inside* a stride.  For the stride that holds an arrival that is the
    arrival; for its neighbours, whose share of the peak is the peak's tail,
    it lies towards their middle.  An arrival near a stride edge gives two
    almost tied strides, and the picker reads the offset of whichever wins:
    with centroid targets the two point 10 samples apart (measured on the
    shipped student, docs/compression.md "Peak offsets"), so a 0.01 change
    of probability (int8 rounding, another window's stack) moves the pick
    by 10 samples.  In the station pipeline, where overlapping windows are
    stacked, the effect is smaller: the option is measured there and not
    the default.

    Here every stride points at the teacher's strongest P+S peak within one
    stride either side of it (the mass smoothed over ``smooth`` samples,
    then its maximum), clamped into the stride half a sample from its
    edges.  The stride holding the peak gets the peak; its neighbours get
    the edge they share with it, so whichever of two tied strides wins, the
    pick lands within a sample of the same time.
    """
    import torch.nn.functional as F

    b, c, t = probs.shape
    if t % stride:
        raise ConfigError("teacher output has %d samples, not a multiple of the student stride %d" % (t, stride))
    mass = probs[:, 1:].sum(dim=1, keepdim=True)
    if smooth > 1:
        mass = F.avg_pool1d(mass, smooth, stride=1, padding=smooth // 2, count_include_pad=False)
    padded = F.pad(mass[:, 0], (stride, stride))
    around = padded.unfold(-1, 3 * stride, stride)  # (B, steps, 3 strides): the stride and one each side
    peak = around.argmax(dim=-1).to(probs.dtype) - stride  # samples from the stride's start
    edge = 0.5 / stride
    return (peak / stride).clamp(edge, 1.0 - edge)


def _module(model, dotted):
    try:
        return model.get_submodule(dotted)
    except AttributeError:
        raise ConfigError("teacher has no module %r; e.g. %s" % (
            dotted, ", ".join(n for n, _ in list(model.named_children())[:6]))) from None


class _Capture:
    """Keeps the output of one module on every forward pass (a forward hook)."""

    def __init__(self, module, pre=False):
        self.value = None
        if pre:
            self.handle = module.register_forward_pre_hook(lambda m, inp: self._keep(inp[0]))
        else:
            self.handle = module.register_forward_hook(lambda m, inp, out: self._keep(out))

    def _keep(self, value):
        self.value = value

    def remove(self):
        self.handle.remove()


def select_channels(teacher, layer, windows, k):
    """The ``k`` channels of ``teacher``'s ``layer`` with the largest effect on its P and S output.

    Importance of channel c: mean over windows of |sum_t A_ct * dY/dA_ct|,
    Y the summed P and S probabilities (first-order Taylor estimate of the
    output change when the channel is removed; Molchanov et al. 2017).
    windows: (N, 3, T) normalised float32.  Returns ``(index, importance,
    mean, std)``: the chosen channel indices (most important first), every
    channel's importance, and the chosen channels' mean and std (for
    standardising them).
    """
    import torch

    teacher.eval()
    cap = _Capture(_module(teacher, layer))
    try:
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        scores, feats = [], []
        for i in range(0, len(x), 16):
            cap.value = None
            out = teacher(x[i:i + 16])
            act = cap.value
            (grad,) = torch.autograd.grad(out[:, 1:].sum(), act)
            scores.append((act * grad).sum(-1).abs().detach())
            feats.append(act.detach())
    finally:
        cap.remove()
    importance = torch.cat(scores).mean(0)
    if k > len(importance):
        raise ConfigError("feature_channels %d; teacher layer %r has only %d channels" % (k, layer, len(importance)))
    index = torch.argsort(importance, descending=True)[:k]
    f = torch.cat(feats)[:, index]
    return index, importance, f.mean(dim=(0, 2)), f.std(dim=(0, 2)).clamp_min(1e-6)


def ridge_residual(h, f, ridge=1e-3):
    """Mean squared residual of the best linear map (with bias) from features ``h`` to targets ``f``.

    h: (B, C, L) student features; f: (B, K, L) targets.  The map is the
    ridge solution W = (H'H + ridge * n * I)^-1 H'F over all B*L positions
    (H with a column of ones), so it is a 1x1-convolution adapter fitted to
    the batch; the residual is differentiable in ``h``.
    """
    import torch

    b, c, n_t = h.shape
    hh = torch.cat([h.transpose(1, 2).reshape(-1, c), torch.ones(b * n_t, 1, dtype=h.dtype)], dim=1)
    ff = f.transpose(1, 2).reshape(-1, f.shape[1])
    n = hh.shape[0]
    gram = hh.T @ hh + ridge * n * torch.eye(c + 1, dtype=h.dtype)
    w = torch.linalg.solve(gram, hh.T @ ff)
    return ((hh @ w - ff) ** 2).mean()


# ---------------------------------------------------------------- data
class UnlabeledMix:
    """Labeled training windows plus ``extra`` windows whose labels are thrown away.

    Returns ``(x, p, s, labeled)``: the ``batch`` labeled windows of
    ``source`` first, then ``extra`` windows of ``pool`` (labels NaN,
    ``labeled`` False).  The labeled part draws from the caller's ``rng``
    exactly as ``source`` alone would and the pool from its own generator
    (``pool_seed``), so a student trained without the pool sees the same
    labeled windows, batch after batch.
    """

    def __init__(self, source: RandomWindows, pool=None, extra=0, pool_seed=0):
        if extra and pool is None:
            raise ConfigError("extra is %d but no unlabeled pool was given" % extra)
        self.source, self.pool, self.extra = source, pool, extra
        self.pool_rng = np.random.default_rng(pool_seed)
        self.events = source.events  # what fit() counts steps by

    def __call__(self, rng, batch):
        x, p, s = self.source(rng, batch)
        labeled = np.ones(batch, dtype=bool)
        if self.extra:
            xu, _, _ = self.pool(self.pool_rng, self.extra)
            x = np.concatenate([x, xu])
            nan = np.full(self.extra, np.nan)
            p, s = np.concatenate([p, nan]), np.concatenate([s, nan])
            labeled = np.concatenate([labeled, np.zeros(self.extra, dtype=bool)])
        return x, p, s, labeled

    def __str__(self):
        return "UnlabeledMix(%s + %d unlabeled from %s)" % (self.source, self.extra, self.pool)


# ---------------------------------------------------------------- the task
class DistillTask(StrideTask):
    """LPPN loss plus the teacher's soft targets and the selective feature regression.

    loss = (1 - a) * labeled loss (labeled windows only)
         + a * T^2 * weighted soft cross-entropy + a * teacher-offset L1
         + b * MSE(adapter(student features), standardised teacher channels)
    with a = ``soft_weight``, b = ``feature_weight``, T = ``temperature``.
    The adapter is the ridge least-squares map from the student's features
    (plus a constant) to the teacher channels, solved on each batch
    (:func:`ridge_residual`); gradients flow through the solve.
    """

    def __init__(self, model, cfg: TrainConfig, teacher, dcfg: DistillConfig, selection=None):
        super().__init__(model, cfg)
        if model.card().output.kind != "stride_class_offset":
            raise ConfigError("distillation student must be per-stride (lppn); got %r" % model.architecture)
        if teacher.card().output.kind != "probabilities":
            raise ConfigError("distillation teacher must give per-sample probabilities (phasenet); got %r"
                              % teacher.architecture)
        self.teacher, self.dcfg = teacher.eval(), dcfg.validate()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.stride = model.config.stride
        if dcfg.feature_weight > 0:
            if selection is None:
                raise ConfigError("feature_weight > 0 needs the selected teacher channels")
            self.index, _, self.mean, self.std = selection
            self.t_cap = _Capture(_module(teacher, dcfg.teacher_layer))
            self.s_cap = _Capture(model.head, pre=True)

    def sampler(self, source):
        return source

    def batch(self, sampler, rng, size):
        import torch

        x, p, s, labeled = sampler(rng, size)
        cls, off = self.labeller(p, s, x.shape[-1])
        return torch.from_numpy(x), (torch.from_numpy(cls), torch.from_numpy(off), torch.from_numpy(labeled))

    def loss(self, x, target):
        import torch
        import torch.nn.functional as F

        cls, off, labeled = target
        d = self.dcfg
        with torch.no_grad():
            t_logits = self.teacher.logits(x)
            soft, _, _ = stride_targets(torch.softmax(t_logits / d.temperature, dim=1), self.stride)
            t_probs = torch.softmax(t_logits, dim=1)
            _, t_off, t_w = stride_targets(t_probs, self.stride)
            if d.teacher_offsets == "peak":
                t_off = peak_offsets(t_probs, self.stride)
        logits, offset = self.model.raw(x)
        w = torch.tensor([1.0, self.cfg.positive_weight, self.cfg.positive_weight])
        total = 0.0
        if d.soft_weight < 1.0 and labeled.any():
            lg, lc, lo = logits[labeled], cls[labeled], off[labeled]
            ce = F.cross_entropy(lg, lc, weight=w)
            mask = lc > 0
            l1 = (torch.sigmoid(offset[labeled])[mask] - lo[mask]).abs().mean() if mask.any() else ce * 0
            total = total + (1.0 - d.soft_weight) * (ce + 2.0 * l1)
        if d.soft_weight > 0:
            logp = torch.log_softmax(logits / d.temperature, dim=1)
            wq = soft * w[None, :, None]
            kd = -(wq * logp).sum(1).sum() / wq.sum().clamp_min(1e-6)
            if d.teacher_offsets == "unlabeled":
                t_w = t_w * (~labeled).to(t_w.dtype)[:, None]
            off_l1 = (t_w * (torch.sigmoid(offset) - t_off).abs()).sum() / t_w.sum().clamp_min(1e-6)
            total = total + d.soft_weight * (d.temperature ** 2 * kd + 2.0 * off_l1)
        if d.feature_weight > 0:
            target_f = (self.t_cap.value[:, self.index] - self.mean[None, :, None]) / self.std[None, :, None]
            h = self.s_cap.value
            if target_f.shape[-1] != h.shape[-1]:
                target_f = F.adaptive_avg_pool1d(target_f, h.shape[-1])
            total = total + d.feature_weight * ridge_residual(h, target_f.detach())
        return total + self.bound(logits)

    def close(self):
        for name in ("t_cap", "s_cap"):
            if hasattr(self, name):
                getattr(self, name).remove()


# ---------------------------------------------------------------- recipes
def _pool(cfg, dcfg, window_samples, norm=None):
    """The unlabeled pool: synthetic windows (labels ignored), or None."""
    if not dcfg.unlabeled_per_batch:
        return None
    from fieldpick.train.fit import synthetic_source

    pool_cfg = TrainConfig.from_dict(dict(cfg.to_dict(), pretrain_windows=dcfg.unlabeled_windows,
                                          pretrain_epochs=1, seed=cfg.seed + 7))
    return synthetic_source(pool_cfg, window_samples, norm)


def distill(cfg: TrainConfig, dcfg: DistillConfig, teacher, train_data, val_data, out_dir, model=None,
            epochs=None, select="best"):
    """Train a student (``cfg.architecture``, an LPPN) from ``teacher``; returns ``(model, history, info)``.

    Same optimiser, schedule, steps and labeled windows as ``fit`` alone
    would use with ``cfg``; the teacher adds its losses and the unlabeled
    windows.  ``info`` describes the channel selection.  ``model``: a student
    to start from (e.g. a pruned one, with ``select='last'``: ``fit`` cannot
    reload a pruned shape); ``epochs`` overrides ``cfg.epochs``.
    """
    import torch

    from fieldpick.train.fit import _rewrite_best, fit, real_source, record_samples, tune_thresholds
    from fieldpick.train.models import build

    cfg.validate()
    dcfg.validate()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = model if model is not None else build(cfg.architecture, cfg.model)
    t = record_samples(model, cfg)
    norm = model.card().input.normalisation
    if teacher.card().input.normalisation != norm:
        raise ConfigError("the teacher reads windows normalised as %s and the student as %s; distillation feeds "
                          "both the same windows: give the student the teacher's normalisation"
                          % (teacher.card().input.normalisation, norm))
    source = UnlabeledMix(real_source(cfg, train_data, t, norm), _pool(cfg, dcfg, t, norm), dcfg.unlabeled_per_batch,
                          pool_seed=cfg.seed + 13)
    selection, info = None, {"teacher_layer": dcfg.teacher_layer}
    if dcfg.feature_weight > 0:
        rng = np.random.default_rng(cfg.seed + 11)
        x, _, _, _ = source(rng, dcfg.selection_windows)
        selection = select_channels(teacher, dcfg.teacher_layer, x, dcfg.feature_channels)
        info.update(channels=[int(i) for i in selection[0]],
                    importance=[float(v) for v in selection[1]])
        log.info("teacher channels chosen at %s: %s", dcfg.teacher_layer, info["channels"])
    task = DistillTask(model, cfg, teacher, dcfg, selection)
    try:
        history = fit(model, cfg, source, val_data, out_dir, epochs=epochs, stage="distill", task=task,
                      select=select)
    finally:
        task.close()
    if cfg.tune_thresholds:
        tune_thresholds(model, val_data, cfg)
        if select == "best":  # best.pt carries the thresholds its scores were made with, as fieldpick train's does
            _rewrite_best(model, out_dir)
    return model, history, info


def cross_validate_distill(cfg: TrainConfig, dcfg: DistillConfig, data, teacher_dir, k=5, out_dir=None,
                           scratch=True, fold_seed=None):
    """Station-split k-fold scores of the distilled student (and of the same student from scratch).

    teacher_dir: folder holding ``fold<i>/best.pt``, teacher i trained
    without fold i's stations (same ``k`` and fold seed as here; ``fold_seed``
    defaults to ``cfg.seed``, which otherwise seeds only the students).  Both
    students use the same folds, validation stations, labeled windows,
    steps and seed.  Returns ``{"distilled": cv, "scratch": cv, ...}``,
    each ``cv`` with ``pooled`` scores and ``folds``.
    """
    from fieldpick.train.checkpoint import load_checkpoint
    from fieldpick.train.crossval import flops_per_record, station_folds
    from fieldpick.train.fit import (
        best_epoch,
        fit,
        predict,
        real_source,
        record_samples,
        station_split,
        tune_thresholds,
    )
    from fieldpick.train.models import build
    from fieldpick.train.models.blocks import count_parameters
    from fieldpick.train.score import score

    out_dir = out_dir or os.path.join(cfg.out_dir, "distill_cv")
    fold_seed = cfg.seed if fold_seed is None else fold_seed
    fold = station_folds(data.station, k, fold_seed)
    variants = ["distilled", "scratch", "teacher"] if scratch else ["distilled", "teacher"]
    acc = {v: {"picks": [], "p": [], "s": [], "npicks": [], "seconds": 0.0, "folds": []} for v in variants}
    infos = []
    for f in range(k):
        path = os.path.join(teacher_dir, "fold%d" % f, "best.pt")
        teacher, t_card, _ = load_checkpoint(path)  # thresholds: the teacher's tuned ones
        test = fold == f
        rest = data.subset(~test)
        held = station_split(rest.station, cfg.val_fraction, fold_seed + 1 + f)
        models = {"teacher": teacher}
        student, history, info = distill(cfg, dcfg, teacher, rest.subset(~held), rest.subset(held),
                                         os.path.join(out_dir, "distilled", "fold%d" % f))
        models["distilled"] = student
        infos.append(info)
        if scratch:
            base = build(cfg.architecture, cfg.model)
            t = record_samples(base, cfg)
            fit(base, cfg, real_source(cfg, rest.subset(~held), t, base.card().input.normalisation), rest.subset(held),
                os.path.join(out_dir, "scratch", "fold%d" % f), stage="scratch")
            if cfg.tune_thresholds:
                tune_thresholds(base, rest.subset(held), cfg)
            models["scratch"] = base
        for v in variants:
            events, picks, npicks, seconds = predict(models[v], data.subset(test), cfg)
            s = score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npicks, seconds)
            s["windows"] = int(test.sum())
            if v == "distilled":
                s["best_epoch"] = best_epoch(history, "distill")
                s["thresholds"] = dict(student.thresholds)
            a = acc[v]
            a["folds"].append(s)
            a["picks"] += picks
            a["p"].append(events.p_idx)
            a["s"].append(events.s_idx)
            a["npicks"] += npicks
            a["seconds"] += seconds
            log.info("fold %d %s: P F1 %.3f  S F1 %.3f", f + 1, v, s["P_f1"], s["S_f1"])
    student = build(cfg.architecture, cfg.model)
    out = {"k": k, "seed": cfg.seed, "fold_seed": fold_seed, "teacher_dir": teacher_dir, "selection": infos,
           "distill_config": dataclasses.asdict(dcfg), "train_config": cfg.to_dict()}
    for v in variants:
        a = acc[v]
        pooled = score(a["picks"], np.concatenate(a["p"]), np.concatenate(a["s"]), data.events.fs,
                       cfg.tolerance_s, a["npicks"], a["seconds"])
        m = teacher if v == "teacher" else student
        out[v] = {"architecture": m.architecture, "parameters": count_parameters(m),
                  "flops_per_30s": flops_per_record(m), "pooled": pooled, "folds": a["folds"]}
    return out


# ---------------------------------------------------------------- command line
def _distill_arguments(parser):
    for f in dataclasses.fields(DistillConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), dest="kd_" + f.name, metavar=f.name.upper(),
                            type=type(f.default), default=None,
                            help="(DistillConfig.%s, default %r)" % (f.name, f.default))


def _distill_config(args):
    values = {f.name: getattr(args, "kd_" + f.name) for f in dataclasses.fields(DistillConfig)
              if getattr(args, "kd_" + f.name) is not None}
    return DistillConfig(**values).validate()


def main(argv) -> int:
    """``fieldpick distill``: train a small student from a teacher checkpoint, or cross-validate it."""
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint
    from fieldpick.train.fit import (
        _metric_set,
        evaluate,
        final_epochs,
        final_thresholds,
        load_real,
        publish,
        station_split,
    )

    parser = argparse.ArgumentParser(
        prog="fieldpick distill", allow_abbrev=False,
        description="Distil a small per-stride student (LPPN) from a PhaseNet teacher: soft targets on "
                    "labeled and unlabeled windows plus regression onto the teacher's most informative "
                    "feature channels.  The student's recipe is a train config (--config, --field VALUE).")
    add_arguments(parser)
    _distill_arguments(parser)
    parser.add_argument("--teacher", metavar="CKPT",
                        help="teacher checkpoint of the single run (with --final: one trained without the "
                             "validation stations, e.g. fieldpick train's best.pt)")
    parser.add_argument("--teacher-folds", metavar="DIR",
                        help="with --crossval: folder of fold<i>/best.pt teachers (same k and fold seed)")
    parser.add_argument("--crossval", type=int, default=0, metavar="K",
                        help="K-fold station-split scores of the distilled student and the same student "
                             "trained from scratch (same data, steps and seed); alone, only these scores")
    parser.add_argument("--no-scratch", action="store_true", help="with --crossval: skip the scratch student")
    parser.add_argument("--fold-seed", type=int, metavar="N",
                        help="with --crossval: seed of the station folds and validation stations (default: the "
                             "recipe's seed); fix it to vary only the student's weights and windows with --seed")
    parser.add_argument("--final", action="store_true",
                        help="after the single run chose thresholds and (with --crossval) the folds chose the "
                             "epoch count, distil again on all stations from --final-teacher")
    parser.add_argument("--final-teacher", metavar="CKPT",
                        help="with --final: the teacher trained on all stations (e.g. fieldpick train's "
                             "final/final.pt)")
    parser.add_argument("--publish", metavar="PREFIX",
                        help="also write the student as PREFIX.pt and its card (scores, recipe) as PREFIX.json")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    dcfg = _distill_config(args)
    if args.crossval and not args.teacher_folds:
        raise ConfigError("--crossval needs --teacher-folds DIR (one teacher per fold)")
    if not args.crossval and not args.teacher:
        raise ConfigError("give --teacher CKPT (or --crossval K --teacher-folds DIR)")
    if (args.final or args.publish) and not args.teacher:
        raise ConfigError("--final and --publish distil a student: give --teacher CKPT")
    if args.final and not args.final_teacher:
        raise ConfigError("--final needs --final-teacher CKPT (the teacher trained on all stations)")
    data = load_real(cfg.data_dir or None)
    metric_sets, fold_epochs, fold_thresholds = [], [], []
    if args.crossval:
        out = cross_validate_distill(cfg, dcfg, data, args.teacher_folds, k=args.crossval,
                                     out_dir=os.path.join(cfg.out_dir, "cv"), scratch=not args.no_scratch,
                                     fold_seed=args.fold_seed)
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(os.path.join(cfg.out_dir, "distill_cv.json"), "w") as f:
            json.dump(out, f, indent=1, default=float)
        brief = {v: {key: out[v]["pooled"][key] for key in ("P_f1", "S_f1", "f1")} for v in out
                 if isinstance(out[v], dict) and "pooled" in out[v]}
        if not args.teacher:  # the cross-validated scores alone
            sys.stdout.write(json.dumps(brief, indent=1, default=float) + "\n")
            return 0
        metric_sets.append(_metric_set(
            "%d-fold cross-validation split by station, pooled over %d event and %d noise windows (each scored "
            "by a student distilled from a teacher that never saw its station)"
            % (args.crossval, len(data.events), len(data.noise)), out["distilled"]["pooled"]))
        fold_epochs = [s.get("best_epoch") for s in out["distilled"]["folds"]]
        fold_thresholds = [s.get("thresholds") for s in out["distilled"]["folds"]]
    teacher, _, _ = load_checkpoint(args.teacher)
    held = station_split(data.station, cfg.val_fraction, cfg.seed)
    model, history, info = distill(cfg, dcfg, teacher, data.subset(~held), data.subset(held), cfg.out_dir)
    metrics = evaluate(model, data.subset(held), cfg)
    metric_sets.append(_metric_set("validation stations (%d windows)%s" % (
        int(held.sum()), ", before the final distillation on all stations" if args.final else ""), metrics))
    result = {"validation": metrics}
    provenance = {"train_config": cfg.to_dict(), "distill_config": dataclasses.asdict(dcfg),
                  "teacher": args.teacher, "selection": info, "command": "fieldpick distill " + " ".join(argv)}
    path = os.path.join(cfg.out_dir, "student.pt")
    if args.final:
        epochs, rule = final_epochs(fold_epochs, history, "distill")
        log.info("final distillation on all stations: %d epochs (%s)", epochs, rule)
        final_cfg = TrainConfig.from_dict(dict(cfg.to_dict(), epochs=max(epochs, 1), patience=0))
        thresholds, thresholds_rule = final_thresholds(fold_thresholds, model.thresholds)
        final_teacher, _, _ = load_checkpoint(args.final_teacher)
        final_dir = os.path.join(cfg.out_dir, "final")
        model, _, info = distill(final_cfg, dcfg, final_teacher, data, data.subset(held), final_dir, select="last")
        model.thresholds = thresholds  # chosen on validation stations, before the final run
        provenance.update({"final_teacher": args.final_teacher, "final_epochs": final_cfg.epochs,
                           "final_epochs_rule": rule, "final_thresholds_rule": thresholds_rule,
                           "final_selection": info})
        path = os.path.join(final_dir, "final.pt")
        result["final"] = final_dir
    card = model.card()
    card.name = cfg.name
    card.metrics = metric_sets
    card.provenance.update(provenance)
    save_checkpoint(path, model, card)
    card.save(path[:-3] + ".json")
    result["checkpoint"] = path
    if args.publish:
        result["published"] = publish(model, card, args.publish)
    sys.stdout.write(json.dumps(result, indent=1, default=float) + "\n")
    return 0
