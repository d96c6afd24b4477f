"""What a few labeled windows buy: fine-tuning a synthetic-pretrained model vs training from scratch.

A model (the default recipe, configs/default.toml, unless --config) is
pre-trained on synthetic windows only.  Then, for each of k station folds of
the NCEDC windows (the fold is the test set, never seen) and each number of
labeled windows n drawn from the other stations, four models are scored on
the test fold: synthetic only (no real labels), fine-tune the head only,
fine-tune all layers, and train from scratch on the same n windows.
Scores are pooled over the folds; ratios are against 'scratch' at the same n.

    .venv/bin/python benchmarks/finetune.py
    .venv/bin/python benchmarks/finetune.py --labels 25 100 --folds 3 --epochs 25

    .venv/bin/python benchmarks/finetune.py --render     # finetune.md again from finetune.json

Writes benchmarks/results/finetune.json and finetune.md (the table states its
budget).  Without the NCEDC windows it prints ``SKIPPED: <why>``, exits with
75 and leaves the results alone (benchmarks/run_all.py reports the skip).
"""

import argparse
import json
import logging
import os
import sys
import time

import torch

from fieldpick.edge.errors import DataError
from fieldpick.train.config import TrainConfig, load_config
from fieldpick.train.data.datasets import NCEDC_DIR
from fieldpick.train.data.windows import load_real
from fieldpick.train.finetune import compare

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def table(rows, args):
    scratch = {r["labeled_windows"]: r for r in rows if r["method"] == "scratch"}
    lines = ["| labeled windows | method | P F1 | S F1 | P MAE s | S MAE s | false picks/h | F1 vs scratch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["labeled_windows"], r["method"])):
        ref = scratch.get(r["labeled_windows"], r)["f1"]
        lines.append("| %d | %s | %.3f | %.3f | %.3f | %.3f | %.1f | %s |" % (
            r["labeled_windows"], r["method"], r["P_f1"], r["S_f1"], r["P_mae_s"], r["S_mae_s"],
            r["false_picks_per_hour"], "%.2f" % (r["f1"] / ref) if ref else "-"))
    lines.append("")
    lines.append("%d station folds of the NCEDC windows; each test fold unseen by every model; labeled windows "
                 "drawn from the other folds' stations (capped by what they hold); pre-training on %d synthetic "
                 "windows (fieldpick.lab.synthetic), %d epochs; each fine-tuning or scratch run %d epochs x %d "
                 "steps (early stopping may end sooner); recipe %s." % (
                     args["folds"], args["pretrain_windows"], args["pretrain_epochs"], args["epochs"], args["steps"],
                     args["config"]))
    lines += ["", "Command: `benchmarks/finetune.py %s`." % " ".join(
        "--%s %s" % (k.replace("_", "-"), " ".join(map(str, v)) if isinstance(v, list) else v)
        for k, v in args.items() if k not in ("work", "render"))]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/default.toml")
    ap.add_argument("--labels", type=int, nargs="+", default=[25, 100])
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=25, help="epochs of each fine-tuning / scratch run")
    ap.add_argument("--steps", type=int, default=20, help="steps per epoch")
    ap.add_argument("--pretrain-windows", type=int, default=2000)
    ap.add_argument("--pretrain-epochs", type=int, default=15)
    ap.add_argument("--work", default=os.path.join(REPO, "runs", "finetune"))
    ap.add_argument("--render", action="store_true", help="only write the markdown again from the JSON")
    args = ap.parse_args()
    out = os.path.join(HERE, "results")
    if args.render:
        with open(os.path.join(out, "finetune.json")) as f:
            old = json.load(f)
        with open(os.path.join(out, "finetune.md"), "w") as f:
            f.write(table(old["rows"], old["args"]))
        return 0
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        real = load_real()
    except DataError as exc:  # benchmarks/run_all.py: exit status 75 = skipped, with the reason
        print("SKIPPED: fine-tuning is scored on the NCEDC windows, not found at %s (%s)" % (NCEDC_DIR, exc))
        return 75
    base = load_config(os.path.join(REPO, args.config))
    cfg = TrainConfig.from_dict(dict(base.to_dict(), epochs=args.epochs, steps_per_epoch=args.steps,
                                     pretrain_windows=0, pretrain_epochs=0, progress=False,
                                     patience=max(args.epochs // 3, 1)))
    t0 = time.time()
    rows = compare(cfg, real, n_labels=tuple(args.labels), k=args.folds,
                   pretrain_windows=args.pretrain_windows, pretrain_epochs=args.pretrain_epochs, out_dir=args.work)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "finetune.json"), "w") as f:
        json.dump({"args": vars(args), "seconds": time.time() - t0, "rows": rows}, f, indent=1, default=float)
    text = table(rows, vars(args))
    with open(os.path.join(out, "finetune.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
