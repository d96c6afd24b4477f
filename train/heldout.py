"""Scores of a deployed model (or a teacher) on whole real traces, through the station pipeline.

Single 30 s windows flatter a picker: the station sees long records, stacks
overlapping windows, gates them with a trigger and merges picks.  Here each
event trace of a :class:`~fieldpick.train.data.corpus.LabeledSet` is fed
whole to :class:`fieldpick.edge.station.Station` (the station's code, the
``.tflite`` file and its card), and every noise window too; picks are matched
to the analyst labels within ``tolerance_s`` by :func:`fieldpick.lab.scoring.score`
(P/S precision, recall, F1, residuals, false picks per hour on noise, and how
many S arrivals were picked as P).

Teachers (:mod:`fieldpick.train.teachers`) and classic pickers are scored on
the same traces by :func:`score_curves`: per-sample probability curves picked
at their peaks above a threshold.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, List

import numpy as np

from fieldpick.lab.scoring import near_count, s_as_p, score
from fieldpick.train.data.corpus import LabeledSet
from fieldpick.train.score import trace_peaks

__all__ = ["T0_NS", "MODES", "TorchRunner", "runner_for", "station_picks", "score_station", "score_curves",
           "score_classic", "s_as_p"]

log = logging.getLogger(__name__)

#: start time given to each trace (2020-01-01T00:00:00Z)
T0_NS = 1577836800 * 10**9

#: the station modes scored: the default gated mode, continuous scanning, and gated with the
#: trigger's 'growing' warm-up (arrivals in a record's first seconds)
MODES = {"gated": {"mode": "gated"}, "continuous": {"mode": "continuous"},
         "gated-growing": {"mode": "gated", "trigger": {"warmup": "growing"}}}


class TorchRunner:
    """A PyTorch checkpoint behind the station's runner seam (float32; the deployed file is int8).

    Lets a checkpoint be scored through the same station pipeline as its
    export before it is exported.  ``run`` takes (B, T, C) windows, as the
    card's 'NTC' input layout says, and returns (B, L, K) outputs.
    """

    def __init__(self, model, card=None):
        self.model = model.eval()
        self.card = card if card is not None else model.card()

    def run(self, batch):
        import torch

        with torch.no_grad():
            out = self.model(torch.from_numpy(np.ascontiguousarray(np.swapaxes(batch, 1, 2), np.float32)))
        return out.numpy().transpose(0, 2, 1)


def runner_for(path, backend="numpy"):
    """A station runner for a deployed card (``.json`` beside its ``.tflite``) or a checkpoint (``.pt``)."""
    import os

    if path.endswith(".pt"):
        from fieldpick.train.checkpoint import load_checkpoint

        model, card, _ = load_checkpoint(path)
        return TorchRunner(model, card)
    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.station import InterpreterRunner

    card = ModelCard.load(path)
    return InterpreterRunner(os.path.join(os.path.dirname(os.path.abspath(path)), card.model_file), card, backend)


def station_picks(runner, trace, fs, mode="gated", station_config=None):
    """Picks [(phase, sample, probability)] of one (3, N) Z, N, E trace through a fresh Station."""
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import Station

    cfg = dict(MODES[mode])
    cfg.update(station_config or {})
    st = Station(runner, StationConfig.from_dict(cfg))
    got = st.feed_array(np.asarray(trace, np.float64), T0_NS, fs)
    return [(p.phase, (p.time_ns - T0_NS) * fs / 1e9, p.probability) for p in got]


def _score(ls: LabeledSet, picks, noise_picks, tolerance_s):
    fs = ls.events.fs
    seconds = float(len(ls.noise) * ls.noise.window_samples / fs) if len(ls.noise) else 0.0
    out = score(picks, ls.events.p_idx, ls.events.s_idx, fs, tolerance_s,
                noise_picks if seconds else None, seconds)
    out["S_as_P"] = s_as_p(picks, ls.events.s_idx, fs, tolerance_s)
    out["traces"] = len(ls.events)
    return out


def score_station(model, ls: LabeledSet, mode="gated", backend="numpy", tolerance_s=0.5,
                  thresholds=None) -> Dict[str, float]:
    """A model on every trace of ``ls`` through the station.

    model: a deployed card (``.json`` beside its ``.tflite``), a checkpoint
    (``.pt``) or a runner (:func:`runner_for`).  thresholds: per-phase
    overrides of the card's.
    """
    runner = runner_for(model, backend) if isinstance(model, str) else model
    if thresholds:
        runner.card.thresholds = dict(runner.card.thresholds, **thresholds)
    fs = ls.events.fs
    picks = [station_picks(runner, x, fs, mode) for x in ls.events.waveforms]
    noise = [station_picks(runner, x, fs, mode) for x in ls.noise.waveforms]
    return _score(ls, picks, noise, tolerance_s)


def score_curves(predict: Callable[[np.ndarray], np.ndarray], ls: LabeledSet, thresholds, tolerance_s=0.5,
                 batch=16, min_gap_s=1.0) -> Dict[str, float]:
    """A per-sample picker on every trace of ``ls``: ``predict`` maps (B, 3, N) to (B, 2, N) P/S probabilities.

    Picks are the peaks of each curve above ``thresholds[phase]``; peaks of
    one phase closer than ``min_gap_s`` keep the more probable.
    """
    fs = ls.events.fs

    def run(waves) -> List[list]:
        out = []
        for a in range(0, len(waves), batch):
            probs = np.asarray(predict(waves[a:a + batch]))
            for pr in probs:
                picks = []
                for k, ph in enumerate(("P", "S")):
                    picks += [(ph, pos, p) for pos, p in _thin(trace_peaks(pr[k], thresholds[ph]), min_gap_s * fs)]
                out.append(picks)
        return out

    picks = run(ls.events.waveforms)
    noise = run(ls.noise.waveforms) if len(ls.noise) else []
    return _score(ls, picks, noise, tolerance_s)


def _thin(peaks, gap):
    """Peaks [(pos, p)] with any two closer than ``gap`` samples reduced to the more probable."""
    kept = []
    for pos, p in sorted(peaks, key=lambda q: -q[1]):
        if all(abs(pos - k) >= gap for k, _ in kept):
            kept.append((pos, p))
    return sorted(kept)


def score_classic(name, ls: LabeledSet, tolerance_s=0.5, **params) -> Dict[str, float]:
    """A classic picker (:mod:`fieldpick.train.baselines`: 'stalta', 'pkbaer', 'arpick') slid over each trace."""
    from fieldpick.train import baselines

    picker = baselines.make(name, **params)
    fs = ls.events.fs

    def run(waves):
        out = []
        for x in waves:
            got = baselines.run_stream(picker, x, fs)
            out.append([(ph, t * fs / 1e9, 1.0) for ph, ts in got.items() for t in ts])
        return out

    return _score(ls, run(ls.events.waveforms), run(ls.noise.waveforms) if len(ls.noise) else [], tolerance_s)


def score_continuous(model, sds_root, manifest, mode="gated", backend="numpy", tolerance_s=0.5,
                     clear_s=1.0) -> Dict[str, Dict[str, float]]:
    """A model over real continuous data, against the teacher ensemble's picks on the same data.

    manifest: the JSON written by ``fieldpick pseudo`` (per station: hours,
    the ensemble's P/S picks and every member's peaks, ns).  Per station:
    the model's picks, how many of them match an ensemble pick of the same
    phase within ``tolerance_s`` (precision and recall against the
    ensemble: agreement), and how many lie more than ``clear_s`` from every
    peak of every teacher: false picks where no teacher sees anything, also
    per station-hour.
    """
    from fieldpick.train.pseudo import read_station, sds_stations

    runner = runner_for(model, backend) if isinstance(model, str) else model
    fs = runner.card.input.sampling_rate_hz
    stations = manifest["stations"]
    out = {}
    for key, files in sorted(sds_stations(sds_root).items()):
        net_sta = ".".join(key.split(".")[:2])
        if net_sta not in stations:
            continue
        ref = stations[net_sta]
        picks = []
        for t0, x in read_station(files, fs):
            from fieldpick.edge.config import StationConfig
            from fieldpick.edge.station import Station

            st = Station(runner, StationConfig.from_dict(dict(MODES[mode])))
            picks += [(p.phase, p.time_ns) for p in st.feed_array(x.astype(np.float64), int(t0), fs)]
        row = {"hours": ref["hours"], "picks": len(picks)}
        anyp = np.sort(np.asarray(ref["any_member"], np.int64))
        for ph in ("P", "S"):
            mine = np.array([t for q, t in picks if q == ph], np.int64)
            theirs = np.asarray(ref["picks"][ph], np.int64)
            hit = near_count(mine, theirs, tolerance_s * 1e9)
            found = near_count(theirs, mine, tolerance_s * 1e9)
            row.update({ph + "_picks": len(mine), ph + "_ensemble": len(theirs), ph + "_agree": int(hit),
                        ph + "_found": int(found)})
        lone = [t for _, t in picks if not len(anyp) or np.abs(anyp - t).min() > clear_s * 1e9]
        row["lone_picks"] = len(lone)
        row["lone_per_hour"] = len(lone) / ref["hours"] if ref["hours"] else float("nan")
        out[net_sta] = row
    return out
