"""Calibrate, convert and score TFLite fp32 and full int8 for one candidate's fold models.

    .venv/bin/python benchmarks/pareto.py int8 --name lppn-w8-distilled \\
        --folds runs/compress/distill_w8/cv/distilled
"""

from __future__ import annotations

import argparse
import os
import time

from .common import SEED, WORK, fold_split, load, log, pool, setup, write


def _picks_agree(ref, test):
    """(matched, max(ref, test) picks) of two runs' per-window picks [(phase, sample, prob), ...].

    Same rule as the export gate (:func:`fieldpick.export.parity.pick_parity`):
    same phase, within ``PICK_TOLERANCE_SAMPLES``, greedy one-to-one.
    """
    from fieldpick.export.parity import PICK_TOLERANCE_SAMPLES, _match

    matched = total = 0
    for r, t in zip(ref, test):
        for phase in ("P", "S"):
            a = [pk[1] for pk in r if pk[0] == phase]
            b = [pk[1] for pk in t if pk[0] == phase]
            matched += _match(a, b, PICK_TOLERANCE_SAMPLES)
            total += max(len(a), len(b))
    return matched, total


def run(args):
    """Calibrate + convert + score TFLite fp32 and full int8 for each fold of one candidate."""
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.data.windows import load_real
    from fieldpick.train.quantize import int8_scores
    from fieldpick.train.validate import tune_thresholds

    # scoring uses the default tolerance; the optional QAT fine-tuning uses these steps and a low rate
    cfg = TrainConfig(lr=5e-4, steps_per_epoch=25, warmup_epochs=0.5, patience=0, progress=False)
    data = load_real()
    folds = [int(f) for f in args.fold_list.split(",")]
    parts = {"torch": [], "fp32": [], "int8": []}
    rows, sizes = [], {}
    t0 = time.time()
    for f in folds:
        model, card, _ = load(os.path.join(args.folds, "fold%d" % f, args.checkpoint))
        train, val, test = fold_split(data, f)
        tune_thresholds(model, val, cfg)  # the fold's own validation stations, as in training
        s, paths = int8_scores(model, model.card(), train, test, cfg,
                               os.path.join(args.work, "int8", args.name + args.variant, "fold%d" % f), seed=SEED + f,
                               clip_percentile=args.clip, qat_epochs=args.qat_epochs, val_data=val,
                               equalise=args.equalise)
        sizes = {"int8_bytes": paths["int8_bytes"], "fp32_bytes": paths["fp32_bytes"]}
        row = {"fold": f, "thresholds": dict(model.thresholds), **sizes}
        for kind, sc in s.items():
            parts[kind].append(sc.pop("_raw"))
            row[kind] = sc
        m, n = _picks_agree(parts["fp32"][-1][0] + parts["fp32"][-1][3], parts["int8"][-1][0] + parts["int8"][-1][3])
        row["pick_parity"] = {"matched": m, "picks": n, "agreement": m / float(n) if n else 1.0}
        rows.append(row)
        log.info("%s fold %d: P F1 torch %.3f fp32 %.3f int8 %.3f | S F1 %.3f %.3f %.3f", args.name, f,
                 s["torch"]["P_f1"], s["fp32"]["P_f1"], s["int8"]["P_f1"], s["torch"]["S_f1"],
                 s["fp32"]["S_f1"], s["int8"]["S_f1"])
    out = {"name": args.name, "source": args.folds, "folds_used": folds, "seconds": time.time() - t0,
           "clip_percentile": args.clip, "int8_variant": args.variant, "qat_epochs": args.qat_epochs,
           "equalise": args.equalise,
           "parameters": int(sum(p.numel() for p in model.parameters())), **sizes,
           "pooled": {k: pool(v, data.events.fs, cfg.tolerance_s) for k, v in parts.items()}, "folds": rows}
    m = sum(r["pick_parity"]["matched"] for r in rows)
    n = sum(r["pick_parity"]["picks"] for r in rows)
    out["pick_parity"] = {"matched": m, "picks": n, "agreement": m / float(n) if n else 1.0,
                          "rule": "int8 vs TFLite float32 picks on the test folds' event and noise windows: "
                                  "same phase, within 2 samples"}
    log.info("%s: pick parity %.1f %% (%d of %d)", args.name, 100.0 * out["pick_parity"]["agreement"], m, n)
    write(os.path.join(args.work, "int8_%s%s.json" % (args.name, "-" + args.variant if args.variant else "")), out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py int8", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", required=True, help="folder of fold<i>/ checkpoints")
    ap.add_argument("--name", required=True, help="candidate name (as in the table)")
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    ap.add_argument("--checkpoint", default="best.pt", help="file name inside each fold folder")
    ap.add_argument("--fold-list", default="0,1,2,3,4", help="folds to convert and score")
    ap.add_argument("--clip", type=float, help="clip calibration windows at this percentile of |x|")
    ap.add_argument("--equalise", type=float, default=None, metavar="POWER",
                    help="the export's activation equalisation power (fieldpick export --equalise); off unless "
                    "given. fieldpick export equalises by default (power 1): give --equalise 1 to score what it "
                    "ships")
    ap.add_argument("--qat-epochs", type=int, default=0,
                    help="quantisation-aware fine-tuning epochs before conversion (0: none)")
    ap.add_argument("--variant", default="", help="label of this calibration variant (file name suffix)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
