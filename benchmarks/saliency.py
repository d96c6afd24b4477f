"""Does the explanation mean something?  Saliency mass near the true onsets vs a randomised model.

The model-randomisation sanity check of Adebayo et al. (2018, "Sanity
Checks for Saliency Maps"): an explanation that looks the same for a network
whose weights were re-initialised says more about the input than about the
model.  For each labeled window and each phase, the map is computed with
the target at the TRUE onset (same input, same target, only the weights
differ), scaled to unit sum, and the fraction of it within 1 s of that
onset is recorded.  The control is the same architecture with every weight
re-initialised and BatchNorm statistics reset
(``fieldpick.train.explain.randomised``).  "uniform" is what a flat map
would score (the share of the window within 1 s).

Maps: Grad-CAM++ (Chattopadhay et al. 2018), Grad-CAM (Selvaraju et al.
2017; the default of ``fieldpick explain`` because of this check) and
LayerCAM (Jiang et al. 2021; at a full-rate last layer it is local by
construction, so it passes nothing here), each at the model's default layer
(``--layer`` to change).  Data: the
NCEDC windows when present (``FIELDPICK_NCEDC``) and
always seeded synthetic windows (``fieldpick.lab.synthetic``).

    .venv/bin/python benchmarks/saliency.py
    .venv/bin/python benchmarks/saliency.py --models runs/zoo/lppn/fold0/best.pt --every 4 --synthetic 20

Writes benchmarks/results/saliency.json and saliency.md.
"""

import argparse
import glob
import json
import logging
import os
import sys
import time

import numpy as np
import torch

from fieldpick.lab import synthetic
from fieldpick.train.data.datasets import NCEDC_DIR, load_ncedc
from fieldpick.train.explain import METHODS, default_layer, explain, randomised, saliency_mass
from fieldpick.train.plot import load_model
from fieldpick.train.progress import bar, show

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WITHIN_S = 1.0


def default_models(zoo_work="runs/zoo"):
    """The shipped default (or its newest training run) and the PhaseNet teacher, whichever exist.

    The teacher is looked for in ``zoo_work`` (benchmarks/zoo.py's --work;
    make bench passes the folder its own zoo run just wrote).
    """
    found = []
    for pattern in ("train/artifacts/default.pt", "runs/default/final/final.pt", "runs/default/best.pt",
                    "runs/default/cv/fold*/best.pt"):
        hits = sorted(glob.glob(os.path.join(REPO, pattern)))
        if hits:
            found.append(("default", hits[0]))
            break
    for pattern in ("train/artifacts/phasenet.pt", zoo_work + "/phasenet/final/final.pt", zoo_work + "/phasenet/fold*/best.pt"):
        hits = sorted(glob.glob(os.path.join(REPO, pattern)))
        if hits:
            found.append(("teacher", hits[0]))
            break
    return found


def datasets(args):
    sets = []
    if os.path.exists(os.path.join(NCEDC_DIR, "phasenet_ncedc_30s.npz")):
        ws = load_ncedc()
        idx = np.arange(0, len(ws), args.every)
        sets.append(("ncedc", ws.waveforms[idx], ws.p_idx[idx], ws.s_idx[idx], ws.fs))
    else:
        logging.warning("NCEDC windows not found at %s: synthetic windows only", NCEDC_DIR)
    ev = synthetic.event_windows(args.synthetic, args.seed, window_samples=3000, fs=100.0)
    sets.append(("synthetic", ev["waveforms"], ev["p_idx"], ev["s_idx"], ev["fs"]))
    return sets


def _mean(values):
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def measure(model, card, waves, p_idx, s_idx, fs, layer, pb):
    """{method: {phase: [mass, ...]}} with the target at the true onsets."""
    out = {m: {"P": [], "S": []} for m in METHODS}
    for w, p, s in zip(waves, p_idx, s_idx):
        for phase, onset in (("P", p), ("S", s)):
            if not np.isfinite(onset):
                continue
            for method in METHODS:
                e = explain(model, card, w, phase, sample=float(onset), layer=layer, method=method)
                out[method][phase].append(saliency_mass(e.saliency, onset, fs, WITHIN_S))
        pb.update(1)
    return out


