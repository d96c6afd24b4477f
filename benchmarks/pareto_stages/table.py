"""The Pareto table: candidates from fieldpick distill/prune --crossval outputs and the stages above.
Writes benchmarks/results/pareto.json, pareto.md and plots/pareto.png.

    .venv/bin/python benchmarks/pareto.py table --distill runs/compress/distill_w8/distill_cv.json \\
        --prune runs/compress/prune_w16/prune_cv.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from .common import RESULTS, SEED, WORK, K, setup, write


def _row(name, kind, params, flops, pooled, note, int8=None):
    r = {"name": name, "kind": kind, "parameters": int(params), "flops_per_30s": int(flops), "note": note}
    for k in ("P_f1", "S_f1", "P_mean_s", "P_std_s", "S_mean_s", "S_std_s", "P_mae_s", "S_mae_s",
              "false_picks_per_hour"):
        r[k] = float(pooled[k]) if pooled.get(k) is not None else float("nan")
    r["int8_bytes"] = None
    if int8:
        r["int8_bytes"] = int8["int8_bytes"]
        r["int8_folds"] = int8["folds_used"]
        for k in ("P_f1", "S_f1"):
            r["int8_" + k] = float(int8["pooled"]["int8"][k])
            r["fp32tfl_" + k] = float(int8["pooled"]["fp32"][k])
            r["torch_" + k] = float(int8["pooled"]["torch"][k])
    return r


def _flops(int8_stage):
    """FLOPs per 30 s of the model behind an int8-stage file (its first fold's checkpoint)."""
    from fieldpick.train.checkpoint import load_checkpoint
    from fieldpick.train.crossval import flops_per_record

    path = os.path.join(int8_stage["source"], "fold%d" % int8_stage["folds_used"][0], "best.pt")
    model, _, _ = load_checkpoint(path)
    return flops_per_record(model)


def run(args):
    work = args.work
    rows = []
    teacher = json.load(open(os.path.join(work, "teacher.json")))
    int8 = {}
    for fn in os.listdir(work):
        if fn.startswith("int8_") and fn.endswith(".json"):
            d = json.load(open(os.path.join(work, fn)))
            int8[d["name"] + ("+" + d["int8_variant"] if d.get("int8_variant") else "")] = d
    rows.append(_row("phasenet-teacher", "teacher", teacher["parameters"], teacher["flops_per_30s"],
                     teacher["pooled"], "PhaseNet (U-Net) fold models in %s" % teacher.get("source", "the zoo"),
                     int8.get("phasenet-teacher")))
    for path in args.distill or []:
        d = json.load(open(path))
        tc, kd = d["train_config"], d.get("distill_config")
        budget = "%d epochs x %d steps x %d windows" % (tc["epochs"], tc["steps_per_epoch"], tc["batch_size"])
        width = tc["model"].get("width")
        knobs = "T=%g, soft weight %g, feature weight %g (%d channels of %s), %d unlabeled windows per batch" % (
            kd["temperature"], kd["soft_weight"], kd["feature_weight"], kd["feature_channels"],
            kd["teacher_layer"], kd["unlabeled_per_batch"]) if kd else ""
        for v in ("scratch", "distilled"):
            if v in d:
                name = tc["name"] if v == "distilled" else "lppn-w%s-scratch-%dep" % (width, tc["epochs"])
                if any(r["name"] == name for r in rows):
                    continue  # the same scratch run again (the trainer is deterministic per seed)
                what = "distilled from the fold's teacher; " + knobs if v == "distilled" else "from scratch"
                rows.append(_row(name, v, d[v]["parameters"], d[v]["flops_per_30s"], d[v]["pooled"],
                                 "LPPN width %s, %s; %s" % (width, what, budget), int8.get(name)))
    for item in args.candidate or []:
        # a candidate scored by the int8 stage alone (e.g. fold models of `folds`): its row is the
        # PyTorch column of that stage, its FLOPs counted on its first fold model
        name, _, note = item.partition("=")
        if name not in int8:
            raise SystemExit("table --candidate %s: no int8_%s.json in %s (run the int8 stage first)"
                             % (name, name, work))
        d = int8[name]
        rows.append(_row(name, "candidate", d["parameters"], _flops(d), d["pooled"]["torch"],
                         note or "fold models in %s" % d["source"], d))
    for path in args.prune or []:
        p = json.load(open(path))
        kd = "-kd" if p.get("teacher") else ""
        for r in p["rows"]:
            if kd and not r["ratio"]:
                continue  # the unpruned row is in the plain sweep
            name = "lppn-w16-pruned%02d%s" % (round(100 * r["ratio"]), kd) if r["ratio"] else "lppn-w16-default"
            note = ("default LPPN w16 fold models (fieldpick train --crossval 5: synthetic pre-training, then "
                    "up to 60 epochs)" if not r["ratio"] else
                    "w16 with %d %% of channels removed, fine-tuned %d epochs%s" % (
                        round(100 * r["ratio"]), r["finetune_epochs"],
                        " by distillation from the fold's teacher" if kd else ""))
            rows.append(_row(name, "pruned" if r["ratio"] else "baseline", r["parameters"], r["flops_per_30s"],
                             r["pooled"], note, int8.get(name)))
    for r in rows:
        r["params_vs_teacher"] = r["parameters"] / rows[0]["parameters"]
        r["flops_vs_teacher"] = r["flops_per_30s"] / rows[0]["flops_per_30s"]
        r["dP_f1_vs_teacher"] = r["P_f1"] - rows[0]["P_f1"]
        r["dS_f1_vs_teacher"] = r["S_f1"] - rows[0]["S_f1"]
    pts = [(r["flops_per_30s"], -min(r["P_f1"], r["S_f1"])) for r in rows]
    for r, (fl, neg) in zip(rows, pts):
        r["pareto"] = not any(f2 <= fl and n2 <= neg and (f2, n2) != (fl, neg) for f2, n2 in pts)
    meta = {"folds": K, "seed": SEED, "python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "load_average": os.getloadavg(), "created_utc": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": "benchmarks/pareto.py " + " ".join(sys.argv[1:])}
    os.makedirs(os.path.join(RESULTS, "plots"), exist_ok=True)
    variants = [{"name": d["name"], "variant": d.get("int8_variant") or "plain", "clip_percentile": d.get("clip_percentile"),
                 "qat_epochs": d.get("qat_epochs", 0), "equalise": d.get("equalise"),
                 "folds": d["folds_used"], "int8_bytes": d["int8_bytes"], "fp32_bytes": d["fp32_bytes"],
                 **{"%s_%s_f1" % (kind, ph): d["pooled"][kind][ph + "_f1"] for kind in ("torch", "fp32", "int8")
                    for ph in ("P", "S")}} for _, d in sorted(int8.items())]
    stem = args.out or "pareto"
    write(os.path.join(RESULTS, stem + ".json"), {"meta": meta, "rows": rows, "int8": variants})
    md = _markdown(rows, meta, variants)
    with open(os.path.join(RESULTS, stem + ".md"), "w") as f:
        f.write(md)
    _plot(rows, os.path.join(RESULTS, "plots", stem + ".png"))
    sys.stdout.write(md)


def _f(v, fmt="%.3f"):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt % v


def _markdown(rows, meta, variants=()):
    out = ["# Compression: Pareto table", "",
           "P/S F1 pooled over %d station folds of the 154 NCEDC windows (+154 pre-P noise windows): each "
           "window picked by the fold model that never saw its station; picks match within 0.5 s; "
           "residual = pick - label. int8 = full-int8 TFLite (onnx2tf, calibrated on the fold's training "
           "stations + synthetic windows at many SNRs), run by ai-edge-litert; its F1 is pooled over the "
           "folds listed. Peer: the PhaseNet teacher of the same folds (ratios and deltas against it)." % meta["folds"],
           "",
           "| candidate | params | x teacher | MFLOPs/30 s | x teacher | int8 bytes | P F1 | S F1 | dP | dS "
           "| P res mean/std s | S res mean/std s | false/h | int8 P F1 | int8 S F1 | int8 - fp32 (P, S) | Pareto |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d8 = "-"
        if "int8_P_f1" in r:
            d8 = "%+.3f, %+.3f (folds %s)" % (r["int8_P_f1"] - r["fp32tfl_P_f1"], r["int8_S_f1"] - r["fp32tfl_S_f1"],
                                             ",".join(map(str, r["int8_folds"])))
        out.append("| %s | %d | %.3f | %.2f | %.3f | %s | %s | %s | %+.3f | %+.3f | %s/%s | %s/%s | %s | %s | %s | %s | %s |" % (
            r["name"], r["parameters"], r["params_vs_teacher"], r["flops_per_30s"] / 1e6, r["flops_vs_teacher"],
            _f(r["int8_bytes"], "%d"), _f(r["P_f1"]), _f(r["S_f1"]), r["dP_f1_vs_teacher"], r["dS_f1_vs_teacher"],
            _f(r["P_mean_s"], "%+.3f"), _f(r["P_std_s"]), _f(r["S_mean_s"], "%+.3f"), _f(r["S_std_s"]),
            _f(r["false_picks_per_hour"], "%.1f"), _f(r.get("int8_P_f1")), _f(r.get("int8_S_f1")), d8,
            "yes" if r["pareto"] else ""))
    out += ["", "Candidates:", ""] + ["- %s: %s" % (r["name"], r["note"]) for r in rows]
    out += ["", "## int8 against float32 (same thresholds, same held-out stations)", "",
            "| candidate | calibration | folds | fp32 .tflite bytes | int8 .tflite bytes | P F1 torch / fp32 / int8 "
            "| S F1 torch / fp32 / int8 | int8 - fp32 P | int8 - fp32 S | within 0.01 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        dp, ds = v["int8_P_f1"] - v["fp32_P_f1"], v["int8_S_f1"] - v["fp32_S_f1"]
        cal = "training stations + synthetic" + (", clipped at the %g-th percentile of |x|" % v["clip_percentile"]
                                                  if v["clip_percentile"] else "")
        if v.get("equalise"):
            cal += "; activations equalised (power %g)" % v["equalise"]
        if v.get("qat_epochs"):
            cal += "; after %d epochs of quantisation-aware fine-tuning (torch/fp32 columns: the fine-tuned model)" % (
                v["qat_epochs"])
        out.append("| %s | %s | %s | %d | %d | %.3f / %.3f / %.3f | %.3f / %.3f / %.3f | %+.3f | %+.3f | %s |" % (
            v["name"], cal, ",".join(map(str, v["folds"])), v["fp32_bytes"], v["int8_bytes"], v["torch_P_f1"],
            v["fp32_P_f1"], v["int8_P_f1"], v["torch_S_f1"], v["fp32_S_f1"], v["int8_S_f1"], dp, ds,
            "yes" if abs(dp) <= 0.01 and abs(ds) <= 0.01 else "no"))
    out += ["", "benchmarks/pareto.py; Python %s, numpy %s, %s; load average %s; %s." % (
        meta["python"], meta["numpy"], meta["machine"], ", ".join("%.1f" % v for v in meta["load_average"]),
        meta["created_utc"]), ""]
    return "\n".join(out)


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for ax, phase in zip(axes, ("P", "S")):
        for k, r in enumerate(rows):
            x = r["flops_per_30s"] / 1e6 * (1 + 0.012 * (k % 5 - 2))  # spread equal-cost rows a little
            ax.scatter(x, r[phase + "_f1"], s=20 + 300 * (r["parameters"] / rows[0]["parameters"]) ** 0.5,
                       marker="o" if r["pareto"] else "s", color="C%d" % (k % 10),
                       label=r["name"] + (" (Pareto)" if r["pareto"] else "") if phase == "P" else None)
            if "int8_" + phase + "_f1" in r:
                ax.scatter(x, r["int8_" + phase + "_f1"], marker="x", color="C%d" % (k % 10))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([1, 3, 10, 30])
        ax.set_xticklabels(["1", "3", "10", "30"])
        ax.axvline(3.0, color="grey", ls=":", lw=1)
        ax.set_xlabel("MFLOPs per 30 s window (log; area ~ sqrt(parameters))")
        ax.set_ylabel("%s F1 (5-fold, by station)" % phase)
        ax.set_title("%s picks (x: full int8 TFLite, same colour)" % phase)
        ax.grid(alpha=0.3)
    fig.legend(loc="center right", fontsize=7, markerscale=0.5)
    fig.subplots_adjust(right=0.78)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py table", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    ap.add_argument("--distill", action="append", help="distill_cv.json of fieldpick distill --crossval (repeatable)")
    ap.add_argument("--prune", action="append", help="prune_cv.json of fieldpick prune --crossval (repeatable)")
    ap.add_argument("--candidate", action="append", metavar="NAME[=NOTE]", help="a row from the int8 stage's int8_NAME.json in --work (its PyTorch scores)")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default pareto)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
