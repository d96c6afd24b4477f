"""The normalisation A/B table from the int8 stage files in ``--work`` (pareto_normalisation.md).

    .venv/bin/python benchmarks/pareto.py ab --work runs/ab/work
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from .common import WORK, publish, setup


def run(args):
    """An A/B table: one row per ``int8_<name>.json`` in ``--work`` (same folds each).

    Writes ``benchmarks/results/<--out>.json`` and ``.md`` (default
    ``pareto_normalisation``, the input-normalisation A/B): per
    candidate, the folds used, PyTorch / TFLite fp32 / full int8 P and S F1
    pooled over those folds, the int8 - fp32 deltas and the pick parity
    (int8 vs fp32 picks on the test folds, same phase within 2 samples).
    """
    rows = []
    for fn in sorted(os.listdir(args.work)):
        if not (fn.startswith("int8_") and fn.endswith(".json")):
            continue
        d = json.load(open(os.path.join(args.work, fn)))
        pooled = d["pooled"]
        row = {"name": d["name"] + ("+" + d["int8_variant"] if d.get("int8_variant") else ""),
               "folds": d["folds_used"], "qat_epochs": d.get("qat_epochs", 0),
               "pick_parity": d.get("pick_parity", {}).get("agreement"),
               "pick_parity_counts": [d.get("pick_parity", {}).get("matched"), d.get("pick_parity", {}).get("picks")]}
        for kind in ("torch", "fp32", "int8"):
            for k in ("P_f1", "S_f1", "P_mae_s", "S_mae_s", "false_picks_per_hour"):
                row["%s_%s" % (kind, k)] = float(pooled[kind][k]) if pooled[kind].get(k) is not None else None
        row["dP"] = row["int8_P_f1"] - row["fp32_P_f1"]
        row["dS"] = row["int8_S_f1"] - row["fp32_S_f1"]
        rows.append(row)
    out = args.out or "pareto_normalisation"
    meta = {"command": "benchmarks/pareto.py ab --work %s%s" % (args.work, " --out " + out if args.out else ""),
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    title = args.title or "Input normalisation A/B: float32 against full int8"
    lines = ["# " + title, "",
             "Fold models trained by `benchmarks/pareto.py folds` (configs/default.toml, seed 0, the splits of",
             "`fieldpick train --crossval 5`), converted and scored by `benchmarks/pareto.py int8`; F1 pooled over",
             "the folds listed (0.5 s matching, thresholds tuned on each fold's validation stations). Pick parity:",
             "int8 picks against TFLite fp32 picks on the same test windows, same phase within 2 samples.",
             "", "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| candidate | folds | fp32 P F1 | fp32 S F1 | int8 P F1 | int8 S F1 | int8 - fp32 P | int8 - fp32 S "
             "| fp32 P / S MAE s | pick parity |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pp = "-" if r["pick_parity"] is None else "%.1f %% (%d of %d)" % (100 * r["pick_parity"],
                                                                          *r["pick_parity_counts"])
        mae = "-" if r["fp32_P_mae_s"] is None else "%.3f / %.3f" % (r["fp32_P_mae_s"], r["fp32_S_mae_s"])
        lines.append("| %s | %s | %.3f | %.3f | %.3f | %.3f | %+.3f | %+.3f | %s | %s |" % (
            r["name"], ",".join(map(str, r["folds"])), r["fp32_P_f1"], r["fp32_S_f1"], r["int8_P_f1"],
            r["int8_S_f1"], r["dP"], r["dS"], mae, pp))
    publish(out, meta, rows, lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py ab", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default pareto_normalisation)")
    ap.add_argument("--title", help="the table's title")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
