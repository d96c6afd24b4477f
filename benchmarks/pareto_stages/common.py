"""What the Pareto stages share: the station folds, pooled scores, checkpoints and result files."""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np

#: benchmarks/
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(HERE, "results")
WORK = os.path.join(os.path.dirname(HERE), "runs", "compress")
K, SEED = 5, 0

log = logging.getLogger("pareto")


def setup():
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def fold_split(data, f):
    from fieldpick.train.crossval import station_folds
    from fieldpick.train.data.windows import station_split

    fold = station_folds(data.station, K, SEED)
    test = fold == f
    rest = data.subset(~test)
    held = station_split(rest.station, 0.2, SEED + 1 + f)
    return rest.subset(~held), rest.subset(held), data.subset(test)


def pool(parts, fs, tol):
    from fieldpick.train.score import score

    picks, p, s, npicks, seconds = [], [], [], [], 0.0
    for pk, pi, si, npk, sec in parts:
        picks += pk
        p.append(pi)
        s.append(si)
        npicks += npk
        seconds += sec
    return score(picks, np.concatenate(p), np.concatenate(s), fs, tol, npicks, seconds)


def load(path):
    from fieldpick.train.prune import load_pruned

    return load_pruned(path)  # plain and pruned checkpoints alike


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    log.info("wrote %s", path)


def publish(stem, meta, rows, lines):
    """Write ``benchmarks/results/<stem>.json`` (meta + rows) and ``.md`` (the lines), and print the markdown."""
    md = "\n".join(lines) + "\n"
    write(os.path.join(RESULTS, stem + ".json"), {"meta": meta, "rows": rows})
    with open(os.path.join(RESULTS, stem + ".md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)


def fold_files(work, name):
    """[(fold, card with the fold's tuned thresholds, folder of its .tflite files)] of an int8 stage candidate."""
    with open(os.path.join(work, "int8_%s.json" % name)) as f:
        info = json.load(f)
    out = []
    for k in range(K):
        _, card, _ = load(os.path.join(info["source"], "fold%d" % k, "best.pt"))
        card.thresholds = dict(info["folds"][k]["thresholds"])
        out.append((k, card, os.path.join(work, "int8", name, "fold%d" % k)))
    return out


def station_traces():
    """(station benchmark module, its NCEDC configs we compare, the real data, station folds, traces float64)."""
    import importlib.util

    from fieldpick.train.crossval import station_folds
    from fieldpick.train.data.windows import load_real

    spec = importlib.util.spec_from_file_location("bench_station", os.path.join(HERE, "station.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    configs = [(n, c) for n, c in bench.NCEDC_CONFIGS if n == "continuous" or n.endswith("(the default)")]
    data = load_real()
    return bench, configs, data, station_folds(data.station, K, SEED), data.events.waveforms.astype(np.float64)