def table(rows, controls, notes=()):
    lines = ["| model | data | windows | method | layer | P real | P random | P ratio | S real | S random | S ratio | uniform |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %d | %s | %s | %.3f | %.3f | %.2f | %.3f | %.3f | %.2f | %.3f |" % (
            r["model"], r["data"], r["windows"], r["method"], r["layer"], r["P_real"], r["P_random"],
            r["P_ratio"], r["S_real"], r["S_random"], r["S_ratio"], r["uniform"]))
    lines += ["", "Fraction of the saliency map (unit sum) within %.0f s of the true onset, mean over windows; "
              "target at the true onset for both the trained and the randomised model (all weights "
              "re-initialised, averaged over %d seeds); ratio = real / random (> 1: the trained model concentrates "
              "more). 'uniform': a flat map. NaN: every map of the trained model was empty (all channel weights "
              "<= 0 after the ReLU)." % (WITHIN_S, controls)]
    lines += [""] + ["- " + n for n in notes] if notes else []
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", metavar="CHECKPOINT",
                    help="checkpoints (default: the default model and the PhaseNet teacher found under "
                         "train/artifacts/ or runs/)")
    ap.add_argument("--layer", default=None, help="module to hook (default: each model's default layer)")
    ap.add_argument("--every", type=int, default=2, help="use every k-th NCEDC window (default 2: 77 windows)")
    ap.add_argument("--synthetic", type=int, default=40, help="synthetic event windows (default 40)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the synthetic windows and the first randomisation")
    ap.add_argument("--controls", type=int, default=3,
                    help="randomised copies (seeds seed, seed+1, ...) averaged as the control (default 3)")
    ap.add_argument("--zoo-work", default="runs/zoo", help="where benchmarks/zoo.py wrote its fold models "
                    "(the teacher is looked for there; default runs/zoo)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    models = ([(os.path.basename(os.path.dirname(p)), p) for p in args.models] if args.models
              else default_models(args.zoo_work))
    if not models:
        sys.exit("no checkpoints found; pass --models")
    notes = ["Checkpoints: %s." % "; ".join("%s = %s (file time %s)" % (
        n, os.path.relpath(p, REPO), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(p))))
        for n, p in models)]
    if not any(n == "teacher" for n, _ in models) and not args.models:
        notes.append("No PhaseNet teacher: none in train/artifacts/ or %s (benchmarks/zoo.py trains it)." % args.zoo_work)
    sets = datasets(args)
    if not any(s[0] == "ncedc" for s in sets):
        notes.append("NCEDC windows not found at %s: synthetic windows only." % NCEDC_DIR)
    notes.append("Budget: every %d-th NCEDC window, %d synthetic windows, %d randomised control(s); command "
                 "`benchmarks/saliency.py %s`." % (args.every, args.synthetic, args.controls, " ".join(sys.argv[1:])))
    rows = []
    t0 = time.time()
    for name, path in models:
        model, card = load_model(path)
        controls = [randomised(model, args.seed + k) for k in range(args.controls)]
        layer = args.layer or default_layer(model)
        for data, waves, p_idx, s_idx, fs in sets:
            with bar(total=(1 + len(controls)) * len(waves), desc="%s %s" % (name, data), unit="window") as pb:
                real = measure(model, card, waves, p_idx, s_idx, fs, layer, pb)
                rand = {m: {"P": [], "S": []} for m in METHODS}
                for control in controls:
                    one = measure(control, card, waves, p_idx, s_idx, fs, layer, pb)
                    for m in METHODS:
                        for ph in ("P", "S"):
                            rand[m][ph] += one[m][ph]
                show(pb, model=card.output.kind)
            uniform = min(1.0, (2 * WITHIN_S * fs + 1) / waves.shape[-1])
            for method in METHODS:
                row = {"model": "%s (%s)" % (name, model.architecture), "checkpoint": os.path.relpath(path, REPO),
                       "data": data, "windows": len(waves), "method": method, "layer": layer, "uniform": uniform}
                for phase in ("P", "S"):
                    a, b = _mean(real[method][phase]), _mean(rand[method][phase])
                    row.update({phase + "_real": a, phase + "_random": b, phase + "_ratio": a / b if b > 0 else float("nan"),
                                phase + "_n": len(real[method][phase]),
                                phase + "_empty_maps": int(np.sum(~np.isfinite(real[method][phase])))})
                rows.append(row)
                print("%-22s %-9s %-9s P %.3f vs %.3f (x%.2f)  S %.3f vs %.3f (x%.2f)  uniform %.3f" % (
                    row["model"], data, method, row["P_real"], row["P_random"], row["P_ratio"], row["S_real"],
                    row["S_random"], row["S_ratio"], uniform), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "saliency.json"), "w") as f:
        json.dump({"args": vars(args), "seconds": time.time() - t0, "within_s": WITHIN_S, "rows": rows}, f,
                  indent=1, default=float)
    with open(os.path.join(args.out, "saliency.md"), "w") as f:
        f.write("# Saliency sanity check (Adebayo et al. 2018)\n\n" + table(rows, args.controls, notes))
    print("wrote %s/saliency.json and saliency.md (%.0f s)" % (args.out, time.time() - t0))


if __name__ == "__main__":
    main()
