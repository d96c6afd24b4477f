"""Scoring a model on fixed windows during training, and tuning its pick thresholds."""

from __future__ import annotations

import logging

import numpy as np

from fieldpick.train.config import TrainConfig
from fieldpick.train.data.windows import RealData, eval_windows, pad_noise
from fieldpick.train.score import picks_from_outputs, score
from fieldpick.train.tasks import record_samples, task_for

__all__ = ["predict", "plateau_middle", "tune_thresholds", "evaluate"]

log = logging.getLogger(__name__)


def predict(model, data: RealData, cfg: TrainConfig, card=None):
    """Picks of ``model`` on the fixed windows of ``data``.

    Returns ``(events, picks, noise_picks, noise_seconds)``: the evaluation
    WindowSet, one pick list per event window, one per noise window (picks
    in the reflected padding dropped), and the noise windows' total length, s.
    """
    card = card or model.card()
    task = task_for(model, cfg)
    model.eval()
    t = record_samples(model, cfg)
    events = eval_windows(data, t)
    picks = picks_from_outputs(task.outputs(events.waveforms), card)
    noise, valid = pad_noise(data.noise, t)
    noise_picks = [[pk for pk in w if pk[1] < valid] for w in picks_from_outputs(task.outputs(noise), card)]
    return events, picks, noise_picks, len(noise) * valid / events.fs


def plateau_middle(grid, f1):
    """The threshold in the middle of the best plateau of ``f1`` (one F1 per entry of ``grid``)."""
    top = np.flatnonzero(f1 >= f1.max() - 1e-9)
    return float(grid[top[len(top) // 2]])


def tune_thresholds(model, val: RealData, cfg: TrainConfig, grid=None, apply=True, choose=plateau_middle):
    """Per-phase pick thresholds that maximise F1 on ``val``, noise-window picks counted as false.

    The model's outputs are computed once; only the picking is repeated for
    each threshold of ``grid``.  ``choose(grid, f1)`` turns each phase's F1
    curve into its threshold (:func:`plateau_middle`; other rules are
    compared in ``benchmarks/pareto.py thresholds``).  With ``apply``, sets
    ``model.thresholds`` (which its ``card()`` reports).  Returns
    ``(thresholds, scores)``, the scores (:func:`score`'s dict) at the
    chosen thresholds.
    """
    grid = np.round(np.arange(0.1, 0.91, 0.05), 2) if grid is None else np.asarray(grid)
    card = model.card()
    task = task_for(model, cfg)
    model.eval()
    t = record_samples(model, cfg)
    events = eval_windows(val, t)
    out = task.outputs(events.waveforms)
    noise, valid = pad_noise(val.noise, t)
    nout = task.outputs(noise)
    seconds = len(noise) * valid / events.fs

    def run(thresholds):
        picks = picks_from_outputs(out, card, thresholds)
        npicks = [[pk for pk in w if pk[1] < valid] for w in picks_from_outputs(nout, card, thresholds)]
        return picks, npicks

    f1 = {"P": [], "S": []}
    blank = np.full(len(noise), np.nan)  # noise windows join as windows without arrivals: their picks are false
    p_all, s_all = np.concatenate([events.p_idx, blank]), np.concatenate([events.s_idx, blank])
    for thr in grid:
        picks, npicks = run({"P": float(thr), "S": float(thr)})
        s = score(picks + npicks, p_all, s_all, events.fs, cfg.tolerance_s)
        for phase in f1:
            f1[phase].append(s[phase + "_f1"])
    best = {phase: choose(grid, np.asarray(values)) for phase, values in f1.items()}
    picks, npicks = run(best)
    scores = score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npicks, seconds)
    if apply:
        model.thresholds = best
        log.info("thresholds tuned on %d validation windows: %s", len(events), best)
    return best, scores


def evaluate(model, data: RealData, cfg: TrainConfig, card=None):
    """Score ``model`` on the fixed windows of ``data`` (events and noise); returns :func:`score`'s dict."""
    events, picks, noise_picks, seconds = predict(model, data, cfg, card)
    return score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s,
                 noise_picks=noise_picks, noise_seconds=seconds)
