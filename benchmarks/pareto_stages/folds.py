"""Train a recipe on chosen station folds (the splits of ``fieldpick train --crossval``).

    .venv/bin/python benchmarks/pareto.py folds --config configs/default.toml --model compress=asinh \\
        --model compress_scale=0.05 --fold-list 0,1 --folds runs/ab/asinh0.05
"""

from __future__ import annotations

import argparse
import os
import time

from .common import SEED, fold_split, log, setup, write


def run(args):
    """Train a recipe (``--config`` + ``--set``/``--model`` overrides) on the folds of ``--fold-list``.

    The splits are those of ``fieldpick train --crossval 5`` (test fold,
    then validation stations ``station_split(rest, 0.2, seed + 1 + f)``), so
    ``int8`` can then score the fold models beside any other candidate's.
    Writes ``<folds>/fold<f>/best.pt`` and ``<folds>/folds_<list>.json``
    (PyTorch scores per fold).
    """
    from fieldpick.train.config import TrainConfig, _parse_value, load_config
    from fieldpick.train.data.windows import load_real
    from fieldpick.train.loop import train
    from fieldpick.train.validate import evaluate

    base = load_config(args.config).to_dict() if args.config else TrainConfig().to_dict()
    for item in args.set or []:
        key, _, text = item.partition("=")
        base[key.strip()] = _parse_value(text)
    model = dict(base.get("model", {}))
    for item in args.model or []:
        key, _, text = item.partition("=")
        model[key.strip()] = _parse_value(text)
    base.update(model=model, progress=False)
    if args.init_seed is not None:
        base["seed"] = args.init_seed  # weights and training windows only: the folds stay those of seed 0
    cfg = TrainConfig.from_dict(base)
    if cfg.seed != SEED and args.init_seed is None:
        raise SystemExit("folds: seed %d; the table's folds are seed %d (use --init-seed to vary only the "
                         "initialisation and the training windows)" % (cfg.seed, SEED))
    data = load_real()
    rows = []
    for f in [int(x) for x in args.fold_list.split(",")]:
        t0 = time.time()
        tr, val, test = fold_split(data, f)
        model_, history = train(cfg, tr, val, out_dir=os.path.join(args.folds, "fold%d" % f))
        s = evaluate(model_, test, cfg)
        rows.append({"fold": f, "seconds": time.time() - t0, "epochs": len(history), "test": s,
                     "thresholds": dict(model_.thresholds)})
        log.info("fold %d: %.0f s, %d epochs, P F1 %.3f S F1 %.3f", f, rows[-1]["seconds"], len(history),
                 s["P_f1"], s["S_f1"])
    write(os.path.join(args.folds, "folds_%s.json" % args.fold_list.replace(",", "")),
           {"train_config": cfg.to_dict(), "folds": rows})


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py folds", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", required=True, help="where to write the fold<i>/ checkpoints")
    ap.add_argument("--config", help="recipe file (e.g. configs/default.toml)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field")
    ap.add_argument("--model", action="append", metavar="KEY=VALUE", help="override a model config field")
    ap.add_argument("--init-seed", type=int, help="seed of the weights and training windows (the folds and "
                    "validation stations stay seed 0's); measures how much a recipe's scores move between runs")
    ap.add_argument("--fold-list", default="0,1,2,3,4", help="folds to train")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
