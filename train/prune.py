"""Structured channel pruning with fine-tuning, and the ``fieldpick prune`` verb.

Pruning here removes whole channels: each convolution and BatchNorm is
rebuilt with fewer channels, and the layers that read them lose the matching
input channels, so the exported model has fewer parameters, FLOPs and bytes
(``torch.nn.utils.prune`` only masks weights and saves nothing).  The
dependency bookkeeping (depthwise groups, residual additions, U-Net skip
concatenations, transposed convolutions) is torch-pruning's dependency graph
(Fang et al. 2023, "DepGraph: towards any structural pruning", CVPR); channels
are ranked by the L2 norm of their coupled weights (Li et al. 2017, "Pruning
filters for efficient ConvNets").  The output head keeps its channels.

A pruned model no longer matches its config (``width`` or ``filters``), so
:func:`load_pruned` rebuilds the zoo model and then reshapes every
convolution and BatchNorm to the shapes stored in the checkpoint.

After pruning the model is fine-tuned with :func:`fieldpick.train.loop.fit`
for a few epochs (keeping the last epoch: the checkpoint loader of ``fit``
cannot rebuild a pruned shape) and its pick thresholds are tuned again.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig, add_arguments, config_from_args

__all__ = ["prune_model", "soft_prune", "rebuild_from_state", "load_pruned", "save_pruned",
           "finetune_pruned", "cross_validate_prune", "main"]

log = logging.getLogger(__name__)


def _head(model):
    head = getattr(model, "head", None)
    if head is None:
        raise ConfigError("model %r has no 'head' layer to keep whole" % getattr(model, "architecture", model))
    return head


def prune_model(model, ratio, window_samples=None):
    """A copy of ``model`` with ``ratio`` of the channels of every prunable group removed.

    ratio: fraction in [0, 1) of the channels to remove per layer group
    (0 returns an unchanged copy).  Returns ``(pruned, removed)``: the new
    model (eval mode; ``model`` is not changed) and, per BatchNorm layer
    name, the channel indices removed from it (see :func:`soft_prune`).
    """
    import torch
    import torch_pruning as tp

    if not 0.0 <= ratio < 1.0:
        raise ConfigError("pruning ratio %r; it must lie in [0, 1)" % (ratio,))
    pruned = copy.deepcopy(model).eval()
    removed = {}
    if ratio == 0.0:
        return pruned, removed
    t = window_samples or pruned.config.window_samples
    example = torch.zeros(1, 3, t)
    names = {m: n for n, m in pruned.named_modules()}
    pruner = tp.pruner.MetaPruner(
        pruned, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio, ignored_layers=[_head(pruned)])
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            module = dep.target.module
            if isinstance(module, torch.nn.BatchNorm1d):
                removed.setdefault(names[module], set()).update(int(i) for i in idxs)
        group.prune()
    return pruned.eval(), {k: sorted(v) for k, v in removed.items()}


def soft_prune(model, removed):
    """A copy of ``model`` whose ``removed`` channels output zero (BatchNorm scale and bias set to 0).

    With their BatchNorm scale and bias zeroed, the channels emit exactly
    zero after the ReLU, which is what physically removing them computes;
    so ``prune_model``'s output must equal this model's (a check of the
    rebuild).  Without zeroing the bias a removed channel would have fed a
    constant ReLU(bias) to the next layer.
    """
    import torch

    out = copy.deepcopy(model).eval()
    modules = dict(out.named_modules())
    with torch.no_grad():
        for name, idxs in removed.items():
            bn = modules[name]
            bn.weight[idxs] = 0.0
            bn.bias[idxs] = 0.0
    return out


def rebuild_from_state(model, state):
    """Reshape ``model``'s Conv1d, ConvTranspose1d and BatchNorm1d layers to the shapes in ``state`` (in place).

    A depthwise layer (groups == in_channels) stays depthwise.  Returns
    ``model`` with ``state`` loaded (strict).
    """
    import torch
    from torch import nn

    for name, module in list(model.named_modules()):
        key = name + ".weight"
        if key not in state:
            continue
        w = state[key]
        new = None
        if isinstance(module, nn.ConvTranspose1d):
            cin, cout = w.shape[0], w.shape[1] * module.groups
            if (cin, cout) != (module.in_channels, module.out_channels):
                new = nn.ConvTranspose1d(cin, cout, module.kernel_size, module.stride, module.padding,
                                         module.output_padding, module.groups, module.bias is not None,
                                         module.dilation)
        elif isinstance(module, nn.Conv1d):
            depthwise = module.groups > 1 and module.groups == module.in_channels
            cout = w.shape[0]
            cin = cout if depthwise else w.shape[1] * module.groups
            if (cin, cout) != (module.in_channels, module.out_channels):
                new = nn.Conv1d(cin, cout, module.kernel_size, module.stride, module.padding, module.dilation,
                                cout if depthwise else module.groups, module.bias is not None)
        elif isinstance(module, nn.BatchNorm1d) and w.shape[0] != module.num_features:
            new = nn.BatchNorm1d(w.shape[0], module.eps, module.momentum)
        if new is not None:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            if attr.isdigit():
                parent[int(attr)] = new
            else:
                setattr(parent, attr, new)
    with torch.no_grad():
        model.load_state_dict(state)
    return model


def save_pruned(path, model, card, ratio, removed=None, extra=None):
    """A checkpoint of a pruned model; its card's provenance records the ratio and the shapes."""
    from fieldpick.train.checkpoint import save_checkpoint

    card.parameters = int(sum(p.numel() for p in model.parameters()))
    card.provenance["pruned"] = {"ratio": float(ratio), "removed_channels": removed or {}}
    return save_checkpoint(path, model, card, extra)


