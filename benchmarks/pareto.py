"""Compression Pareto table: size and cost against cross-validated P/S F1, float32 and int8.

Every accuracy figure is pooled over 5 station folds of the NCEDC windows:
each window is picked by the fold model that never saw its station (the
folds of ``fieldpick.train.crossval.station_folds``, seed 0, the same as the
zoo's teachers).  The peer in every row's ratio is the PhaseNet teacher of
the same folds, scored in the same run.

Each stage is a module of ``benchmarks/pareto_stages/`` with its own flags
(``benchmarks/pareto.py STAGE --help``) and writes its own JSON under
``--work``, so a stage can be re-run:

    # 1. teacher rows: score the zoo's PhaseNet fold models on their test folds
    .venv/bin/python benchmarks/pareto.py teacher --folds runs/zoo/phasenet
    # 1b. (optional) train a recipe on chosen folds (same splits as fieldpick train --crossval), e.g. an
    #     input-normalisation A/B:
    .venv/bin/python benchmarks/pareto.py folds --config configs/default.toml --model compress=asinh \\
        --model compress_scale=0.05 --fold-list 0,1 --folds runs/ab/asinh0.05
    # 2. int8: calibrate, convert and score TFLite fp32 + full int8 for one candidate's folds
    .venv/bin/python benchmarks/pareto.py int8 --name lppn-w8-distilled \\
        --folds runs/compress/distill_w8/cv/distilled
    # 2b. the normalisation A/B table from the int8 stage files in --work (pareto_normalisation.md)
    .venv/bin/python benchmarks/pareto.py ab --work runs/ab/work
    # 3. the table: candidates from fieldpick distill/prune --crossval outputs + the stages above
    .venv/bin/python benchmarks/pareto.py table --distill runs/compress/distill_w8/distill_cv.json \\
        --prune runs/compress/prune_w16/prune_cv.json
    # 4. what the false picks on the noise windows are: the model under study, then the models that may second
    #    its picks (falsepicks.md, plots/falsepicks.png)
    .venv/bin/python benchmarks/pareto.py falsepicks --folds default=runs/default_long/cv,teacher=runs/lb/pn_asinh
    # 5. the station pipeline on the NCEDC traces, each by its fold's int8 model (station_cv.md)
    .venv/bin/python benchmarks/pareto.py station --work runs/compress --candidate lppn-w8-distilled

Also: ``noise`` (where int8 rounding moves the outputs), ``thresholds`` (threshold
rules compared on fold models) and ``stationparity`` (the station pipeline, fp32
against int8 export files).  The table writes benchmarks/results/pareto.json,
pareto.md and plots/pareto.png.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("teacher", "folds", "int8", "ab", "noise", "thresholds", "falsepicks", "station", "stationparity",
          "table")


def stage_module(stage):
    """The module of one stage (``pareto_stages.<stage>``)."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    return importlib.import_module("pareto_stages." + stage)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("options", nargs=argparse.REMAINDER, help="the stage's own flags (STAGE --help lists them)")
    args = ap.parse_args(argv)
    return stage_module(args.stage).main(args.options)


if __name__ == "__main__":
    sys.exit(main())
