"""From network outputs to picks, for training and the zoo table.

``picks_from_outputs`` turns the output of any zoo model (whatever its
card's ``output.kind``) into per-window pick lists ``[(phase, sample,
probability), ...]`` with sample positions in the window's samples (float);
:func:`fieldpick.lab.scoring.score` (imported here as ``score``) matches them
to the labeled arrivals (within ``tolerance_s``, default 0.5 s) and returns
per-phase precision, recall, F1 and residuals, plus false picks per hour on
noise windows.

Picking goes through the station's own picker (``fieldpick.edge.picker``)
and scoring through the project's one scoring module (``fieldpick.lab.scoring``),
so training, cross-validation and the station agree on what a pick is; only
the window classifier (CPIC), which the station picker does not read, is
picked here by :func:`trace_peaks`.
"""

from __future__ import annotations

import logging

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.lab.scoring import PHASES, score

__all__ = ["trace_peaks", "picks_from_outputs", "score", "PHASES"]

log = logging.getLogger(__name__)


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
