"""The ``fieldpick train`` verb: train one model from a recipe file and/or options.

The pieces live in their own modules: the windows in
:mod:`fieldpick.train.data.windows`, the per-output-kind losses in
:mod:`fieldpick.train.tasks`, validation scoring and threshold tuning in
:mod:`fieldpick.train.validate`, and the loop in :mod:`fieldpick.train.loop`;
their names are importable from here too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream.windows import normalise
from fieldpick.train.config import TrainConfig, add_arguments, config_from_args
from fieldpick.train.data.windows import (
    OnsetWindows,
    RandomWindows,
    RealData,
    eval_windows,
    linear_part,
    load_real,
    pad_noise,
    real_source,
    station_split,
    synthetic_source,
)
from fieldpick.train.loop import VAL_GRID, best_epoch, fit, train
from fieldpick.train.publish import final_epochs, final_thresholds, metric_set, publish
from fieldpick.train.tasks import (
    TASKS,
    DetectionTask,
    ProbabilityTask,
    StrideTask,
    Task,
    WindowClassTask,
    record_samples,
    task_for,
)
from fieldpick.train.validate import evaluate, plateau_middle, predict, tune_thresholds

__all__ = [
    "RealData", "load_real", "eval_windows", "pad_noise", "normalise", "linear_part", "RandomWindows",
    "OnsetWindows", "station_split", "synthetic_source", "real_source", "Task", "ProbabilityTask",
    "DetectionTask", "StrideTask", "WindowClassTask", "TASKS", "task_for", "record_samples", "predict",
    "plateau_middle", "tune_thresholds", "evaluate", "VAL_GRID", "fit", "train", "best_epoch", "final_epochs",
    "final_thresholds", "publish", "main",
]

log = logging.getLogger(__name__)


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
        metric_sets.append(metric_set(
            "%d-fold cross-validation split by station, pooled over %d event and %d noise windows (each scored "
            "by a model that never saw its station)" % (args.crossval, len(data.events), len(data.noise)),
            cv["pooled"]))
    held = station_split(data.station, cfg.val_fraction, cfg.seed)
    model, history = train(cfg, data.subset(~held), data.subset(held))
    metrics = evaluate(model, data.subset(held), cfg)
    out["validation"] = metrics
    metric_sets.append(metric_set("validation stations (%d windows)%s" % (
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