def load_pruned(path):
    """Read a checkpoint written by :func:`save_pruned` (or any checkpoint): ``(model, card, extra)``."""
    import torch

    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.errors import ModelError
    from fieldpick.train.checkpoint import CHECKPOINT_FORMAT
    from fieldpick.train.models import build

    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ModelError("checkpoint %s does not exist" % path) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ModelError("%s is not a fieldpick checkpoint" % path)
    model = rebuild_from_state(build(blob["architecture"], blob["config"]), blob["state_dict"]).eval()
    card = ModelCard.from_dict(blob["card"], where="%s card" % os.path.basename(str(path)))
    model.thresholds = dict(card.thresholds)
    return model, card, blob.get("extra", {})


def finetune_pruned(model, cfg: TrainConfig, train_data, val_data, out_dir, epochs, teacher=None, dcfg=None):
    """Fine-tune ``model`` in place for ``epochs`` epochs on ``train_data``; tune its thresholds on ``val_data``.

    With a ``teacher`` (and a :class:`~fieldpick.train.distill.DistillConfig`)
    the fine-tuning is a distillation (:func:`fieldpick.train.distill.distill`).
    Returns the history.  The last epoch is kept (see the module note).
    """
    import torch

    from fieldpick.train.data.windows import real_source
    from fieldpick.train.loop import fit
    from fieldpick.train.tasks import record_samples
    from fieldpick.train.validate import tune_thresholds

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    history = []
    if epochs and teacher is not None:
        from fieldpick.train.distill import DistillConfig, distill

        _, history, _ = distill(cfg, dcfg or DistillConfig(), teacher, train_data, val_data, out_dir, model=model,
                                epochs=epochs, select="last")
        return history
    if epochs:
        source = real_source(cfg, train_data, record_samples(model, cfg), model.card().input.normalisation)
        history = fit(model, cfg, source, val_data, out_dir, epochs=epochs, stage="finetune", select="last")
    if cfg.tune_thresholds:
        tune_thresholds(model, val_data, cfg)
    return history


