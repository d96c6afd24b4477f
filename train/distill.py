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
checkpoints, threshold tuning) is :func:`fieldpick.train.loop.fit`: this
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

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig, add_arguments, config_from_args
from fieldpick.train.distill_task import (
    DistillConfig,
    DistillTask,
    UnlabeledMix,
    ridge_residual,
    select_channels,
    stride_targets,
)

__all__ = ["DistillConfig", "stride_targets", "select_channels", "ridge_residual", "DistillTask", "UnlabeledMix",
           "distill", "cross_validate_distill", "main"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- recipes
def _pool(cfg, dcfg, window_samples, norm=None):
    """The unlabeled pool: synthetic windows (labels ignored), or None."""
    if not dcfg.unlabeled_per_batch:
        return None
    from fieldpick.train.data.windows import synthetic_source

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

    from fieldpick.train.data.windows import real_source
    from fieldpick.train.loop import fit, rewrite_best
    from fieldpick.train.models import build
    from fieldpick.train.tasks import record_samples
    from fieldpick.train.validate import tune_thresholds

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
            rewrite_best(model, out_dir)
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
    from fieldpick.train.data.windows import real_source, station_split
    from fieldpick.train.loop import best_epoch, fit
    from fieldpick.train.models import build
    from fieldpick.train.models.blocks import count_parameters
    from fieldpick.train.score import score
    from fieldpick.train.tasks import record_samples
    from fieldpick.train.validate import predict, tune_thresholds

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


def _parser():
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
    return parser


def _check(args):
    if args.crossval and not args.teacher_folds:
        raise ConfigError("--crossval needs --teacher-folds DIR (one teacher per fold)")
    if not args.crossval and not args.teacher:
        raise ConfigError("give --teacher CKPT (or --crossval K --teacher-folds DIR)")
    if (args.final or args.publish) and not args.teacher:
        raise ConfigError("--final and --publish distil a student: give --teacher CKPT")
    if args.final and not args.final_teacher:
        raise ConfigError("--final needs --final-teacher CKPT (the teacher trained on all stations)")


def _crossval(cfg, dcfg, data, args):
    """Run ``--crossval``; returns (its pooled F1 per student, its metric set, fold epochs, fold thresholds)."""
    from fieldpick.train.publish import metric_set

    out = cross_validate_distill(cfg, dcfg, data, args.teacher_folds, k=args.crossval,
                                 out_dir=os.path.join(cfg.out_dir, "cv"), scratch=not args.no_scratch,
                                 fold_seed=args.fold_seed)
    os.makedirs(cfg.out_dir, exist_ok=True)
    with open(os.path.join(cfg.out_dir, "distill_cv.json"), "w") as f:
        json.dump(out, f, indent=1, default=float)
    brief = {v: {key: out[v]["pooled"][key] for key in ("P_f1", "S_f1", "f1")} for v in out
             if isinstance(out[v], dict) and "pooled" in out[v]}
    metrics = metric_set(
        "%d-fold cross-validation split by station, pooled over %d event and %d noise windows (each scored "
        "by a student distilled from a teacher that never saw its station)"
        % (args.crossval, len(data.events), len(data.noise)), out["distilled"]["pooled"])
    return (brief, metrics, [s.get("best_epoch") for s in out["distilled"]["folds"]],
            [s.get("thresholds") for s in out["distilled"]["folds"]])


def main(argv) -> int:
    """``fieldpick distill``: train a small student from a teacher checkpoint, or cross-validate it."""
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint
    from fieldpick.train.data.windows import load_real, station_split
    from fieldpick.train.publish import final_epochs, final_thresholds, metric_set, publish
    from fieldpick.train.validate import evaluate

    args = _parser().parse_args(argv)
    cfg = config_from_args(args)
    dcfg = _distill_config(args)
    _check(args)
    data = load_real(cfg.data_dir or None)
    metric_sets, fold_epochs, fold_thresholds = [], [], []
    if args.crossval:
        brief, cv_metrics, fold_epochs, fold_thresholds = _crossval(cfg, dcfg, data, args)
        if not args.teacher:  # the cross-validated scores alone
            sys.stdout.write(json.dumps(brief, indent=1, default=float) + "\n")
            return 0
        metric_sets.append(cv_metrics)
    teacher, _, _ = load_checkpoint(args.teacher)
    held = station_split(data.station, cfg.val_fraction, cfg.seed)
    model, history, info = distill(cfg, dcfg, teacher, data.subset(~held), data.subset(held), cfg.out_dir)
    metrics = evaluate(model, data.subset(held), cfg)
    metric_sets.append(metric_set("validation stations (%d windows)%s" % (
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
