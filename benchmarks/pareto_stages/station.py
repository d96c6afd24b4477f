"""The station pipeline on the NCEDC traces, each run by its fold's int8 model (station_cv.md).

    .venv/bin/python benchmarks/pareto.py station --work runs/compress --candidate lppn-w8-distilled
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from .common import WORK, fold_files, log, publish, setup, station_traces


def run(args):
    """The station pipeline on the NCEDC traces, cross-validated: each trace picked by its fold's int8 model.

    ``--candidate NAME`` (repeatable): an int8 stage's ``int8_NAME.json`` in
    ``--work`` (its fold checkpoints, its ``.tflite`` files and the
    thresholds tuned on each fold's validation stations).  Each 90 s trace
    goes through :class:`fieldpick.edge.station.Station` in continuous mode
    and in the default gated mode, with the numpy runtime, on the full-int8
    model of the fold that never saw its station: what a station would find,
    and not in-sample as the station benchmark's NCEDC rows (the shipped
    model trained on every trace).  Writes ``benchmarks/results/<--out or
    station_cv>.{json,md}``.
    """
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import InterpreterRunner, Station

    bench, configs, data, fold, traces = station_traces()
    rows = []
    for spec_ in args.candidate or []:
        name = spec_.partition("=")[0]
        found = {n: {"P": 0, "S": 0, "picks": 0, "windows_run": 0} for n, _ in configs}
        errors = {n: {"P": [], "S": []} for n, _ in configs}
        for f, card, folder in fold_files(args.work, name):
            runner = InterpreterRunner(os.path.join(folder, "model_int8.tflite"), card, "numpy")
            for i in np.flatnonzero(fold == f):
                for cname, cfg in configs:
                    st = Station(runner, StationConfig.from_dict(cfg))
                    got = st.feed_array(traces[i], bench.T0, data.events.fs)
                    c = found[cname]
                    c["picks"] += len(got)
                    c["windows_run"] += st.stats["windows_run"]
                    for ph, idx in (("P", data.events.p_idx[i]), ("S", data.events.s_idx[i])):
                        near = [abs(p.time_ns - (bench.T0 + int(round(idx * 1e7)))) for p in got if p.phase == ph]
                        near = [d for d in near if d <= 0.5e9]
                        c[ph] += bool(near)
                        if near:
                            errors[cname][ph].append(min(near) / 1e9)
        for cname, c in found.items():
            mae = {ph + "_mae_s": float(np.mean(e)) if e else None for ph, e in errors[cname].items()}
            rows.append({"candidate": name, "config": cname, **c, **mae})
            log.info("%s %s: P %d S %d of %d, %d picks", name, cname, c["P"], c["S"], len(fold), c["picks"])
    out = args.out or "station_cv"
    meta = {"command": "benchmarks/pareto.py station --work %s %s%s" % (
        args.work, " ".join("--candidate %s" % c.partition("=")[0] for c in args.candidate or []),
        " --out " + out if args.out else ""), "traces": len(fold),
        "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = ["# The station pipeline on the NCEDC traces, cross-validated by station", "",
             "Each of the %d 90 s traces streamed through `Station` (numpy runtime, full-int8 model) by the fold "
             "model that never saw its station, with the thresholds tuned on that fold's validation stations. "
             "Found: a pick of the phase within 0.5 s of the catalog pick; MAE: the mean |time - catalog| of "
             "the nearest such pick, over the found ones." % len(fold), "",
             "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| candidate | config | windows run | picks | P found | S found | P / S MAE s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %d | %d | %d / %d | %d / %d | %.3f / %.3f |" % (
            r["candidate"], r["config"], r["windows_run"], r["picks"], r["P"], len(fold), r["S"], len(fold),
            r["P_mae_s"] or 0.0, r["S_mae_s"] or 0.0))
    publish(out, meta, rows, lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py station", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    ap.add_argument("--candidate", action="append", metavar="NAME[=NOTE]", help="a candidate whose int8 fold models run the station pipeline")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default station_cv)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
