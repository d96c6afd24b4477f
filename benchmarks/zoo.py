"""The zoo table: every picker cross-validated by station on the NCEDC windows.

For each recipe (configs/<model>.toml) it runs k-fold cross-validation split
by station (fieldpick.train.crossval), scores each window with the fold
model that never saw its station, and reports parameters, FLOPs per 30 s
record, P/S precision, recall, F1, residuals and false picks per hour on
the pre-P noise windows.  Ratios are against the first model of the run
(PhaseNet, the teacher, by default), measured in the same run.

    .venv/bin/python benchmarks/zoo.py                       # all four, 5 folds
    .venv/bin/python benchmarks/zoo.py --models lppn --folds 3 --epochs 5
    .venv/bin/python benchmarks/zoo.py --models cpic --append   # add a row to zoo.json / zoo.md
    .venv/bin/python benchmarks/zoo.py --render                 # zoo.md again from zoo.json

Writes benchmarks/results/zoo.json and zoo.md (or --name); the table states
each row's training budget (folds, epochs x steps, synthetic pre-training).
Without the NCEDC windows it prints ``SKIPPED: <why>``, exits with 75 and
leaves the results alone (benchmarks/run_all.py reports the skip).
"""

import argparse
import json
import logging
import os
import sys
import time

import torch

from fieldpick.edge.errors import DataError
from fieldpick.train.config import load_config
from fieldpick.train.crossval import cross_validate
from fieldpick.train.data.datasets import NCEDC_DIR
from fieldpick.train.data.windows import load_real

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def budget(r, folds):
    """A row's training budget in words, from the config it ran with."""
    c = r.get("config") or {}
    if not c:
        return "%d folds" % folds
    pre = ("; pre-trained %d ep on %d synthetic" % (c["pretrain_epochs"], c["pretrain_windows"])
           if c.get("pretrain_epochs") and c.get("pretrain_windows") else "")
    return "%d folds x %d ep x %d steps x %d%s" % (r.get("k_folds", folds), c["epochs"], c["steps_per_epoch"],
                                                  c["batch_size"], pre)


