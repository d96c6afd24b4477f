"""Training tasks: the targets and loss of each model output kind.

The loss and target of each model follow its card's ``output.kind`` (one
:class:`Task` per kind), so every zoo model goes through the same loop.
"""

from __future__ import annotations

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream.windows import normalise
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.labels import DetectionLabeller, ProbabilityLabeller, StrideLabeller
from fieldpick.train.data.windows import OnsetWindows, RandomWindows

__all__ = ["Task", "ProbabilityTask", "DetectionTask", "StrideTask", "WindowClassTask", "TASKS", "task_for",
           "record_samples"]


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
        to the input (``q = max|x| / 127`` of the batch) and to every ReLU
        output (``q = max / 255``), which is the error full-int8
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
            if isinstance(m, torch.nn.ReLU):
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
