"""int8 against float32 through the station: do the picks the station reports agree?."""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from .common import WORK, fold_files, log, publish, setup, station_traces


def run(args):
    """int8 against float32 through the station: do the picks the station reports agree?

    The export gate compares picks of single windows.  A station stacks
    overlapping windows and fits them to its triggers, so a near-tie that
    int8 rounding flips in one window may not survive the stack.  Here each
    of the 154 NCEDC 90 s traces goes through :class:`Station` (numpy
    runtime; continuous and the default gated mode) twice, once with the
    TFLite float32 file and once with the full-int8 file of the same model,
    and the reported picks are compared by the export gate's rule (same
    phase, within ``PICK_TOLERANCE_SAMPLES``, one to one; agreement =
    matched / max(picks)).  Models: ``--candidate NAME`` (the int8 stage's
    fold files in ``--work``, each trace by its fold's pair) and/or
    ``--export-dir DIR`` (a ``fieldpick export`` folder: its
    ``model_fp32.tflite`` and ``model_int8.tflite``, the int8 card's
    thresholds).  Writes ``benchmarks/results/<--out or station_parity>``.
    """
    from fieldpick.export.parity import PICK_TOLERANCE_SAMPLES

    bench, configs, data, fold, traces = station_traces()
    fs = data.events.fs
    names = list(args.candidate or []) + ["export:" + d for d in (args.export_dir or [])]
    if not names:
        raise SystemExit("stationparity: give --candidate NAME and/or --export-dir DIR")
    rows = []
    for name in names:
        count = _count(_pairs_for(args.work, name.partition("=")[0]), configs, traces, fold, bench.T0, fs)
        for cname, c in count.items():
            rows.append({"model": name.partition("=")[0], "config": cname, **c,
                         "agreement": c["matched"] / float(c["picks"]) if c["picks"] else 1.0})
            log.info("%s %s: %.2f %% (%d of %d)", name, cname, 100 * rows[-1]["agreement"], c["matched"], c["picks"])
    out = args.out or "station_parity"
    meta = {"command": "benchmarks/pareto.py stationparity --work %s %s%s%s" % (
        args.work, " ".join("--candidate %s" % c for c in args.candidate or []),
        "".join(" --export-dir %s" % d for d in args.export_dir or []), " --out " + out if args.out else ""),
        "traces": len(traces), "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = ["# int8 against float32 through the station", "",
             "Each of the %d NCEDC 90 s traces streamed through `Station` (numpy runtime) twice, with the TFLite "
             "float32 file and with the full-int8 file of the same model (a candidate's: each trace by the fold "
             "model that never saw its station; an export folder's: one model for all). The reported picks are "
             "compared by the export gate's rule: same phase, within %d samples, one to one; agreement = matched / "
             "max(picks)." % (len(traces), PICK_TOLERANCE_SAMPLES), "",
             "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| model | config | picks fp32 / int8 | matched | agreement | within 0.1 s instead | traces whose picks "
             "differ |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %d / %d | %d | %.2f %% | %.2f %% | %d of %d |" % (
            r["model"], r["config"], r["fp32"], r["int8"], r["matched"], 100 * r["agreement"],
            100 * r["matched_0.1s"] / max(r["picks"], 1), r["traces_differing"], len(traces)))
    publish(out, meta, rows, lines)


def _pairs_for(work, name):
    """{fold: (card, fp32 path, int8 path)} of one model; fold None: one pair for every trace."""
    from fieldpick.edge.card import ModelCard

    if name.startswith("export:"):
        d = name[len("export:"):]
        card = ModelCard.load(os.path.join(d, "model_int8.json"))
        return {None: (card, os.path.join(d, "model_fp32.tflite"), os.path.join(d, "model_int8.tflite"))}
    return {k: (card, os.path.join(d, "model_fp32.tflite"), os.path.join(d, "model_int8.tflite"))
            for k, card, d in fold_files(work, name)}


def _count(pairs, configs, traces, fold, t0, fs):
    """Per station config: the picks of the fp32 and int8 files on every trace, and how many match."""
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import InterpreterRunner, Station
    from fieldpick.export.parity import PICK_TOLERANCE_SAMPLES, _match

    count = {n: {"matched": 0, "matched_0.1s": 0, "picks": 0, "fp32": 0, "int8": 0, "traces_differing": 0}
             for n, _ in configs}
    for key, (card, fp32_path, int8_path) in pairs.items():
        runners = {kind: InterpreterRunner(path, card, "numpy")
                   for kind, path in (("fp32", fp32_path), ("int8", int8_path))}
        for i in (range(len(traces)) if key is None else np.flatnonzero(fold == key)):
            for cname, cfg in configs:
                got = {kind: Station(r, StationConfig.from_dict(cfg)).feed_array(traces[i], t0, fs)
                       for kind, r in runners.items()}
                c, before = count[cname], count[cname]["matched"]
                n_here = 0
                for ph in ("P", "S"):
                    a, b = ([(p.time_ns - t0) * fs / 1e9 for p in got[k] if p.phase == ph]
                            for k in ("fp32", "int8"))
                    c["matched"] += _match(a, b, PICK_TOLERANCE_SAMPLES)
                    c["matched_0.1s"] += _match(a, b, 0.1 * fs)
                    c["picks"] += max(len(a), len(b))
                    c["fp32"] += len(a)
                    c["int8"] += len(b)
                    n_here += max(len(a), len(b))
                c["traces_differing"] += (c["matched"] - before) < n_here
    return count


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py stationparity", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    ap.add_argument("--candidate", action="append", metavar="NAME[=NOTE]", help="a candidate whose int8 fold models run the station pipeline")
    ap.add_argument("--export-dir", action="append", metavar="DIR",
                    help="a fieldpick export folder (its fp32 and int8 files; repeatable)")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default station_parity)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
