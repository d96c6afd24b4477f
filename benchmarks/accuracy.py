"""Accuracy of the classic baselines on the NCEDC windows and on a held-out synthetic set.

Each baseline (recursive STA/LTA + trigger_onset, pk_baer, ar_pick; all
through ObsPy) is tuned on a validation split and scored on the test split
with :mod:`fieldpick.lab.scoring` (match within 0.5 s):

- NCEDC: the 154 30 s windows split by station into halves (seeded);
  false picks per hour on the test stations' pre-P noise windows (29 s each;
  they may hold small unlabeled events, so this overstates false picks);
- synthetic: validation and test event windows from different seeds of
  :mod:`fieldpick.lab.synthetic` (default physics), and noise-only windows;
- a synthetic continuous hour (20 events/h, 6 non-seismic transients/h):
  each tuned baseline slides over it (30 s windows every 10 s) and is scored
  against the truth table; its false picks per hour are the unmatched picks.

The peer of every row is STA/LTA measured in the same run: the table gives
each picker's P F1 as a ratio to it.  Writes benchmarks/results/accuracy.json
and accuracy.md.

    .venv/bin/python benchmarks/accuracy.py [--n-val 150] [--n-test 300] [--n-noise 150] [--no-ncedc]
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _fmt(v, fmt="%.3f"):
    return "-" if v is None else fmt % v


def run_set(name, val, test, noise, names, stream=None):
    """Tune each baseline on ``val``, score it on ``test`` (+ ``noise``) and, when given, on
    ``stream = (data, truth, start_ns, fs)`` (slid over it in 30 s windows every 10 s)."""
    from fieldpick.lab.scoring import evaluate_stream
    from fieldpick.train import baselines as B

    rows = []
    for b in names:
        t0 = time.perf_counter()
        picker, obj, table = B.tune(b, val)
        tune_s = time.perf_counter() - t0
        if stream is not None:
            data, truth, start_ns, fs = stream
            t0 = time.perf_counter()
            picks = B.run_stream(picker, data, fs, start_ns)
            hours = data.shape[1] / fs / 3600.0
            ss = evaluate_stream(truth, picks, hours * 3600.0)
            print(ss.table("%s stream (%.1f h): %s" % (name, hours, picker)))
            print()
            rows.append({"dataset": name + " stream %.0f h" % hours, "baseline": b, "params": dict(vars(picker.params)),
                         "val_objective": obj, "grid_points": len(table), "tune_s": tune_s,
                         "score_s": time.perf_counter() - t0, "test_windows": 0, "noise_windows": 0,
                         "noise_hours": hours, "scores": ss.to_dict()})
        t0 = time.perf_counter()
        scores = B.score(picker, test, noise)
        run_s = time.perf_counter() - t0
        print(scores.table("%s: %s (tuned on %d validation windows, %d grid points, val F1 %.3f)"
                           % (name, picker, len(val), len(table), obj)))
        print()
        rows.append({"dataset": name, "baseline": b, "params": dict(vars(picker.params)), "val_objective": obj,
                     "grid_points": len(table), "tune_s": tune_s, "score_s": run_s, "test_windows": len(test),
                     "noise_windows": 0 if noise is None else len(noise),
                     "noise_hours": 0.0 if noise is None else len(noise) * noise.window_samples / noise.fs / 3600,
                     "scores": scores.to_dict()})
    for dataset in {r["dataset"] for r in rows}:
        mine = [r for r in rows if r["dataset"] == dataset]
        peer = next((r for r in mine if r["baseline"] == "stalta"), None)
        peer_f1 = peer["scores"]["phases"]["P"]["f1"] if peer else None
        for r in mine:
            f1 = r["scores"]["phases"]["P"]["f1"]
            r["p_f1_ratio_to_stalta"] = None if f1 is None or not peer_f1 else f1 / peer_f1
    order = {"stalta": 0, "pkbaer": 1, "arpick": 2}
    return sorted(rows, key=lambda r: (r["dataset"], order.get(r["baseline"], 9)))


def markdown(rows, meta):
    out = ["# Classic baselines: accuracy", "",
           "Tuned on a validation split, scored on the test split with `fieldpick.lab.scoring` "
           "(a label is matched by the closest pick of its phase within 0.5 s; residual = pick - label). "
           "Peer: STA/LTA in the same run.", ""]
    head = ("| data | baseline | P F1 | P/STA-LTA | P prec | P rec | P mean s | P std s | P MAE s | P <=0.1 s "
            "| S F1 | S prec | S rec | S mean s | S std s | S MAE s | S <=0.1 s | false P/h | false S/h |")
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        P, S = r["scores"]["phases"]["P"], r["scores"]["phases"]["S"]
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["dataset"], r["baseline"], _fmt(P["f1"]), _fmt(r["p_f1_ratio_to_stalta"], "%.2f"), _fmt(P["precision"]),
            _fmt(P["recall"]), _fmt(P["residual_mean_s"], "%+.3f"), _fmt(P["residual_std_s"]),
            _fmt(P["residual_mae_s"]), _fmt(P["within_fraction"]), _fmt(S["f1"]), _fmt(S["precision"]),
            _fmt(S["recall"]), _fmt(S["residual_mean_s"], "%+.3f"), _fmt(S["residual_std_s"]),
            _fmt(S["residual_mae_s"]), _fmt(S["within_fraction"]), _fmt(P["false_per_hour"], "%.1f"),
            _fmt(S["false_per_hour"], "%.1f")))
    out += ["", "Tuned parameters:", ""]
    for r in rows:
        out.append("- %s / %s: %s (val objective %.3f over %d grid points; %d test windows, %.2f h of noise)" % (
            r["dataset"], r["baseline"], ", ".join("%s=%g" % kv for kv in r["params"].items()), r["val_objective"],
            r["grid_points"], r["test_windows"], r["noise_hours"]))
    if meta.get("ncedc_note"):
        out += ["", "**%s**" % meta["ncedc_note"]]
    if meta.get("budget"):
        out += ["", "Budget: %(synthetic_val)d synthetic validation, %(synthetic_test)d test and %(synthetic_noise)d "
                "noise windows; a %(stream_hours)g h synthetic stream" % meta["budget"]
                + ("." if meta.get("ncedc_note") else "; NCEDC: all 154 windows, split by station into halves.")]
    out += ["", "Notes: pk_baer and STA/LTA pick P only (their S cells are empty). ar_pick always returns "
            "a P on a window with energy, so its false picks per hour on noise are high by design. "
            "On the stream every unmatched pick is a false pick (ar_pick and pk_baer answer once per window). "
            "ar_pick's S is not asked for when its P is earlier than lta_s (ObsPy's C code reads out of "
            "bounds there) or when N and E are dead (39 of the 154 NCEDC traces are vertical-only). "
            "The NCEDC noise windows may hold small unlabeled events.", "",
            "%s; numpy %s, ObsPy %s, Python %s, %s; total %.0f s." % (
                meta["command"], meta["numpy"], meta["obspy"], meta["python"], meta["machine"], meta["seconds"])]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/accuracy.py", allow_abbrev=False)
    p.add_argument("--n-val", type=int, default=150, help="synthetic validation windows")
    p.add_argument("--n-test", type=int, default=300, help="synthetic test windows")
    p.add_argument("--n-noise", type=int, default=150, help="synthetic noise windows")
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--no-ncedc", action="store_true", help="synthetic data only")
    p.add_argument("--stream-hours", type=float, default=1.0, help="synthetic continuous stream (0: none)")
    p.add_argument("--baselines", default="stalta,pkbaer,arpick")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    a = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    import obspy

    from fieldpick.train import baselines as B
    from fieldpick.train.data import datasets as ds
    from fieldpick.train.data.synthetic import synthetic_set

    names = a.baselines.split(",")
    t_start = time.perf_counter()
    rows = []
    ncedc_note = "NCEDC rows left out (--no-ncedc)." if a.no_ncedc else ""
    if not a.no_ncedc:
        if not os.path.exists(os.path.join(ds.NCEDC_DIR, "phasenet_ncedc_30s.npz")):
            ncedc_note = "NCEDC rows skipped: the windows were not found at %s (set FIELDPICK_NCEDC)." % ds.NCEDC_DIR
            print(ncedc_note)
        else:
            ev, nz = ds.load_ncedc(), ds.load_ncedc_noise()
            v, t = B.station_halves(ev.station, a.seed)
            vn, tn = B.station_halves(nz.station, a.seed)
            rows += run_set("NCEDC", ev.subset(v), ev.subset(t), nz.subset(tn), names)
    val = synthetic_set(a.n_val, a.seed, "val", noise_fraction=0.0)
    test = synthetic_set(a.n_test, a.seed, "test", noise_fraction=0.0)
    noise = synthetic_set(a.n_noise, a.seed + 17, "test", noise_fraction=1.0)
    stream = None
    if a.stream_hours > 0:
        from fieldpick.lab.synthetic import continuous

        start_ns = 1_700_000_000 * 10 ** 9
        data, truth = continuous(a.stream_hours * 3600.0, a.seed, start_ns=start_ns, bursts_per_hour=6.0)
        stream = (data, truth, start_ns, 100.0)
    rows += run_set("synthetic", val, test, noise, names, stream)
    meta = {"command": "benchmarks/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "numpy": np.__version__, "obspy": obspy.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "seconds": time.perf_counter() - t_start, "seed": a.seed,
            "budget": {"synthetic_val": a.n_val, "synthetic_test": a.n_test, "synthetic_noise": a.n_noise,
                       "stream_hours": a.stream_hours}, "ncedc_note": ncedc_note}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "accuracy.json"), "w") as f:
        json.dump({"format": "fieldpick-benchmark-accuracy", "version": 1, "meta": meta, "rows": rows}, f, indent=1)
    md = markdown(rows, meta)
    with open(os.path.join(a.out, "accuracy.md"), "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
