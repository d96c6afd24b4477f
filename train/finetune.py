"""Fine-tuning: move a trained picker to a new region with few labels (``fieldpick finetune``).

CPIC (Zhu et al. 2019) kept 97 % accuracy in a new region after
re-training only its fully connected layer on a few thousand windows.  Every
zoo model names its last layer ``head``; :func:`freeze_to_head` leaves only
that layer trainable (BatchNorm statistics of the frozen layers stay as
they are), and :func:`finetune` runs the ordinary trainer on the new
labels.  :func:`compare` measures what a few labeled windows buy: a model
pre-trained on synthetic data and fine-tuned (head only, or all layers)
against one trained from scratch on the same windows, all scored on
stations none of them saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig, add_arguments, config_from_args

__all__ = ["freeze_to_head", "finetune", "pick_labeled", "compare", "main"]

log = logging.getLogger(__name__)


def freeze_to_head(model):
    """Make only ``model.head`` trainable; returns the number of trainable parameters."""
    head = getattr(model, "head", None)
    if head is None:
        raise ConfigError("%s has no 'head' layer to fine-tune" % model.architecture)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    return int(sum(p.numel() for p in head.parameters()))


def unfreeze(model):
    for p in model.parameters():
        p.requires_grad_(True)


def finetune(model, cfg: TrainConfig, train_data, val_data, out_dir=None, head_only=True):
    """Train ``model`` (already trained) on ``train_data``; only its head when ``head_only``.

    Early stopping and threshold tuning use ``val_data``, as in
    :func:`fieldpick.train.loop.train`.  Returns ``(model, history)``.
    """
    from fieldpick.train.data.windows import real_source
    from fieldpick.train.loop import fit
    from fieldpick.train.tasks import record_samples
    from fieldpick.train.validate import tune_thresholds

    out_dir = out_dir or cfg.out_dir
    if head_only:
        n = freeze_to_head(model)
        log.info("fine-tuning the head of %s only (%d parameters)", model.architecture, n)
    else:
        unfreeze(model)
    t_train = record_samples(model, cfg)
    try:
        source = real_source(cfg, train_data, t_train, model.card().input.normalisation)
        history = fit(model, cfg, source, val_data, out_dir, stage="finetune")
    finally:
        unfreeze(model)
    if cfg.tune_thresholds:
        tune_thresholds(model, val_data, cfg)
    return model, history


def pick_labeled(data, n, seed):
    """A seeded subset of ``n`` windows of ``data`` (all of them when it holds fewer)."""
    n = min(n, len(data.events))
    idx = np.sort(np.random.default_rng(seed).choice(len(data.events), n, replace=False))
    return data.subset(idx)


def compare(cfg: TrainConfig, data, n_labels=(30, 60, 120), k=3, pretrain_windows=2000, pretrain_epochs=20,
            out_dir="runs/finetune"):
    """What a few labeled windows buy.  Returns a list of result rows.

    One model is pre-trained on ``pretrain_windows`` synthetic windows.  For
    each of ``k`` station folds of ``data`` (the fold is the test set) and
    each ``n`` in ``n_labels``: ``n`` labeled windows are drawn from the
    other stations (a share of their stations held out for early
    stopping), and four models are scored on the test fold:
    'synthetic only' (no real labels), 'fine-tune head', 'fine-tune all',
    and 'scratch' (same architecture, same windows, random start).
    Scores are pooled over the folds.
    """
    import copy

    from fieldpick.train.crossval import station_folds
    from fieldpick.train.data.windows import station_split, synthetic_source
    from fieldpick.train.loop import fit, train
    from fieldpick.train.models import build
    from fieldpick.train.score import score
    from fieldpick.train.validate import predict

    pre_cfg = TrainConfig.from_dict(dict(cfg.to_dict(), pretrain_windows=0, pretrain_epochs=0))
    base = build(cfg.architecture, cfg.model)
    syn = TrainConfig.from_dict(dict(cfg.to_dict(), pretrain_windows=pretrain_windows, pretrain_epochs=pretrain_epochs))
    fold = station_folds(data.station, k, cfg.seed)
    # the pre-trained model is the last epoch's: no real window chooses it (its validation
    # scores on real data are only logged)
    fit(base, syn, synthetic_source(syn, base.config.window_samples, base.card().input.normalisation), data, os.path.join(out_dir, "pretrain"),
        epochs=pretrain_epochs, stage="pretrain", select="last")
    pooled = {}
    for f in range(k):
        test = data.subset(fold == f)
        rest = data.subset(fold != f)
        for n in n_labels:
            labeled = pick_labeled(rest, n, cfg.seed + 100 * f + n)
            held = station_split(labeled.station, cfg.val_fraction, cfg.seed + f)
            tr, va = labeled.subset(~held), labeled.subset(held)
            runs = {"synthetic only": copy.deepcopy(base)}
            d = os.path.join(out_dir, "fold%d_n%d" % (f, n))
            runs["fine-tune head"], _ = finetune(copy.deepcopy(base), pre_cfg, tr, va, os.path.join(d, "head"), True)
            runs["fine-tune all"], _ = finetune(copy.deepcopy(base), pre_cfg, tr, va, os.path.join(d, "all"), False)
            runs["scratch"], _ = train(pre_cfg, tr, va, out_dir=os.path.join(d, "scratch"))
            for name, model in runs.items():
                events, picks, npicks, seconds = predict(model, test, pre_cfg)
                acc = pooled.setdefault((name, n), {"picks": [], "p": [], "s": [], "noise": [], "seconds": 0.0})
                acc["picks"] += picks
                acc["p"].append(events.p_idx)
                acc["s"].append(events.s_idx)
                acc["noise"] += npicks
                acc["seconds"] += seconds
    rows = []
    for (name, n), acc in pooled.items():
        s = score(acc["picks"], np.concatenate(acc["p"]), np.concatenate(acc["s"]), data.events.fs,
                  cfg.tolerance_s, acc["noise"], acc["seconds"])
        rows.append(dict(method=name, labeled_windows=n, **s))
    return rows


def main(argv) -> int:
    """``fieldpick finetune``: fine-tune a checkpoint on the NCEDC windows of some stations."""
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint
    from fieldpick.train.data.windows import load_real, station_split
    from fieldpick.train.validate import evaluate

    parser = argparse.ArgumentParser(
        prog="fieldpick finetune", allow_abbrev=False,
        description="Fine-tune a trained model (only its head by default) on a few labeled windows; "
                    "stations are split into labeled and validation sets as in 'fieldpick train'.")
    parser.add_argument("checkpoint", help="the trained model (.pt from fieldpick train)")
    parser.add_argument("--all-layers", action="store_true", help="train every layer, not only the head")
    parser.add_argument("--labels", type=int, default=0, metavar="N",
                        help="use only N labeled windows from the training stations (0: all)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    model, card, _ = load_checkpoint(args.checkpoint)
    # the network is the checkpoint's, whatever the recipe says
    cfg = TrainConfig.from_dict(dict(cfg.to_dict(), architecture=model.architecture,
                                     model=dataclasses.asdict(model.config)))
    data = load_real(cfg.data_dir or None)
    held = station_split(data.station, cfg.val_fraction, cfg.seed)
    train_data = data.subset(~held)
    if args.labels:
        train_data = pick_labeled(train_data, args.labels, cfg.seed)
    before = evaluate(model, data.subset(held), cfg, card)
    model, history = finetune(model, cfg, train_data, data.subset(held), cfg.out_dir, head_only=not args.all_layers)
    after = evaluate(model, data.subset(held), cfg)
    card = model.card()
    card.name = cfg.name
    card.provenance.update({"finetuned_from": os.path.abspath(args.checkpoint), "head_only": not args.all_layers,
                            "labeled_windows": len(train_data.events)})
    path = os.path.join(cfg.out_dir, "finetuned.pt")
    save_checkpoint(path, model, card)
    card.save(os.path.join(cfg.out_dir, "finetuned.json"))
    sys.stdout.write(json.dumps({"checkpoint": path, "before": before, "after": after}, indent=1, default=float) + "\n")
    return 0