def cross_validate_prune(cfg: TrainConfig, data, source_dir, ratios, k=5, epochs=6, out_dir=None,
                         teacher_dir=None, dcfg=None):
    """Pruning sweep, cross-validated by station.

    source_dir: folder of ``fold<i>/best.pt``, model i trained without fold
    i's stations (same ``k`` and ``cfg.seed``).  For each ratio each fold's
    model is pruned, fine-tuned on the fold's own training stations for
    ``epochs`` epochs (distilled from ``teacher_dir/fold<i>/best.pt`` when
    given), and scored on the fold's stations.  Returns one row
    per ratio: parameters, FLOPs per 30 s, pooled scores and per-fold scores.
    Each fold's pruned model is kept as ``out_dir/r<ratio>/fold<i>/pruned.pt``.
    """
    from fieldpick.train.checkpoint import load_checkpoint
    from fieldpick.train.crossval import flops_per_record, station_folds
    from fieldpick.train.data.windows import station_split
    from fieldpick.train.score import score
    from fieldpick.train.validate import predict

    out_dir = out_dir or os.path.join(cfg.out_dir, "prune_cv")
    fold = station_folds(data.station, k, cfg.seed)
    rows = []
    for ratio in ratios:
        picks, p_all, s_all, npicks, seconds, per_fold, params, flops = [], [], [], [], 0.0, [], [], []
        for f in range(k):
            base, card, _ = load_checkpoint(os.path.join(source_dir, "fold%d" % f, "best.pt"))
            test = fold == f
            rest = data.subset(~test)
            held = station_split(rest.station, cfg.val_fraction, cfg.seed + 1 + f)
            model, removed = prune_model(base, ratio)
            model.thresholds = dict(card.thresholds)
            fold_dir = os.path.join(out_dir, "r%g" % ratio, "fold%d" % f)
            if ratio > 0:
                teacher = None
                if teacher_dir:
                    teacher, _, _ = load_checkpoint(os.path.join(teacher_dir, "fold%d" % f, "best.pt"))
                finetune_pruned(model, cfg, rest.subset(~held), rest.subset(held), fold_dir, epochs, teacher, dcfg)
            os.makedirs(fold_dir, exist_ok=True)
            save_pruned(os.path.join(fold_dir, "pruned.pt"), model, model.card(), ratio, removed)
            params.append(int(sum(p.numel() for p in model.parameters())))
            flops.append(int(flops_per_record(model)))
            events, pk, npk, sec = predict(model, data.subset(test), cfg)
            s = score(pk, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npk, sec)
            s["windows"] = int(test.sum())
            per_fold.append(s)
            picks += pk
            p_all.append(events.p_idx)
            s_all.append(events.s_idx)
            npicks += npk
            seconds += sec
            log.info("ratio %g fold %d: %d parameters, P F1 %.3f  S F1 %.3f", ratio, f + 1, params[-1],
                     s["P_f1"], s["S_f1"])
        pooled = score(picks, np.concatenate(p_all), np.concatenate(s_all), data.events.fs, cfg.tolerance_s,
                       npicks, seconds)
        rows.append({"ratio": ratio, "parameters": int(np.mean(params)), "parameters_per_fold": params,
                     "flops_per_30s": int(np.mean(flops)), "finetune_epochs": epochs if ratio > 0 else 0,
                     "finetune": ("distilled from %s" % teacher_dir) if teacher_dir and ratio > 0 else "plain",
                     "pooled": pooled, "folds": per_fold})
    return rows


def _ratios(text):
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError("--ratios %r; give comma-separated fractions such as 0.25,0.5" % text) from None
    for v in values:
        if not 0.0 <= v < 1.0:
            raise ConfigError("pruning ratio %r; each must lie in [0, 1)" % v)
    if not values:
        raise ConfigError("--ratios %r holds no ratio" % text)
    return values