def table(rows, folds, command=None):
    ref = rows[0]
    lines = [
        "| model | params | MFLOPs / 30 s | P F1 | S F1 | P P/R | S P/R | P MAE s | S MAE s | P res mean±std s "
        "| S res mean±std s | false picks/h | F1 fold mean±std | params vs %s | F1 vs %s | training budget |"
        % (ref["architecture"], ref["architecture"]),
        "|" + "---|" * 16,
    ]
    for r in rows:
        p = r["pooled"]
        lines.append(
            "| %s | %d | %.1f | %.3f | %.3f | %.2f/%.2f | %.2f/%.2f | %.3f | %.3f | %+.3f±%.3f | %+.3f±%.3f | %.1f | %.3f±%.3f | %.3f | %.3f | %s |"
            % (r["name"], r["parameters"], r["flops_per_30s"] / 1e6, p["P_f1"], p["S_f1"],
               p["P_precision"], p["P_recall"], p["S_precision"], p["S_recall"], p["P_mae_s"], p["S_mae_s"],
               p["P_mean_s"], p["P_std_s"], p["S_mean_s"], p["S_std_s"], p["false_picks_per_hour"],
               r["f1_fold_mean"], r["f1_fold_std"], r["parameters"] / ref["parameters"],
               p["f1"] / ref["pooled"]["f1"] if ref["pooled"]["f1"] else float("nan"), budget(r, folds)))
    lines.append("")
    lines.append("%d-fold cross-validation split by station on the 154 NCEDC windows (30 s, 100 Hz); every "
                 "window scored by the fold model that never saw its station; picks match within 0.5 s; "
                 "false picks/h on the 154 pre-P noise windows (29 s each, may hold small unlabeled events). "
                 "Pick thresholds tuned per fold on that fold's validation stations. Training budget: epochs x "
                 "steps per epoch x windows per step (early stopping may end sooner)." % folds)
    if command:
        lines += ["", "Command: `%s`." % command]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["phasenet", "lppn", "leqnet", "cpic"],
                    help="recipe names (configs/NAME.toml); the first is the reference of the ratios")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, help="override the recipes' epochs")
    ap.add_argument("--steps", type=int, help="override the recipes' steps_per_epoch")
    ap.add_argument("--pretrain-windows", type=int, help="override the synthetic pre-training windows (recipes that pre-train)")
    ap.add_argument("--pretrain-epochs", type=int, help="override the synthetic pre-training epochs (recipes that pre-train)")
    ap.add_argument("--work", default=os.path.join(REPO, "runs", "zoo"), help="checkpoints go here")
    ap.add_argument("--render", action="store_true", help="only write the markdown again from the JSON")
    ap.add_argument("--name", default="zoo", help="results file stem in benchmarks/results/")
    ap.add_argument("--append", action="store_true",
                    help="keep the other models' rows already in the results file (runs in separate processes)")
    args = ap.parse_args()
    out = os.path.join(HERE, "results")
    if args.render:
        with open(os.path.join(out, args.name + ".json")) as f:
            old = json.load(f)
        with open(os.path.join(out, args.name + ".md"), "w") as f:
            f.write(table(old["rows"], old["folds"], old.get("command")) + ("\n%s\n" % old["note"] if old.get("note") else ""))
        return 0
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        data = load_real()
    except DataError as exc:  # benchmarks/run_all.py: exit status 75 = skipped, with the reason
        print("SKIPPED: the zoo cross-validates on the NCEDC windows, not found at %s (%s)" % (NCEDC_DIR, exc))
        return 75
    command = "benchmarks/zoo.py " + " ".join(sys.argv[1:])
    rows = []
    os.makedirs(out, exist_ok=True)
    for name in args.models:
        cfg = load_config(os.path.join(REPO, "configs", name + ".toml"))
        cfg.progress = False
        if args.epochs:
            cfg.epochs = args.epochs
        if args.steps:
            cfg.steps_per_epoch = args.steps
        if cfg.pretrain_epochs and cfg.pretrain_windows:  # only recipes that pre-train on synthetic windows
            if args.pretrain_windows is not None:
                cfg.pretrain_windows = args.pretrain_windows
            if args.pretrain_epochs is not None:
                cfg.pretrain_epochs = args.pretrain_epochs
        t0 = time.time()
        r = cross_validate(cfg, data, k=args.folds, out_dir=os.path.join(args.work, name))
        r["name"] = name
        r["seconds"] = time.time() - t0
        r["config"] = cfg.to_dict()
        r["k_folds"] = args.folds
        rows.append(r)
        p = r["pooled"]
        print("%-10s params %7d  P F1 %.3f  S F1 %.3f  P MAE %.3f s  S MAE %.3f s  FP/h %.1f  (%.0f s)"
              % (name, r["parameters"], p["P_f1"], p["S_f1"], p["P_mae_s"], p["S_mae_s"],
                 p["false_picks_per_hour"], r["seconds"]), flush=True)
        rows_out = merged(os.path.join(out, args.name + ".json"), rows) if args.append else rows
        with open(os.path.join(out, args.name + ".json"), "w") as f:
            json.dump({"folds": args.folds, "command": command, "rows": rows_out}, f, indent=1, default=float)
        with open(os.path.join(out, args.name + ".md"), "w") as f:
            f.write(table(rows_out, args.folds, command))
    print(table(rows_out, args.folds, command))
    return 0


def merged(path, rows):
    """The rows already in ``path`` (same fold count), with this run's rows replacing or joining them."""
    try:
        with open(path) as f:
            old = json.load(f)["rows"]
    except (OSError, ValueError, KeyError):
        old = []
    mine = {r["name"] for r in rows}
    return [r for r in old if r["name"] not in mine] + rows


if __name__ == "__main__":
    sys.exit(main())
