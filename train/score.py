"""From network outputs to picks, and from picks to scores, for training and the zoo table.

``picks_from_outputs`` turns the output of any zoo model (whatever its
card's ``output.kind``) into per-window pick lists ``[(phase, sample,
probability), ...]`` with sample positions in the window's samples (float).
``score`` matches picks to the labeled arrivals (within ``tolerance_s``,
default 0.5 s) and returns per-phase precision, recall, F1 and residuals,
plus false picks per hour on noise windows.

Picking goes through the station's own picker (``fieldpick.edge.picker``)
and scoring through the project's evaluation (``fieldpick.edge.evaluate``),
so training, cross-validation and the station agree on what a pick is; only
the window classifier (CPIC), which the station picker does not read, is
picked here by :func:`trace_peaks`.
"""

from __future__ import annotations

import logging

import numpy as np

from fieldpick.edge.errors import ConfigError

__all__ = ["trace_peaks", "picks_from_outputs", "score", "PHASES"]

log = logging.getLogger(__name__)

PHASES = ("P", "S")


def trace_peaks(prob, threshold, positions=None, offsets=None):
    """Peaks of a probability trace: the maximum of each run of values above ``threshold``.

    prob: (L,) probabilities.  positions: (L,) sample position of each step
    (default ``arange(L)``).  offsets: (L,) extra samples added to the peak's
    position (LPPN's in-stride offset).  Returns a list of (sample, probability).
    """
    prob = np.asarray(prob, dtype=np.float64)
    above = prob >= threshold
    if not above.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    out = []
    for start, stop in zip(edges[::2], edges[1::2]):
        k = start + int(np.argmax(prob[start:stop]))
        pos = float(k if positions is None else positions[k])
        if offsets is not None:
            pos += float(offsets[k])
        out.append((pos, float(prob[k])))
    return out


def picks_from_outputs(outputs, card, thresholds=None):
    """Per-window picks ``[(phase, sample, probability), ...]`` from a batch of outputs in PyTorch layout (B, C, L).

    The station's picker (:func:`fieldpick.edge.picker.extract_picks`) reads
    per-sample and per-stride outputs, so training scores what the station
    will pick.  'window_class' outputs are the traces of ``CPIC.scan``; the
    card's provenance holds ``scan_hop`` and ``onset_sample`` (the CPIC card
    does) and :func:`trace_peaks` picks them.  thresholds: per-phase
    overrides of the card's.
    """
    from fieldpick.edge.picker import extract_picks

    outputs = np.asarray(outputs, dtype=np.float32)
    kind, labels = card.output.kind, list(card.output.labels)
    fs = card.input.sampling_rate_hz
    thr = dict(card.thresholds)
    thr.update(thresholds or {})
    if kind != "window_class":
        if card.output.layout != "NTC":
            raise ConfigError("card output layout %r; the zoo cards declare 'NTC'" % card.output.layout)
        result = []
        for out in outputs:
            picks = extract_picks(out.T[None], card, thresholds=thr)
            result.append([(p.phase, p.time_ns * fs / 1e9, p.probability) for p in picks])
        return result
    cfg = card.provenance.get("config", {})
    if "scan_hop" not in cfg or "onset_sample" not in cfg:
        raise ConfigError("window_class card %r has no provenance.config scan_hop/onset_sample" % card.name)
    positions = np.arange(outputs.shape[-1], dtype=np.float64) * cfg["scan_hop"] + cfg["onset_sample"]
    result = []
    for out in outputs:
        picks = []
        for phase in PHASES:
            if phase in labels:
                for pos, prob in trace_peaks(out[labels.index(phase)], thr[phase], positions):
                    picks.append((phase, pos, prob))
        result.append(picks)
    return result


def score(picks, p_idx, s_idx, fs, tolerance_s=0.5, noise_picks=None, noise_seconds=0.0):
    """Score per-window picks with the project's evaluation (:func:`fieldpick.edge.evaluate.evaluate_windows`).

    picks: list (one per event window) of [(phase, sample, probability)].
    p_idx, s_idx: (N,) true arrival samples (NaN: absent).  fs: Hz.
    noise_picks: optional list of pick lists on noise windows whose total
    length is ``noise_seconds``.  Returns a flat dict: ``P_precision,
    P_recall, P_f1, P_matched, P_picks, P_mae_s, P_mean_s, P_std_s`` (residual
    = pick - truth, seconds, over matches), the same for S, ``f1`` (mean of
    the P and S F1; 0 where undefined) and ``false_picks_per_hour``.
    """
    from fieldpick.edge.evaluate import evaluate_windows

    if len(picks) != len(p_idx):
        raise ConfigError("%d pick lists for %d windows" % (len(picks), len(p_idx)))

    def per_phase(lists):
        return {ph: [[pos for q, pos, _ in w if q == ph] for w in lists] for ph in PHASES}

    noise = None
    if noise_picks is not None and noise_seconds > 0:
        noise = per_phase(noise_picks)
    result = evaluate_windows({"P": np.asarray(p_idx, float), "S": np.asarray(s_idx, float)}, per_phase(picks),
                              fs=fs, noise_picks=noise, noise_seconds=noise_seconds if noise else None,
                              tolerance_s=tolerance_s)
    out = {}
    for ph in PHASES:
        d = result[ph]
        out.update({
            ph + "_precision": _num(d.precision), ph + "_recall": _num(d.recall), ph + "_f1": _num(d.f1),
            ph + "_matched": d.matched, ph + "_picks": d.n_picks, ph + "_labels": d.n_true,
            ph + "_mae_s": d.residual_mae_s, ph + "_mean_s": d.residual_mean_s, ph + "_std_s": d.residual_std_s,
            ph + "_within_0.1s": d.within_fraction,
        })
    out["f1"] = 0.5 * (out["P_f1"] + out["S_f1"])
    if noise is not None:
        count = sum(len(w) for w in noise_picks)
        out["noise_picks"] = count
        out["noise_hours"] = noise_seconds / 3600.0
        out["false_picks_per_hour"] = count / out["noise_hours"]
    return out


def _num(v):
    """0 for an undefined ratio (no picks): a model that picks nothing scores 0, not NaN."""
    return 0.0 if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)
