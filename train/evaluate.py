"""``fieldpick eval``: run a picker on a dataset and print the score table.

A picker is a classic baseline ('stalta', 'pkbaer', 'arpick'), a training
checkpoint (``.pt``, run in PyTorch) or a model card (``.json`` beside its
``.tflite``, run by the station's interpreter).  Datasets: the NCEDC
windows (with their pre-P noise windows), a held-out synthetic set, a
synthetic continuous stream (baselines slid over it, scored against its
truth table; false picks per hour are the unmatched picks), STEAD,
a SeisBench folder, or miniSEED/SAC files through ObsPy.  Scores come from
:mod:`fieldpick.lab.scoring`, the module every other stage uses.

Real datasets are split by station into two halves: ``--split test``
(default) scores the second half; with ``--tune`` a baseline is first tuned
on the first half.  Synthetic data has its own seeds for validation and test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream.windows import normalise
from fieldpick.lab.scoring import evaluate_windows

from . import baselines
from .data.datasets import WindowSet

__all__ = ["EvalConfig", "load_data", "model_picks", "evaluate", "main"]

log = logging.getLogger(__name__)

DATASETS = ("ncedc", "synthetic", "stream", "stead", "seisbench", "files")
SPLITS = ("all", "val", "test")


@dataclass
class EvalConfig:
    """What ``fieldpick eval`` does; the command line parses into this and nothing else."""

    picker: str = "arpick"
    data: str = "ncedc"
    path: Optional[str] = None       # STEAD hdf5 / SeisBench folder / waveform files (comma-separated)
    csv: Optional[str] = None        # STEAD metadata CSV
    split: str = "test"
    tune: bool = False
    n: int = 300                     # synthetic windows per split
    minutes: float = 60.0            # length of the synthetic stream (--data stream)
    seed: int = 20261122
    noise: bool = True               # score false picks per hour on noise windows
    backend: str = "numpy"           # interpreter backend for model cards
    params: Optional[Dict[str, float]] = None
    tolerance_s: float = 0.5

    def validate(self):
        if self.data not in DATASETS:
            raise ConfigError("--data %r; allowed: %s" % (self.data, ", ".join(DATASETS)))
        if self.split not in SPLITS:
            raise ConfigError("--split %r; allowed: %s" % (self.split, ", ".join(SPLITS)))
        if self.data in ("stead", "seisbench", "files") and not self.path:
            raise ConfigError("--data %s needs --path" % self.data)
        if self.data == "stead" and not self.csv:
            raise ConfigError("--data stead needs --csv (the STEAD metadata file)")
        if self.n < 1:
            raise ConfigError("--n %r; it must be >= 1" % self.n)
        return self


def _halves(ws: WindowSet, seed):
    val, test = baselines.station_halves(ws.station, seed)
    return ws.subset(val), ws.subset(test)


def load_data(cfg: EvalConfig):
    """``{"val": (events, noise), "test": (events, noise)}`` for the configured dataset.

    noise is a WindowSet of noise-only windows or None.  For 'all', val and
    test are the same full set.
    """
    from .data import datasets as ds

    if cfg.data == "synthetic":
        from .data.synthetic import synthetic_set

        out = {}
        for split in ("val", "test"):
            ev = synthetic_set(cfg.n, cfg.seed, split, noise_fraction=0.0)
            nz = synthetic_set(max(1, cfg.n // 3), cfg.seed + 17, split, noise_fraction=1.0) if cfg.noise else None
            out[split] = (ev, nz)
        if cfg.split == "all":
            out["test"] = (ds.concat([out["val"][0], out["test"][0]]),
                           ds.concat([out["val"][1], out["test"][1]]) if cfg.noise else None)
        return out
    noise = None
    if cfg.data == "ncedc":
        events = ds.load_ncedc(cfg.path)
        noise = ds.load_ncedc_noise(cfg.path) if cfg.noise else None
    elif cfg.data == "stead":
        both = ds.load_stead(cfg.path, cfg.csv)
        is_noise = np.isnan(both.p_idx) & np.isnan(both.s_idx)
        events, noise = both.subset(~is_noise), (both.subset(is_noise) if cfg.noise and is_noise.any() else None)
    elif cfg.data == "seisbench":
        both = ds.load_seisbench(cfg.path)
        is_noise = np.isnan(both.p_idx) & np.isnan(both.s_idx)
        events, noise = both.subset(~is_noise), (both.subset(is_noise) if cfg.noise and is_noise.any() else None)
    else:
        events = ds.load_obspy(cfg.path.split(","))
    if cfg.split == "all":
        return {"val": (events, noise), "test": (events, noise)}
    ev_val, ev_test = _halves(events, cfg.seed)
    if noise is not None:
        n_val, n_test = _halves(noise, cfg.seed)
    else:
        n_val = n_test = None
    return {"val": (ev_val, n_val), "test": (ev_test, n_test)}


def _fit_windows(ws: WindowSet, card):
    T = int(card.input.window_samples)
    if abs(card.input.sampling_rate_hz - ws.fs) > 1e-9:
        raise ConfigError("the model reads %g Hz and the data is %g Hz; resample the data first"
                          % (card.input.sampling_rate_hz, ws.fs))
    x = ws.waveforms
    if x.shape[-1] >= T:
        return x[:, :, :T]
    return np.pad(x, ((0, 0), (0, 0), (0, T - x.shape[-1])))


def model_picks(path, ws: WindowSet, backend="numpy", batch=64):
    """``{phase: per-window pick samples}`` of a checkpoint (.pt) or model card (.json) on ``ws``."""
    out = {"P": [], "S": []}
    if path.endswith(".pt"):
        import torch

        from .checkpoint import load_checkpoint
        from .score import picks_from_outputs

        torch.set_num_threads(1)
        model, card, _ = load_checkpoint(path)
        x = normalise(_fit_windows(ws, card), card.input.normalisation)
        for k in range(0, len(x), batch):
            with torch.no_grad():
                y = model(torch.from_numpy(x[k: k + batch]))
            y = y[0] if isinstance(y, (tuple, list)) else y
            for window in picks_from_outputs(y.numpy(), card):
                for ph in out:
                    out[ph].append([s for p, s, _ in window if p == ph])
        return out
    if path.endswith(".json"):
        from fieldpick.edge.card import ModelCard
        from fieldpick.edge.picker import extract_picks
        from fieldpick.edge.tflite.interpreter import Interpreter

        card = ModelCard.load(path)
        it = Interpreter(card.model_path(path), backend=backend)
        x = normalise(_fit_windows(ws, card), card.input.normalisation)
        if card.input.layout == "NTC":
            x = x.transpose(0, 2, 1)
        fs = card.input.sampling_rate_hz
        for k in range(len(x)):
            y = it.run(x[k: k + 1])
            picks = extract_picks([o[0] for o in y] if len(y) > 1 else y[0][0], card)
            for ph in out:
                out[ph].append([p.time_ns * fs / 1e9 for p in picks if p.phase == ph])
        return out
    raise ConfigError("picker %r: give a baseline (%s), a checkpoint (.pt) or a model card (.json)"
                      % (path, ", ".join(baselines.BASELINES)))


def _evaluate_stream(cfg: EvalConfig):
    """A baseline slid over a synthetic continuous stream, scored against its truth table."""
    from fieldpick.lab.scoring import evaluate_stream
    from fieldpick.lab.synthetic import continuous

    if cfg.picker not in baselines.BASELINES:
        raise ConfigError("--data stream scores the baselines (%s); models run on streams through "
                          "'fieldpick demo' / 'fieldpick replay'" % ", ".join(baselines.BASELINES))
    picker = baselines.make(cfg.picker, **(cfg.params or {}))
    if cfg.tune:
        from .data.synthetic import synthetic_set

        picker, _, _ = baselines.tune(cfg.picker, synthetic_set(cfg.n, cfg.seed, "val", noise_fraction=0.0))
    start_ns = 1_700_000_000 * 10 ** 9
    data, truth = continuous(cfg.minutes * 60.0, cfg.seed, start_ns=start_ns, bursts_per_hour=6.0)
    picks = baselines.run_stream(picker, data, 100.0, start_ns)
    return evaluate_stream(truth, picks, cfg.minutes * 60.0, tolerance_s=cfg.tolerance_s), str(picker)


def evaluate(cfg: EvalConfig):
    """Run the configured picker; returns ``(scores, description)``."""
    cfg.validate()
    if cfg.data == "stream":
        return _evaluate_stream(cfg)
    data = load_data(cfg)
    events, noise = data["test"]
    if cfg.picker in baselines.BASELINES:
        picker = baselines.make(cfg.picker, **(cfg.params or {}))
        if cfg.tune:
            picker, obj, _ = baselines.tune(cfg.picker, data["val"][0])
            log.info("tuned %s on %d validation windows: F1 %.3f", picker, len(data["val"][0]), obj)
        desc = str(picker)
        return baselines.score(picker, events, noise, tolerance_s=cfg.tolerance_s), desc
    if not os.path.exists(cfg.picker):
        raise ConfigError("picker %r is neither a baseline (%s) nor an existing file"
                          % (cfg.picker, ", ".join(baselines.BASELINES)))
    picks = model_picks(cfg.picker, events, cfg.backend)
    noise_picks = noise_seconds = None
    if noise is not None:
        noise_picks = model_picks(cfg.picker, noise, cfg.backend)
        noise_seconds = len(noise) * noise.window_samples / noise.fs
    scores = evaluate_windows({"P": events.p_idx, "S": events.s_idx}, picks, fs=events.fs, noise_picks=noise_picks,
                              noise_seconds=noise_seconds, tolerance_s=cfg.tolerance_s)
    return scores, os.path.basename(cfg.picker)


def _param(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError("%r: expected NAME=VALUE" % text)
    k, v = text.split("=", 1)
    try:
        return k, float(v)
    except ValueError:
        raise argparse.ArgumentTypeError("%r: VALUE must be a number" % text) from None


def _parser():
    p = argparse.ArgumentParser(prog="fieldpick eval", allow_abbrev=False,
                                description="Score a picker (baseline, checkpoint or model card) on a dataset.")
    p.add_argument("picker", help="'stalta', 'pkbaer', 'arpick', a checkpoint .pt or a model card .json")
    p.add_argument("--data", default="ncedc", choices=DATASETS, help="dataset (default ncedc)")
    p.add_argument("--path", help="NCEDC folder, STEAD .hdf5, SeisBench folder or comma-separated waveform files")
    p.add_argument("--csv", help="STEAD metadata CSV")
    p.add_argument("--split", default="test", choices=SPLITS, help="station half to score (default test)")
    p.add_argument("--tune", action="store_true", help="tune a baseline on the validation half first")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="NAME=VALUE",
                   help="baseline parameter override (repeatable), e.g. --param on=4")
    p.add_argument("--n", type=int, default=300, help="synthetic windows per split (default 300)")
    p.add_argument("--minutes", type=float, default=60.0, help="length of the synthetic stream for --data stream")
    p.add_argument("--seed", type=int, default=20261122, help="seed of the split and the synthetic data")
    p.add_argument("--no-noise", action="store_true", help="skip the noise windows (no false picks per hour)")
    p.add_argument("--backend", default="numpy", help="interpreter backend for model cards (numpy, litert, tflite, onnx)")
    p.add_argument("--json", metavar="OUT", help="also write the scores as JSON to OUT")
    return p


def main(argv) -> int:
    ns = _parser().parse_args(argv)
    cfg = EvalConfig(picker=ns.picker, data=ns.data, path=ns.path, csv=ns.csv, split=ns.split, tune=ns.tune,
                     n=ns.n, minutes=ns.minutes, seed=ns.seed, noise=not ns.no_noise, backend=ns.backend,
                     params=dict(ns.param) or None)
    scores, desc = evaluate(cfg)
    if cfg.data == "stream":
        title = "%s on a %g-minute synthetic stream (seed %d)" % (desc, cfg.minutes, cfg.seed)
    else:
        title = "%s on %s (%s split)" % (desc, cfg.data, cfg.split)
    sys.stdout.write(scores.table(title) + "\n")
    if ns.json:
        blob = {"format": "fieldpick-eval", "version": 1, "picker": desc, "data": cfg.data, "split": cfg.split,
                "scores": scores.to_dict()}
        tmp = ns.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(blob, f, indent=1)
        os.replace(tmp, ns.json)
    return 0

