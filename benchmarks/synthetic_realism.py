"""How much the synthetic events look like the real NCEDC windows, and what models trained on real data make of them.

Two measures, each for the generator's current event shape and for the
legacy one (``fieldpick.lab.synthetic.LEGACY_EVENT_SHAPE``):

1. amplitude, polarisation and frequency statistics of P and S
   (``train/data/synthetic.shape_stats``), against the same statistics of
   the NCEDC windows (10th, 50th and 90th percentiles);
2. models trained on the real windows (default: the committed default
   model, ``train/artifacts/default.pt``) pick synthetic event windows: how
   many P and S arrivals they find, how many S arrivals they call P, and
   the median S residual.  A generator whose S looks real gets its S picked
   as S.

    .venv/bin/python benchmarks/synthetic_realism.py [--checkpoint PT ...] [--windows 200]

Needs the NCEDC windows ($FIELDPICK_NCEDC) for the
first measure; skips it with the reason when they are absent.  Writes
benchmarks/results/synthetic_realism.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
TOL_SAMPLES = 50  # a pick within 0.5 s of an arrival finds it (the project's matching tolerance)


def shapes(n, seed):
    """{generator: {statistic: [p10, p50, p90]}} for the NCEDC windows (when present) and both generators."""
    from fieldpick.lab.synthetic import LEGACY_EVENT_SHAPE
    from fieldpick.train.data.synthetic import event_windows, shape_stats

    out = {}
    try:
        from fieldpick.train.data.windows import load_real

        d = load_real()
        out["ncedc"] = shape_stats(d.events.waveforms, d.events.p_idx, d.events.s_idx, d.events.fs)
    except Exception as exc:  # noqa: BLE001 - the reason goes into the report
        sys.stderr.write("NCEDC windows not used: %s\n" % exc)
    for name, opts in (("now", {}), ("legacy", LEGACY_EVENT_SHAPE)):
        ev = event_windows(n, seed, window_samples=6000, **opts)
        out[name] = shape_stats(ev["waveforms"], ev["p_idx"], ev["s_idx"], ev["fs"])
    return {g: {k: [float(np.percentile(v, q)) for q in (10, 50, 90)] + [int(len(v))] for k, v in st.items()}
            for g, st in out.items()}


def picked(path, n, seed):
    """What the checkpoint at ``path`` picks on ``n`` synthetic event windows of each generator."""
    import torch

    from fieldpick.lab.synthetic import LEGACY_EVENT_SHAPE, event_windows, noise_windows
    from fieldpick.train.checkpoint import load_checkpoint
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.data.datasets import WindowSet
    from fieldpick.train.data.windows import RealData
    from fieldpick.train.validate import predict

    torch.set_num_threads(1)
    model, _, _ = load_checkpoint(path)
    t = model.config.window_samples
    rows = {}
    for name, opts in (("now", {}), ("legacy", LEGACY_EVENT_SHAPE)):
        ev = event_windows(n, seed, window_samples=t, **opts)
        nz = noise_windows(1, seed + 1, window_samples=t)
        st = np.array(["SY.X"] * n)
        data = RealData(WindowSet(ev["waveforms"], ev["p_idx"], ev["s_idx"], st), np.zeros(n, np.int64),
                        WindowSet(nz["waveforms"], np.full(1, np.nan), np.full(1, np.nan), np.array(["SY.X"])))
        events, picks, _, _ = predict(model, data, TrainConfig())
        c = {"P": 0, "S": 0, "S_as_P": 0, "P_labels": 0, "S_labels": 0}
        res = []
        for i, pk in enumerate(picks):
            for phase, label in (("P", events.p_idx[i]), ("S", events.s_idx[i])):
                if not np.isfinite(label):
                    continue
                near = [q for q in pk if abs(q[1] - label) <= TOL_SAMPLES]
                c[phase + "_labels"] += 1
                c[phase] += any(q[0] == phase for q in near)
                if phase == "S":
                    c["S_as_P"] += any(q[0] == "P" for q in near)
                    res += [(q[1] - label) / ev["fs"] for q in near if q[0] == "S"]
        c["S_residual_median_s"] = float(np.median(res)) if res else float("nan")
        rows[name] = c
    return rows


def markdown(r):
    lines = ["# Synthetic events against the NCEDC windows", "",
             "Command: `%s`. %s, numpy %s; %d synthetic windows per generator, seed %d." % (
                 r["meta"]["command"], r["meta"]["host"], np.__version__, r["meta"]["windows"], r["meta"]["seed"]),
             ""]
    from fieldpick.train.data.synthetic import SHAPE_STATS

    sh = r["shapes"]
    gens = [g for g in ("ncedc", "now", "legacy") if g in sh]
    if "ncedc" not in sh:
        lines += ["The NCEDC windows were not found, so there is no real column.", ""]
    lines += ["## Shape statistics (log10; 10th / 50th / 90th percentile)", "",
              "| statistic | what | " + " | ".join({"ncedc": "NCEDC", "now": "synthetic now",
                                                   "legacy": "synthetic legacy"}[g] for g in gens) + " |",
              "|---|---|" + "---|" * len(gens)]
    for k, what in SHAPE_STATS.items():
        lines.append("| %s | %s | %s |" % (k, what, " | ".join("%.2f / **%.2f** / %.2f" % tuple(sh[g][k][:3])
                                                                for g in gens)))
    lines += ["", "Windows measured: %s (vertical-only windows, S within 0.6 s of P and windows too short "
                  "for the 2 s of noise or 1 s of S are left out)." % ", ".join(
                      "%s %d" % (g, sh[g]["s_over_coda"][3]) for g in gens), ""]
    lines += ["## Models trained on real data, picking synthetic event windows", "",
              "A pick within 0.5 s of an arrival finds it; 'S called P' counts S arrivals with a P pick "
              "within 0.5 s.", "",
              "| checkpoint | generator | P found | S found | S called P | S residual median (s) |",
              "|---|---|---:|---:|---:|---:|"]
    for path, rows in r["models"].items():
        for g, c in rows.items():
            lines.append("| %s | %s | %d / %d | %d / %d | %d | %+.3f |" % (
                path, g, c["P"], c["P_labels"], c["S"], c["S_labels"], c["S_as_P"], c["S_residual_median_s"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append",
                    help="a model trained on real data (repeatable; default: train/artifacts/default.pt)")
    ap.add_argument("--windows", type=int, default=200, help="synthetic windows per generator")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--out", default=os.path.join(RESULTS, "synthetic_realism"), help="output stem (.json, .md)")
    args = ap.parse_args(argv)
    t0 = time.time()
    ckpts = args.checkpoint or [os.path.relpath(os.path.join(ROOT, "train", "artifacts", "default.pt"), ROOT)]
    r = {"meta": {"command": "benchmarks/synthetic_realism.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "host": "%s, %d CPUs" % (platform.machine(), os.cpu_count() or 0), "windows": args.windows,
                  "seed": args.seed, "date": time.strftime("%Y-%m-%d")},
         "shapes": shapes(args.windows, args.seed), "models": {}}
    for path in ckpts:
        r["models"][path] = picked(path, args.windows, args.seed)
    r["meta"]["seconds"] = time.time() - t0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(r, f, indent=1)
    md = markdown(r)
    with open(args.out + ".md", "w") as f:
        f.write(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
