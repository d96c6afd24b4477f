"""Which rule for choosing pick thresholds on the validation stations carries over to the test stations?."""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from .common import K, fold_split, load, log, publish, setup


def run(args):
    """Which rule for choosing pick thresholds on the validation stations carries over to the test stations?

    Re-scores existing fold models (``--folds``: one or more comma-separated
    folders of ``fold<i>/best.pt``, e.g. several seeds of one recipe): for
    each rule, thresholds chosen on the fold's validation stations, then the
    fold's test stations picked; F1 pooled over the folds, per folder.
    Rules: the trainer's (the middle of the best F1 plateau), the same on
    an F1 curve smoothed over three grid steps, a fixed 0.5, and the best
    plateau after a penalty of 0.02 F1 per 0.1 away from 0.5.  Writes
    ``benchmarks/results/<--out or thresholds>.json`` and ``.md``.
    """
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.data.windows import load_real
    from fieldpick.train.score import score
    from fieldpick.train.validate import plateau_middle, predict, tune_thresholds

    def smooth3(grid, f1):
        return plateau_middle(grid, np.convolve(np.pad(f1, 1, mode="edge"), np.ones(3) / 3.0, "valid"))

    def fixed(grid, f1):
        return 0.5

    def toward_half(grid, f1):
        return plateau_middle(grid, f1 - 0.2 * np.abs(grid - 0.5))

    rules = {"plateau (trainer)": plateau_middle, "smoothed plateau": smooth3, "fixed 0.5": fixed,
             "pulled to 0.5": toward_half}
    cfg = TrainConfig()
    data = load_real()
    rows = []
    for folder in args.folds.split(","):
        runs = {name: [] for name in rules}  # per rule: predict()'s (events, picks, noise picks, seconds) per fold
        for f in range(K):
            model, _, _ = load(os.path.join(folder, "fold%d" % f, args.checkpoint))
            _, val, test = fold_split(data, f)
            for name, rule in rules.items():
                tune_thresholds(model, val, cfg, choose=rule)
                runs[name].append(predict(model, test, cfg))
        for name, folds in runs.items():
            s = score([pk for r in folds for pk in r[1]], np.concatenate([r[0].p_idx for r in folds]),
                      np.concatenate([r[0].s_idx for r in folds]), data.events.fs, cfg.tolerance_s,
                      [pk for r in folds for pk in r[2]], sum(r[3] for r in folds))
            rows.append({"folds": folder, "rule": name, **{k: float(s[k]) for k in
                         ("P_f1", "S_f1", "P_mae_s", "S_mae_s", "false_picks_per_hour")}})
            log.info("%s %s: P F1 %.3f S F1 %.3f", folder, name, s["P_f1"], s["S_f1"])
    out = args.out or "thresholds"
    meta = {"command": "benchmarks/pareto.py thresholds --folds %s%s" % (args.folds, " --out " + out if args.out else ""),
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = ["# Pick-threshold rules: chosen on the validation stations, scored on the test stations", "",
             "Each fold model's thresholds are chosen on its fold's validation stations by each rule, then its test "
             "stations are picked; scores pooled over the 5 folds (0.5 s matching; false picks on the pre-P noise "
             "windows).", "", "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| fold models | rule | P F1 | S F1 | P MAE s | S MAE s | false picks/h |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %.3f | %.3f | %.3f | %.3f | %.1f |" % (
            r["folds"], r["rule"], r["P_f1"], r["S_f1"], r["P_mae_s"], r["S_mae_s"], r["false_picks_per_hour"]))
    publish(out, meta, rows, lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py thresholds", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", required=True, help="one or more folders of fold<i>/ checkpoints, comma-separated")
    ap.add_argument("--checkpoint", default="best.pt", help="file name inside each fold folder")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default thresholds)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
