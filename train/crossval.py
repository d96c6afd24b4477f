"""k-fold cross-validation split by station, and the cost of a model per record (FLOPs).

The real NCEDC set is small (154 windows, 108 stations), so one split is one
lucky draw.  :func:`cross_validate` assigns every station to one of ``k``
folds; for each fold it trains on the other folds' stations (holding a
share of them out again for early stopping) and picks on the fold's
windows, which the model never saw.  Scores are pooled over all folds (each
window scored once, by the model that did not train on its station), and
also reported per fold.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig
from fieldpick.train.score import score

__all__ = ["station_folds", "cross_validate", "flops_per_record"]

log = logging.getLogger(__name__)


def station_folds(stations, k, seed=0):
    """(N,) fold index of each window: stations shuffled (seeded), then each to the emptiest fold.

    Every station's windows share one fold, and fold sizes differ by at most
    the largest station's window count.
    """
    stations = np.asarray(stations)
    names, counts = np.unique(stations, return_counts=True)
    if not 2 <= k <= len(names):
        raise ConfigError("k is %r; allowed: 2 .. %d (the number of stations)" % (k, len(names)))
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]  # big stations first, ties in seeded order
    size = np.zeros(k, dtype=np.int64)
    fold_of = {}
    for i in order:
        f = int(np.argmin(size))
        fold_of[names[i]] = f
        size[f] += counts[i]
    return np.array([fold_of[s] for s in stations], dtype=np.int64)


def flops_per_record(model, record_samples=3000):
    """FLOPs to pick one ``record_samples`` record (30 s at 100 Hz), counted by
    :func:`fieldpick.export.flops.module_flops` (2 per multiply-accumulate).

    A windowed model runs once per window (its window covers the record); a
    window classifier (CPIC) runs once per scan position.
    """
    import torch

    from fieldpick.export.flops import module_flops

    c = model.config
    one = module_flops(model, torch.zeros(1, 3, c.window_samples))
    if model.architecture == "cpic":
        return one * ((record_samples - c.window_samples) // c.scan_hop + 1)
    return one * int(np.ceil(record_samples / c.window_samples))


def cross_validate(cfg: TrainConfig, data, k=5, out_dir=None, folds=None, fold_seed=None):
    """Train and score ``cfg`` on ``k`` station folds of ``data`` (a :class:`~fieldpick.train.data.windows.RealData`).

    Returns a dict: ``pooled`` (scores over every window, each predicted by
    the fold model that never saw its station), ``folds`` (per-fold scores),
    ``parameters`` and ``flops_per_30s``; each fold's scores carry the
    ``best_epoch`` its validation stations chose.  ``fold_seed`` (default
    ``cfg.seed``) draws the folds and validation stations, so a second
    ``cfg.seed`` can vary only the weights and training windows.
    """
    from fieldpick.train.data.windows import station_split
    from fieldpick.train.loop import best_epoch, train
    from fieldpick.train.models import build
    from fieldpick.train.models.blocks import count_parameters
    from fieldpick.train.validate import predict

    out_dir = out_dir or os.path.join(cfg.out_dir, "cv")
    fold_seed = cfg.seed if fold_seed is None else fold_seed
    fold = station_folds(data.station, k, fold_seed) if folds is None else np.asarray(folds)
    all_picks, all_p, all_s, noise_picks, noise_seconds, per_fold = [], [], [], [], 0.0, []
    for f in range(k):
        test = fold == f
        rest = data.subset(~test)
        held = station_split(rest.station, cfg.val_fraction, fold_seed + 1 + f)
        log.info("fold %d/%d: train %d, validation %d, test %d windows", f + 1, k, int((~held).sum()),
                 int(held.sum()), int(test.sum()))
        model, history = train(cfg, rest.subset(~held), rest.subset(held), out_dir=os.path.join(out_dir, "fold%d" % f))
        events, picks, npicks, seconds = predict(model, data.subset(test), cfg)
        s = score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npicks, seconds)
        s["windows"] = int(test.sum())
        s["best_epoch"] = best_epoch(history)
        s["thresholds"] = dict(model.thresholds)
        per_fold.append(s)
        log.info("fold %d: P F1 %.3f  S F1 %.3f  false picks/h %.1f", f + 1, s["P_f1"], s["S_f1"],
                 s["false_picks_per_hour"])
        all_picks += picks
        all_p.append(events.p_idx)
        all_s.append(events.s_idx)
        noise_picks += npicks
        noise_seconds += seconds
    pooled = score(all_picks, np.concatenate(all_p), np.concatenate(all_s), data.events.fs, cfg.tolerance_s,
                   noise_picks, noise_seconds)
    model = build(cfg.architecture, cfg.model)
    return {
        "architecture": cfg.architecture,
        "fold_seed": fold_seed,
        "parameters": count_parameters(model),
        "flops_per_30s": flops_per_record(model),
        "pooled": pooled,
        "folds": per_fold,
        "f1_fold_mean": float(np.mean([s["f1"] for s in per_fold])),
        "f1_fold_std": float(np.std([s["f1"] for s in per_fold])),
    }