def main(argv) -> int:
    """``fieldpick prune``: prune one checkpoint and fine-tune it, or sweep ratios cross-validated by station."""
    import torch

    from fieldpick.train.checkpoint import load_checkpoint
    from fieldpick.train.crossval import flops_per_record
    from fieldpick.train.data.windows import load_real, station_split
    from fieldpick.train.validate import evaluate

    parser = argparse.ArgumentParser(
        prog="fieldpick prune", allow_abbrev=False,
        description="Structured channel pruning (channels physically removed) followed by fine-tuning. "
                    "Fine-tuning options are train-config fields (--lr, --steps-per-epoch, ...).")
    add_arguments(parser)
    parser.add_argument("--checkpoint", metavar="CKPT", help="model to prune (a single run)")
    parser.add_argument("--ratio", type=float, default=0.5, help="fraction of channels to remove (single run)")
    parser.add_argument("--finetune-epochs", type=int, default=6, metavar="N", help="fine-tuning epochs")
    parser.add_argument("--crossval", type=int, default=0, metavar="K",
                        help="sweep --ratios over K station folds, each fold's model from --source-folds")
    parser.add_argument("--source-folds", metavar="DIR", help="with --crossval: folder of fold<i>/best.pt")
    parser.add_argument("--ratios", default="0,0.25,0.5,0.75", help="with --crossval: comma-separated ratios")
    parser.add_argument("--teacher-folds", metavar="DIR",
                        help="with --crossval: fine-tune by distillation from fold<i>/best.pt teachers "
                             "(fieldpick distill's defaults)")
    args = parser.parse_args(argv)
    if args.finetune_epochs < 0:
        raise ConfigError("--finetune-epochs %r; it must be >= 0" % args.finetune_epochs)
    cfg = config_from_args(args)
    if args.crossval and not args.source_folds:
        raise ConfigError("--crossval needs --source-folds DIR (one trained model per fold)")
    if not args.crossval and not args.checkpoint:
        raise ConfigError("give --checkpoint CKPT (or --crossval K --source-folds DIR)")
    ratios = _ratios(args.ratios)
    torch.set_num_threads(cfg.threads)
    data = load_real(cfg.data_dir or None)
    if args.crossval:
        rows = cross_validate_prune(cfg, data, args.source_folds, ratios, k=args.crossval,
                                    epochs=args.finetune_epochs, out_dir=os.path.join(cfg.out_dir, "cv"),
                                    teacher_dir=args.teacher_folds)
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(os.path.join(cfg.out_dir, "prune_cv.json"), "w") as f:
            json.dump({"k": args.crossval, "source": args.source_folds, "teacher": args.teacher_folds, "rows": rows}, f, indent=1, default=float)
        brief = [{key: r[key] for key in ("ratio", "parameters", "flops_per_30s")} for r in rows]
        for b, r in zip(brief, rows):
            b.update({key: r["pooled"][key] for key in ("P_f1", "S_f1")})
        sys.stdout.write(json.dumps(brief, indent=1, default=float) + "\n")
        return 0
    base, card, _ = load_checkpoint(args.checkpoint)
    model, removed = prune_model(base, args.ratio)
    model.thresholds = dict(card.thresholds)
    held = station_split(data.station, cfg.val_fraction, cfg.seed)
    finetune_pruned(model, cfg, data.subset(~held), data.subset(held), cfg.out_dir, args.finetune_epochs)
    metrics = evaluate(model, data.subset(held), cfg)
    out_card = model.card()
    out_card.name = cfg.name
    out_card.provenance["source"] = args.checkpoint
    out_card.provenance["command"] = "fieldpick prune " + " ".join(argv)
    path = os.path.join(cfg.out_dir, "pruned.pt")
    save_pruned(path, model, out_card, args.ratio, removed)
    out = {"checkpoint": path, "ratio": args.ratio,
           "parameters": [int(sum(p.numel() for p in m.parameters())) for m in (base, model)],
           "flops_per_30s": [int(flops_per_record(m)) for m in (base, model)], "validation": metrics}
    sys.stdout.write(json.dumps(out, indent=1, default=float) + "\n")
    return 0
