"""Teacher rows: score the zoo's PhaseNet fold models on their test folds.

    .venv/bin/python benchmarks/pareto.py teacher --folds runs/zoo/phasenet
"""

from __future__ import annotations

import argparse
import os

from .common import WORK, K, fold_split, load, log, pool, setup, write


def run(args):
    """Score each fold's teacher (its own tuned thresholds) on its test stations."""
    from fieldpick.export.onnx import run_torch
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.crossval import flops_per_record
    from fieldpick.train.data.windows import load_real
    from fieldpick.train.quantize import score_outputs

    cfg = TrainConfig()
    data = load_real()
    parts, folds = [], []
    for f in range(K):
        model, card, _ = load(os.path.join(args.folds, "fold%d" % f, "best.pt"))
        _, _, test = fold_split(data, f)
        s = score_outputs(lambda x, m=model: run_torch(m, x)[0], model.card(), test, cfg)
        parts.append(s.pop("_raw"))
        folds.append(s)
        log.info("teacher fold %d: P F1 %.3f S F1 %.3f", f, s["P_f1"], s["S_f1"])
    out = {"name": "phasenet-teacher", "source": args.folds, "parameters": int(sum(p.numel() for p in model.parameters())),
           "flops_per_30s": int(flops_per_record(model)), "pooled": pool(parts, data.events.fs, cfg.tolerance_s),
           "folds": folds}
    write(os.path.join(args.work, "teacher.json"), out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py teacher", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", required=True, help="folder of fold<i>/ checkpoints")
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
