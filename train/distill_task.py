"""Distillation mechanics: the teacher's per-stride targets, the channel selection, the student's loss.

The recipe and the ``fieldpick distill`` verb are in :mod:`fieldpick.train.distill`,
which describes the method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.windows import RandomWindows
from fieldpick.train.tasks import StrideTask

__all__ = ["DistillConfig", "stride_targets", "select_channels", "ridge_residual", "UnlabeledMix", "DistillTask"]




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
            _, t_off, t_w = stride_targets(torch.softmax(t_logits, dim=1), self.stride)
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
