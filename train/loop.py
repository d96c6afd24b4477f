"""The training loop.

One :class:`~fieldpick.train.config.TrainConfig` drives a run: AdamW, a
learning-rate schedule (cosine with warm-up, one-cycle or constant), early
stopping on validation F1 (mean of P and S F1, picks matched within
``tolerance_s``), seeded generators, a checkpoint with the model card beside
it (``best.pt`` + ``best.json``), ``last.pt`` for resuming, and progress
bars showing loss and F1.  :func:`train` runs the whole recipe: an optional
synthetic pre-training stage, then the real windows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.windows import RandomWindows, RealData, real_source, synthetic_source
from fieldpick.train.tasks import record_samples, task_for
from fieldpick.train.validate import tune_thresholds

__all__ = ["VAL_GRID", "fit", "train", "rewrite_best", "best_epoch"]

log = logging.getLogger(__name__)

#: thresholds tried on the validation windows after every epoch (the best per phase counts)
VAL_GRID = (0.2, 0.3, 0.4, 0.5, 0.6)


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
    run = _Run(model, cfg, stage, out_dir, optimizer, scheduler)
    run.resume()
    log.info("%s: %s, %d epochs x %d steps, data %s", stage, model.architecture, epochs, steps, sampler)
    for epoch in range(run.start_epoch, epochs):
        t0 = time.time()
        losses = run.train_epoch(task, sampler, params, steps, "%s %d/%d" % (stage, epoch + 1, epochs))
        run.end_epoch(val, epoch, epochs, losses, t0)
        if cfg.patience and run.stale >= cfg.patience:
            log.info("%s: no better validation F1 for %d epochs; stopping", stage, run.stale)
            break
    run.finish(select)
    return run.history


class _Run:
    """The state of one :func:`fit` stage: optimiser, schedule, generators, history, best score, EMA."""

    def __init__(self, model, cfg, stage, out_dir, optimizer, scheduler):
        import torch

        self.model, self.cfg, self.stage, self.out_dir = model, cfg, stage, out_dir
        self.optimizer, self.scheduler = optimizer, scheduler
        self.rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.history, self.best, self.start_epoch, self.stale = [], None, 0, 0
        self.ema = _weights(model) if cfg.ema_decay else None
        self.last_path, self.best_path = os.path.join(out_dir, "last.pt"), os.path.join(out_dir, "best.pt")

    def resume(self):
        """Continue from ``last.pt`` when ``cfg.resume`` asks and it holds this stage."""
        import torch

        from fieldpick.train.checkpoint import load_checkpoint

        if not (self.cfg.resume and os.path.exists(self.last_path)):
            return
        saved, _, extra = load_checkpoint(self.last_path)
        if extra.get("stage") != self.stage:
            log.info("%s holds stage %r, not %r: starting this stage afresh", self.last_path, extra.get("stage"),
                     self.stage)
            return
        self.model.load_state_dict(saved.state_dict())
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        self.rng.bit_generator.state = extra["numpy_rng"]
        torch.set_rng_state(extra["torch_rng"])
        self.history, self.best, self.stale = extra["history"], extra["best"], extra["stale"]
        if self.ema is not None:
            self.ema = extra.get("ema") or _weights(self.model)
        self.start_epoch = len(self.history)
        log.info("resuming %s stage %r at epoch %d", self.out_dir, self.stage, self.start_epoch)

    def train_epoch(self, task, sampler, params, steps, desc):
        """One epoch of ``steps`` optimiser steps; returns the step losses."""
        import torch

        from fieldpick.train.progress import bar as progress_bar

        model, cfg = self.model, self.cfg
        _train_mode(model)
        losses = []
        # a bar (loss, time left) on a terminal only; silent in logs and pipes
        bar = progress_bar(range(steps), desc=desc, unit="step", want=cfg.progress)
        for _ in bar:
            x, target = task.batch(sampler, self.rng, cfg.batch_size)
            loss = task.loss(x, target)
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                _ema_step(self.ema, model, cfg.ema_decay)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss="%.4f" % np.mean(losses[-20:]))
        return losses

    def end_epoch(self, val, epoch, epochs, losses, t0):
        """Validate, keep the best weights, report the epoch and write ``last.pt``."""
        from tqdm import tqdm

        model, cfg, stage = self.model, self.cfg, self.stage
        live = None
        if self.ema is not None:  # validate and keep the average; train on from the live weights
            live = _weights(model)
            model.load_state_dict(self.ema)
        thresholds, metrics = tune_thresholds(model, val, cfg, VAL_GRID, apply=False)
        row = {"stage": stage, "epoch": epoch + 1, "loss": float(np.mean(losses)),
               "lr": self.scheduler.get_last_lr()[0], "seconds": time.time() - t0}
        row.update({k: metrics.get(k, float("nan")) for k in ("f1", "P_f1", "S_f1", "P_mae_s", "S_mae_s",
                                                              "false_picks_per_hour")})
        self.history.append(row)
        key = (row["f1"], -np.nan_to_num(row["P_mae_s"] + row["S_mae_s"], nan=9.0))
        improved = self.best is None or key > tuple(self.best)
        if improved:
            self.best, self.stale = list(key), 0
            self.save_best(val, epoch, thresholds, metrics)
        else:
            self.stale += 1
        if live is not None:
            model.load_state_dict(live)
        msg = "%s epoch %d/%d loss %.4f val F1 %.3f (P %.3f S %.3f)%s" % (
            stage, epoch + 1, epochs, row["loss"], row["f1"], row["P_f1"], row["S_f1"], " *" if improved else "")
        if cfg.progress:
            tqdm.write(msg, file=sys.stderr)
        log.info(msg)
        self.save_last()

    def save_best(self, val, epoch, thresholds, metrics):
        """``best.pt`` and ``best.json``: the weights in ``model`` now, with their validation scores."""
        from fieldpick.edge.card import MetricSet
        from fieldpick.train.checkpoint import save_checkpoint

        card = self.model.card()
        card.thresholds = thresholds
        card.metrics = [MetricSet(data="ncedc", split="%s validation (%d windows, stations held out)"
                                  % (self.stage, len(val.events)),
                                  values={k: float(v) for k, v in metrics.items() if np.isfinite(v)})]
        card.provenance["train_config"] = self.cfg.to_dict()
        card.provenance["epoch"] = epoch + 1
        save_checkpoint(self.best_path, self.model, card)
        card.save(os.path.join(self.out_dir, "best.json"))

    def save_last(self):
        """``last.pt``: everything a resumed run needs."""
        import torch

        from fieldpick.train.checkpoint import save_checkpoint

        save_checkpoint(self.last_path, self.model, extra={
            "stage": self.stage, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "numpy_rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "history": self.history, "best": self.best, "stale": self.stale, "config": self.cfg.to_dict(),
            "ema": self.ema})

    def finish(self, select):
        """Leave the chosen weights in the model and write ``history_<stage>.json``."""
        from fieldpick.train.checkpoint import load_checkpoint

        if select == "best" and os.path.exists(self.best_path):
            saved, best_card, _ = load_checkpoint(self.best_path)
            self.model.load_state_dict(saved.state_dict())
            self.model.thresholds = dict(best_card.thresholds)
        elif self.ema is not None:
            self.model.load_state_dict(self.ema)
        with open(os.path.join(self.out_dir, "history_%s.json" % self.stage), "w") as f:
            json.dump(self.history, f, indent=1)


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
        rewrite_best(model, out_dir)
    return model, history


def rewrite_best(model, out_dir):
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
