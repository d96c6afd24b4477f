"""Compression Pareto table: size and cost against cross-validated P/S F1, float32 and int8.

Every accuracy figure is pooled over 5 station folds of the NCEDC windows:
each window is picked by the fold model that never saw its station (the
folds of ``fieldpick.train.crossval.station_folds``, seed 0, the same as the
zoo's teachers).  The peer in every row's ratio is the PhaseNet teacher of
the same folds, scored in the same run.

Stages (each writes its own JSON under ``--work`` so a stage can be re-run):

    # 1. teacher rows: score the zoo's PhaseNet fold models on their test folds
    .venv/bin/python benchmarks/pareto.py teacher --folds runs/zoo/phasenet
    # 1b. (optional) train a recipe on chosen folds (same splits as fieldpick train --crossval), e.g. an
    #     input-normalisation A/B:
    .venv/bin/python benchmarks/pareto.py folds --config configs/default.toml --model compress=asinh \
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

Writes benchmarks/results/pareto.json, pareto.md and plots/pareto.png.
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
RESULTS = os.path.join(HERE, "results")
WORK = os.path.join(os.path.dirname(HERE), "runs", "compress")
K, SEED = 5, 0

log = logging.getLogger("pareto")


def _setup():
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fold_split(data, f):
    from fieldpick.train.crossval import station_folds
    from fieldpick.train.fit import station_split

    fold = station_folds(data.station, K, SEED)
    test = fold == f
    rest = data.subset(~test)
    held = station_split(rest.station, 0.2, SEED + 1 + f)
    return rest.subset(~held), rest.subset(held), data.subset(test)


def _pool(parts, fs, tol):
    from fieldpick.train.score import score

    picks, p, s, npicks, seconds = [], [], [], [], 0.0
    for pk, pi, si, npk, sec in parts:
        picks += pk
        p.append(pi)
        s.append(si)
        npicks += npk
        seconds += sec
    return score(picks, np.concatenate(p), np.concatenate(s), fs, tol, npicks, seconds)


def _load(path):
    from fieldpick.train.prune import load_pruned

    return load_pruned(path)  # plain and pruned checkpoints alike


def stage_teacher(args):
    """Score each fold's teacher (its own tuned thresholds) on its test stations."""
    from fieldpick.export.onnx import run_torch
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.crossval import flops_per_record
    from fieldpick.train.fit import load_real
    from fieldpick.train.quantize import score_outputs

    cfg = TrainConfig()
    data = load_real()
    parts, folds = [], []
    for f in range(K):
        model, card, _ = _load(os.path.join(args.folds, "fold%d" % f, "best.pt"))
        _, _, test = _fold_split(data, f)
        s = score_outputs(lambda x, m=model: run_torch(m, x)[0], model.card(), test, cfg)
        parts.append(s.pop("_raw"))
        folds.append(s)
        log.info("teacher fold %d: P F1 %.3f S F1 %.3f", f, s["P_f1"], s["S_f1"])
    out = {"name": "phasenet-teacher", "source": args.folds, "parameters": int(sum(p.numel() for p in model.parameters())),
           "flops_per_30s": int(flops_per_record(model)), "pooled": _pool(parts, data.events.fs, cfg.tolerance_s),
           "folds": folds}
    _write(os.path.join(args.work, "teacher.json"), out)


def stage_int8(args):
    """Calibrate + convert + score TFLite fp32 and full int8 for each fold of one candidate."""
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.fit import load_real, tune_thresholds
    from fieldpick.train.quantize import int8_scores

    # scoring uses the default tolerance; the optional QAT fine-tuning uses these steps and a low rate
    cfg = TrainConfig(lr=5e-4, steps_per_epoch=25, warmup_epochs=0.5, patience=0, progress=False)
    data = load_real()
    folds = [int(f) for f in args.fold_list.split(",")]
    parts = {"torch": [], "fp32": [], "int8": []}
    rows, sizes = [], {}
    t0 = time.time()
    for f in folds:
        model, card, _ = _load(os.path.join(args.folds, "fold%d" % f, args.checkpoint))
        train, val, test = _fold_split(data, f)
        tune_thresholds(model, val, cfg)  # the fold's own validation stations, as in training
        s, paths = int8_scores(model, model.card(), train, test, cfg,
                               os.path.join(args.work, "int8", args.name + args.variant, "fold%d" % f), seed=SEED + f,
                               clip_percentile=args.clip, qat_epochs=args.qat_epochs, val_data=val,
                               equalise=args.equalise)
        sizes = {"int8_bytes": paths["int8_bytes"], "fp32_bytes": paths["fp32_bytes"]}
        row = {"fold": f, "thresholds": dict(model.thresholds), **sizes}
        for kind, sc in s.items():
            parts[kind].append(sc.pop("_raw"))
            row[kind] = sc
        m, n = _picks_agree(parts["fp32"][-1][0] + parts["fp32"][-1][3], parts["int8"][-1][0] + parts["int8"][-1][3])
        row["pick_parity"] = {"matched": m, "picks": n, "agreement": m / float(n) if n else 1.0}
        rows.append(row)
        log.info("%s fold %d: P F1 torch %.3f fp32 %.3f int8 %.3f | S F1 %.3f %.3f %.3f", args.name, f,
                 s["torch"]["P_f1"], s["fp32"]["P_f1"], s["int8"]["P_f1"], s["torch"]["S_f1"],
                 s["fp32"]["S_f1"], s["int8"]["S_f1"])
    out = {"name": args.name, "source": args.folds, "folds_used": folds, "seconds": time.time() - t0,
           "clip_percentile": args.clip, "int8_variant": args.variant, "qat_epochs": args.qat_epochs,
           "equalise": args.equalise,
           "parameters": int(sum(p.numel() for p in model.parameters())), **sizes,
           "pooled": {k: _pool(v, data.events.fs, cfg.tolerance_s) for k, v in parts.items()}, "folds": rows}
    m = sum(r["pick_parity"]["matched"] for r in rows)
    n = sum(r["pick_parity"]["picks"] for r in rows)
    out["pick_parity"] = {"matched": m, "picks": n, "agreement": m / float(n) if n else 1.0,
                          "rule": "int8 vs TFLite float32 picks on the test folds' event and noise windows: "
                                  "same phase, within 2 samples"}
    log.info("%s: pick parity %.1f %% (%d of %d)", args.name, 100.0 * out["pick_parity"]["agreement"], m, n)
    _write(os.path.join(args.work, "int8_%s%s.json" % (args.name, "-" + args.variant if args.variant else "")), out)


def _picks_agree(ref, test):
    """(matched, max(ref, test) picks) of two runs' per-window picks [(phase, sample, prob), ...].

    Same rule as the export gate (:func:`fieldpick.export.parity.pick_parity`):
    same phase, within ``PICK_TOLERANCE_SAMPLES``, greedy one-to-one.
    """
    from fieldpick.export.parity import PICK_TOLERANCE_SAMPLES, _match

    matched = total = 0
    for r, t in zip(ref, test):
        for phase in ("P", "S"):
            a = [pk[1] for pk in r if pk[0] == phase]
            b = [pk[1] for pk in t if pk[0] == phase]
            matched += _match(a, b, PICK_TOLERANCE_SAMPLES)
            total += max(len(a), len(b))
    return matched, total


def stage_folds(args):
    """Train a recipe (``--config`` + ``--set``/``--model`` overrides) on the folds of ``--fold-list``.

    The splits are those of ``fieldpick train --crossval 5`` (test fold,
    then validation stations ``station_split(rest, 0.2, seed + 1 + f)``), so
    ``int8`` can then score the fold models beside any other candidate's.
    Writes ``<folds>/fold<f>/best.pt`` and ``<folds>/folds_<list>.json``
    (PyTorch scores per fold).
    """
    from fieldpick.train.config import TrainConfig, _parse_value, load_config
    from fieldpick.train.fit import evaluate, load_real, train

    base = load_config(args.config).to_dict() if args.config else TrainConfig().to_dict()
    for item in args.set or []:
        key, _, text = item.partition("=")
        base[key.strip()] = _parse_value(text)
    model = dict(base.get("model", {}))
    for item in args.model or []:
        key, _, text = item.partition("=")
        model[key.strip()] = _parse_value(text)
    base.update(model=model, progress=False)
    if args.init_seed is not None:
        base["seed"] = args.init_seed  # weights and training windows only: the folds stay those of seed 0
    cfg = TrainConfig.from_dict(base)
    if cfg.seed != SEED and args.init_seed is None:
        raise SystemExit("folds: seed %d; the table's folds are seed %d (use --init-seed to vary only the "
                         "initialisation and the training windows)" % (cfg.seed, SEED))
    data = load_real()
    rows = []
    for f in [int(x) for x in args.fold_list.split(",")]:
        t0 = time.time()
        tr, val, test = _fold_split(data, f)
        model_, history = train(cfg, tr, val, out_dir=os.path.join(args.folds, "fold%d" % f))
        s = evaluate(model_, test, cfg)
        rows.append({"fold": f, "seconds": time.time() - t0, "epochs": len(history), "test": s,
                     "thresholds": dict(model_.thresholds)})
        log.info("fold %d: %.0f s, %d epochs, P F1 %.3f S F1 %.3f", f, rows[-1]["seconds"], len(history),
                 s["P_f1"], s["S_f1"])
    _write(os.path.join(args.folds, "folds_%s.json" % args.fold_list.replace(",", "")),
           {"train_config": cfg.to_dict(), "folds": rows})


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    log.info("wrote %s", path)


def _publish(stem, meta, rows, lines):
    """Write ``benchmarks/results/<stem>.json`` (meta + rows) and ``.md`` (the lines), and print the markdown."""
    md = "\n".join(lines) + "\n"
    _write(os.path.join(RESULTS, stem + ".json"), {"meta": meta, "rows": rows})
    with open(os.path.join(RESULTS, stem + ".md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)


# ---------------------------------------------------------------- the table
def _row(name, kind, params, flops, pooled, note, int8=None):
    r = {"name": name, "kind": kind, "parameters": int(params), "flops_per_30s": int(flops), "note": note}
    for k in ("P_f1", "S_f1", "P_mean_s", "P_std_s", "S_mean_s", "S_std_s", "P_mae_s", "S_mae_s",
              "false_picks_per_hour"):
        r[k] = float(pooled[k]) if pooled.get(k) is not None else float("nan")
    r["int8_bytes"] = None
    if int8:
        r["int8_bytes"] = int8["int8_bytes"]
        r["int8_folds"] = int8["folds_used"]
        for k in ("P_f1", "S_f1"):
            r["int8_" + k] = float(int8["pooled"]["int8"][k])
            r["fp32tfl_" + k] = float(int8["pooled"]["fp32"][k])
            r["torch_" + k] = float(int8["pooled"]["torch"][k])
    return r


def stage_ab(args):
    """An A/B table: one row per ``int8_<name>.json`` in ``--work`` (same folds each).

    Writes ``benchmarks/results/<--out>.json`` and ``.md`` (default
    ``pareto_normalisation``, the input-normalisation A/B): per
    candidate, the folds used, PyTorch / TFLite fp32 / full int8 P and S F1
    pooled over those folds, the int8 - fp32 deltas and the pick parity
    (int8 vs fp32 picks on the test folds, same phase within 2 samples).
    """
    rows = []
    for fn in sorted(os.listdir(args.work)):
        if not (fn.startswith("int8_") and fn.endswith(".json")):
            continue
        d = json.load(open(os.path.join(args.work, fn)))
        pooled = d["pooled"]
        row = {"name": d["name"] + ("+" + d["int8_variant"] if d.get("int8_variant") else ""),
               "folds": d["folds_used"], "qat_epochs": d.get("qat_epochs", 0),
               "pick_parity": d.get("pick_parity", {}).get("agreement"),
               "pick_parity_counts": [d.get("pick_parity", {}).get("matched"), d.get("pick_parity", {}).get("picks")]}
        for kind in ("torch", "fp32", "int8"):
            for k in ("P_f1", "S_f1", "P_mae_s", "S_mae_s", "false_picks_per_hour"):
                row["%s_%s" % (kind, k)] = float(pooled[kind][k]) if pooled[kind].get(k) is not None else None
        row["dP"] = row["int8_P_f1"] - row["fp32_P_f1"]
        row["dS"] = row["int8_S_f1"] - row["fp32_S_f1"]
        rows.append(row)
    out = args.out or "pareto_normalisation"
    meta = {"command": "benchmarks/pareto.py ab --work %s%s" % (args.work, " --out " + out if args.out else ""),
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    title = args.title or "Input normalisation A/B: float32 against full int8"
    lines = ["# " + title, "",
             "Fold models trained by `benchmarks/pareto.py folds` (configs/default.toml, seed 0, the splits of",
             "`fieldpick train --crossval 5`), converted and scored by `benchmarks/pareto.py int8`; F1 pooled over",
             "the folds listed (0.5 s matching, thresholds tuned on each fold's validation stations). Pick parity:",
             "int8 picks against TFLite fp32 picks on the same test windows, same phase within 2 samples.",
             "", "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| candidate | folds | fp32 P F1 | fp32 S F1 | int8 P F1 | int8 S F1 | int8 - fp32 P | int8 - fp32 S "
             "| fp32 P / S MAE s | pick parity |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pp = "-" if r["pick_parity"] is None else "%.1f %% (%d of %d)" % (100 * r["pick_parity"],
                                                                          *r["pick_parity_counts"])
        mae = "-" if r["fp32_P_mae_s"] is None else "%.3f / %.3f" % (r["fp32_P_mae_s"], r["fp32_S_mae_s"])
        lines.append("| %s | %s | %.3f | %.3f | %.3f | %.3f | %+.3f | %+.3f | %s | %s |" % (
            r["name"], ",".join(map(str, r["folds"])), r["fp32_P_f1"], r["fp32_S_f1"], r["int8_P_f1"],
            r["int8_S_f1"], r["dP"], r["dS"], mae, pp))
    _publish(out, meta, rows, lines)


def stage_noise(args):
    """Where int8 loses: fake-quantise one activation at a time and measure what it moves.

    The model (``--checkpoint``, a file) runs in float on the export parity
    windows (:func:`fieldpick.export.calibrate.export_windows`, the export's
    seed and NCEDC half), once exact and once with int8 rounding at one
    place: the input (scale max|x| / 127 over the calibration windows), one
    ReLU / ReLU6 output, or the residual stream where a context block or the
    head reads it (255 levels over [0, its calibration maximum]), as
    full-int8 TFLite holds them.  Then all places at once, which is what
    the int8 file does up to BatchNorm folding and weight rounding; the same
    with one step per channel (each channel's own maximum: what activation
    equalisation, :mod:`fieldpick.export.equalise`, reaches at power 1);
    all but the stream; the stream alone.  For each: the largest
    probability change, the mean change near picks (cells where P or S
    exceeds 0.3), the mean offset change there, and pick parity against the
    exact run (the export gate's rule: same phase within 2 samples).
    Writes ``benchmarks/results/<--out or int8_noise>.json`` and ``.md``.
    """
    import torch

    from fieldpick.export import calibrate
    from fieldpick.export.parity import pick_parity
    from fieldpick.export.pipeline import ExportSettings
    from fieldpick.train.data.datasets import NCEDC_DIR
    from fieldpick.train.quantize import fake_round

    model, _, _ = _load(args.checkpoint)
    model.eval()
    card = model.card()
    if card.output.kind != "stride_class_offset":
        raise SystemExit("noise: %s is a %r model; this stage reads per-stride (lppn) outputs"
                         % (args.checkpoint, card.output.kind))
    seed = ExportSettings().seed
    root = NCEDC_DIR if os.path.exists(os.path.join(NCEDC_DIR, "phasenet_ncedc_90s.npz")) else None
    x, p_idx, s_idx, src = calibrate.export_windows(card, 200, seed, root, half=1)
    cal, _, _, _ = calibrate.export_windows(card, 200, seed + 1000, root, half=0)
    acts = [(n, m) for n, m in model.named_modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    # the residual stream: what each context block reads (and adds its output to), and what the head reads;
    # in the int8 file these are the ADD outputs, one scale each
    stream = [("stream: context.%d in" % i, blk) for i, blk in enumerate(getattr(model, "context", []))]
    if isinstance(getattr(model, "head", None), torch.nn.Module):
        stream.append(("stream: head in", model.head))
    peak, chan = {}, {}

    def keep(name, value):
        v = value.detach().abs().amax(dim=(0, 2))
        chan[name] = torch.maximum(chan[name], v) if name in chan else v
        peak[name] = float(chan[name].max())

    hooks = [m.register_forward_hook(lambda mod, a, o, n=n: keep(n, o)) for n, m in acts]
    hooks += [m.register_forward_pre_hook(lambda mod, a, n=n: keep(n, a[0])) for n, m in stream]
    with torch.no_grad():
        model(torch.from_numpy(cal))
    for h in hooks:
        h.remove()
    scale_in = float(np.abs(cal).max()) / 127.0

    def step(name, per_channel):  # 255 levels over [0, max]: ReLU outputs and the stream are >= 0
        return (chan[name][None, :, None] if per_channel else peak[name]) / 255.0

    def run(places, per_channel=False):
        hooks = []
        if "input" in places:
            hooks.append(model.register_forward_pre_hook(lambda mod, a: (fake_round(a[0], scale_in, -128, 127),)))
        hooks += [m.register_forward_hook(lambda mod, a, o, n=n: fake_round(o, step(n, per_channel), 0, 255))
                  for n, m in acts if n in places]
        hooks += [m.register_forward_pre_hook(lambda mod, a, n=n: (fake_round(a[0], step(n, per_channel), 0, 255),))
                  for n, m in stream if n in places]
        try:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        finally:
            for h in hooks:
                h.remove()

    exact = run(set())
    rows = []

    def row(name, places, maximum=None, per_channel=False):
        out = run(places, per_channel)
        d = np.abs(out[:, 1:3] - exact[:, 1:3])
        near = np.maximum(out[:, 1:3], exact[:, 1:3]) > 0.3
        cells = exact[:, 1:3].max(axis=1) > 0.3
        pp = pick_parity(exact.transpose(0, 2, 1), out.transpose(0, 2, 1), card, p_idx, s_idx)  # the gate's rule
        rows.append({"place": name, "calibration_max": maximum, "max_abs_dp": float(d.max()),
                     "near_pick_mean_abs_dp": float(d[near].mean()) if near.any() else 0.0,
                     "near_pick_mean_abs_doffset": float(np.abs(out[:, 3] - exact[:, 3])[cells].mean())
                     if cells.any() else 0.0,
                     "pick_parity": pp.agreement, "picks": max(pp.ref_picks, pp.test_picks), "f1_delta": pp.f1_delta})
        log.info("%-24s parity %.3f  near-pick |dp| %.4f", name, rows[-1]["pick_parity"],
                 rows[-1]["near_pick_mean_abs_dp"])

    everything = {"input"} | {n for n, _ in acts} | {n for n, _ in stream}
    row("all at once", everything)
    row("all at once, one step per channel (what equalisation reaches)", everything, per_channel=True)
    row("all but the stream", everything - {n for n, _ in stream})
    row("the stream alone", {n for n, _ in stream})
    row("input", {"input"}, scale_in * 127.0)
    for n, _ in acts + stream:
        row(n, {n}, peak[n])
    out = args.out or "int8_noise"
    meta = {"command": "benchmarks/pareto.py noise --checkpoint %s%s" % (args.checkpoint,
                                                                       " --out " + out if args.out else ""),
            "windows": {str(k): int(np.sum(src == k)) for k in np.unique(src)}, "thresholds": dict(card.thresholds),
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = ["# Where full int8 loses: one activation rounded at a time", "",
             "The float model on the export's parity windows (%s), exact and with int8 rounding at one place "
             "(input: max|x| / 127 of the calibration windows; a ReLU output or the residual stream: 255 levels over "
             "[0, its calibration maximum], or over each channel's own maximum where the row says so). Parity: picks "
             "against the exact run, same phase within 2 samples." %
             ", ".join("%d %s" % (v, k) for k, v in sorted(meta["windows"].items())), "",
             "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| rounded | calibration max | max abs dp | mean abs dp near picks | mean abs d offset | pick parity "
             "| F1 change |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %.3f | %.4f | %.4f | %.1f %% | %.3f |" % (
            r["place"], "-" if r["calibration_max"] is None else "%.1f" % r["calibration_max"], r["max_abs_dp"],
            r["near_pick_mean_abs_dp"], r["near_pick_mean_abs_doffset"], 100 * r["pick_parity"], r["f1_delta"]))
    _publish(out, meta, rows, lines)


def stage_thresholds(args):
    """Which rule for choosing pick thresholds on the validation stations carries over to the test stations?

    Re-scores existing fold models (``--folds``: one or more comma-separated
    folders of ``fold<i>/best.pt``, e.g. several seeds of one recipe): for
    each rule, thresholds chosen on the fold's validation stations, then the
    fold's test stations picked; F1 pooled over the folds, per folder.
    Rules: the trainer's (the middle of the best F1 plateau), the same on
    an F1 curve smoothed over three grid steps, a fixed 0.5, and the best
    plateau after a penalty of 0.02 F1 per 0.1 away from 0.5.  Writes
    ``benchmarks/results/<--out or thresholds>.json`` and ``.md``.
    """
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.fit import load_real, plateau_middle, predict, tune_thresholds
    from fieldpick.train.score import score

    def smooth3(grid, f1):
        return plateau_middle(grid, np.convolve(np.pad(f1, 1, mode="edge"), np.ones(3) / 3.0, "valid"))

    def fixed(grid, f1):
        return 0.5

    def toward_half(grid, f1):
        return plateau_middle(grid, f1 - 0.2 * np.abs(grid - 0.5))

    rules = {"plateau (trainer)": plateau_middle, "smoothed plateau": smooth3, "fixed 0.5": fixed,
             "pulled to 0.5": toward_half}
    cfg = TrainConfig()
    data = load_real()
    rows = []
    for folder in args.folds.split(","):
        runs = {name: [] for name in rules}  # per rule: predict()'s (events, picks, noise picks, seconds) per fold
        for f in range(K):
            model, _, _ = _load(os.path.join(folder, "fold%d" % f, args.checkpoint))
            _, val, test = _fold_split(data, f)
            for name, rule in rules.items():
                tune_thresholds(model, val, cfg, choose=rule)
                runs[name].append(predict(model, test, cfg))
        for name, folds in runs.items():
            s = score([pk for r in folds for pk in r[1]], np.concatenate([r[0].p_idx for r in folds]),
                      np.concatenate([r[0].s_idx for r in folds]), data.events.fs, cfg.tolerance_s,
                      [pk for r in folds for pk in r[2]], sum(r[3] for r in folds))
            rows.append({"folds": folder, "rule": name, **{k: float(s[k]) for k in
                         ("P_f1", "S_f1", "P_mae_s", "S_mae_s", "false_picks_per_hour")}})
            log.info("%s %s: P F1 %.3f S F1 %.3f", folder, name, s["P_f1"], s["S_f1"])
    out = args.out or "thresholds"
    meta = {"command": "benchmarks/pareto.py thresholds --folds %s%s" % (args.folds, " --out " + out if args.out else ""),
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = ["# Pick-threshold rules: chosen on the validation stations, scored on the test stations", "",
             "Each fold model's thresholds are chosen on its fold's validation stations by each rule, then its test "
             "stations are picked; scores pooled over the 5 folds (0.5 s matching; false picks on the pre-P noise "
             "windows).", "", "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| fold models | rule | P F1 | S F1 | P MAE s | S MAE s | false picks/h |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %.3f | %.3f | %.3f | %.3f | %.1f |" % (
            r["folds"], r["rule"], r["P_f1"], r["S_f1"], r["P_mae_s"], r["S_mae_s"], r["false_picks_per_hour"]))
    _publish(out, meta, rows, lines)


STALTA_BAND_HZ = (1.0, 20.0)  # classic trigger: causal 4-pole Butterworth band, then recursive STA/LTA
STALTA_S = (0.5, 5.0)         # STA and LTA lengths, s; the first LTA length of a window is warm-up
STALTA_LEVELS = (2.0, 3.0, 4.0)
SECOND_S = 0.5                # a pick is seconded by another model's pick of either phase within this
FLAT_S = 0.5                  # a run of identical samples this long is a gap filled in the data set (zero pads)


def flat_runs(waves, fs, min_s=FLAT_S):
    """Per window of ``waves`` (N, C, T): the (first, last) samples of runs of identical values >= ``min_s`` long
    on any component that is not all zeros: stretches where the data set padded a trace, not ground motion."""
    out = []
    for w in waves:
        runs = set()
        for x in w:
            if not np.any(x):
                continue
            same = np.concatenate([[False], np.diff(x) == 0, [False]])
            edges = np.flatnonzero(np.diff(same.astype(np.int8)))
            for a, b in zip(edges[::2], edges[1::2]):  # same[a+1 .. b] -> samples a .. b are equal
                if b - a >= min_s * fs:
                    runs.add((int(a), int(b)))
        out.append(sorted(runs))
    return out


def _band(x, fs):
    """One component, demeaned and in the classic trigger's band (ObsPy, causal 4-pole Butterworth); float64."""
    from obspy.signal.filter import bandpass

    x = x.astype(np.float64)
    return bandpass(x - x.mean(), STALTA_BAND_HZ[0], STALTA_BAND_HZ[1], fs, corners=4, zerophase=False)


def stalta_traces(waves, fs):
    """ObsPy's recursive STA/LTA of each component of ``waves`` (N, 3, T) after the classic band-pass; (N, 3, T).

    A component that is all zeros (the vertical-only traces) gets a zero trace.
    """
    from obspy.signal.trigger import recursive_sta_lta

    out = np.zeros(waves.shape, dtype=np.float64)
    for i in range(waves.shape[0]):
        for c in range(waves.shape[1]):
            if np.any(waves[i, c]):
                out[i, c] = recursive_sta_lta(_band(waves[i, c], fs), int(STALTA_S[0] * fs), int(STALTA_S[1] * fs))
    return out


def _plot_zne(ax, t, trace, fs, lo=0, hi=None):
    """Z, N, E of ``trace`` (3, T) in the trigger's band, samples ``lo:hi``, each scaled to its peak, at y 2, 1, 0."""
    for c in range(3):
        if np.any(trace[c]):
            seg = _band(trace[c], fs)[lo:hi]
            ax.plot(t, 0.45 * seg / np.abs(seg).max() + 2 - c, lw=0.5, color="k")


def stalta_near(cft, sample, fs, before_s=0.5, after_s=1.0):
    """The largest STA/LTA of any component from ``before_s`` before ``sample`` to ``after_s`` after; NaN in warm-up."""
    if sample < STALTA_S[1] * fs:
        return float("nan")
    lo, hi = int(sample - before_s * fs), int(sample + after_s * fs) + 1
    return float(cft[:, max(lo, 0):hi].max())


def seconded(picks, others, fs, tol_s=SECOND_S):
    """For each (phase, sample, p) of ``picks``, whether ``others`` hold a pick of either phase within ``tol_s``."""
    at = np.array([q[1] for q in others], dtype=np.float64)
    return [bool(at.size and np.min(np.abs(at - s)) <= tol_s * fs) for _, s, _ in picks]


def stage_falsepicks(args):
    """What the false picks on the NCEDC pre-P noise windows are (#9's target of at most 10 per hour).

    ``--folds NAME=DIR,NAME=DIR[,...]``: fold-model folders (``fold<i>/best.pt``
    of this script's folds); the first is the model under study, the second
    the independent model that may second its picks (e.g. the PhaseNet
    teacher: another architecture, trained apart).  Every noise window is
    picked by the fold model that never saw its station, with its tuned
    thresholds, exactly as the cross-validation counts false picks.  Each
    pick is then checked against evidence that owes nothing to the models
    under study's training: the other model's picks, and a classic
    recursive STA/LTA (ObsPy; 1-20 Hz, 0.5 s / 5 s) around it, with the same
    STA/LTA read at the labeled P of every event trace and at random instants
    of the noise windows for scale.  Writes ``benchmarks/results/<--out or
    falsepicks>.{json,md}`` and ``plots/<same>.png`` (the windows whose
    picks both checks support).
    """
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.crossval import station_folds
    from fieldpick.train.fit import load_real, predict, tune_thresholds

    named = []
    for item in args.folds.split(","):
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SystemExit("falsepicks: --folds entry %r; give NAME=DIR[,NAME=DIR...]" % item)
        named.append((name, folder))
    if len(named) < 2:
        raise SystemExit("falsepicks: --folds needs the model under study and at least one other (NAME=DIR,NAME=DIR)")
    cfg = TrainConfig()
    data = load_real()
    fs = float(data.events.fs)
    fold = station_folds(data.station, K, SEED)
    picks = {}  # name -> per noise window: [(phase, sample, probability)]
    missed = {}  # name -> {phase: set of traces whose labeled arrival it did not pick within the tolerance}
    valid_s = None
    for name, folder in named:
        per = [None] * len(fold)
        missed[name] = {"P": set(), "S": set()}
        for f in range(K):
            model, _, _ = _load(os.path.join(folder, "fold%d" % f, "best.pt"))
            _, val, test = _fold_split(data, f)
            tune_thresholds(model, val, cfg)  # the fold's own validation stations, as the cross-validation did
            events, epicks, npicks, seconds = predict(model, test, cfg)
            for i, w in zip(np.flatnonzero(fold == f), npicks):
                per[i] = w
            for i, w, p, s in zip(np.flatnonzero(fold == f), epicks, events.p_idx, events.s_idx):
                for ph, truth in (("P", p), ("S", s)):
                    if np.isfinite(truth) and not any(q == ph and abs(x - truth) <= cfg.tolerance_s * fs
                                                      for q, x, _ in w):
                        missed[name][ph].add(int(i))
            valid_s = seconds / len(npicks)
        picks[name] = per
        log.info("%s: %d picks on %d noise windows", name, sum(len(w) for w in per), len(per))
    noise_cft = stalta_traces(data.noise.waveforms, fs)
    event_cft = stalta_traces(data.events.waveforms, fs)
    at_p = np.array([stalta_near(c, p, fs) for c, p in zip(event_cft, data.events.p_idx)])
    at_s = np.array([stalta_near(c, s, fs) if np.isfinite(s) else np.nan for c, s in zip(event_cft, data.events.s_idx)])
    snr = np.asarray(data.events.meta["snr_db"], dtype=float)
    vertical = np.asarray(data.events.meta["n_components"]) == 1
    misses = {}
    for ph, at in (("P", at_p), ("S", at_s)):
        labeled = np.flatnonzero(np.isfinite(data.events.p_idx if ph == "P" else data.events.s_idx))
        every = sorted(set.intersection(*[missed[n][ph] for n, _ in named]))
        misses[ph] = {"labeled": len(labeled), "by_model": {n: len(missed[n][ph]) for n, _ in named},
                      "by_every_model": len(every), "traces": every,
                      "snr_db_median": [float(np.median(snr[every])) if every else float("nan"),
                                        float(np.median(snr[labeled]))],
                      "vertical_only": [int(vertical[every].sum()), int(vertical[labeled].sum())],
                      "stalta_median": [float(np.nanmedian(at[every])) if every else float("nan"),
                                        float(np.nanmedian(at[labeled]))]}
    rng = np.random.default_rng(SEED)
    lo = int(STALTA_S[1] * fs)
    hi = int(valid_s * fs) - int(1.0 * fs)
    at_random = np.array([stalta_near(noise_cft[i], rng.integers(lo, hi), fs)
                          for i in rng.integers(0, len(fold), 2000)])
    hours = len(fold) * valid_s / 3600.0
    flats = flat_runs(data.noise.waveforms, fs)
    main_name = named[0][0]
    rows = []
    for name in [n for n, _ in named]:
        rest = [n for n, _ in named if n != name]
        found = []
        for i, w in enumerate(picks[name]):
            sec = [any(v) for v in zip(*[seconded(w, picks[o][i], fs) for o in rest])] if w else []
            for (ph, s, p), second in zip(w, sec):
                found.append({"window": i, "phase": ph, "sample": int(s), "probability": float(p),
                              "seconded": bool(second), "stalta": stalta_near(noise_cft[i], s, fs),
                              "last_3s": bool(s >= (valid_s - 3.0) * fs),
                              "gap_edge": any(min(abs(s - a), abs(s - b)) <= fs for a, b in flats[i])})
        n = len(found)
        # windows that evidence independent of this model finds not empty: another model's pick with a classic
        # trigger (STA/LTA >= 3) there, or a padded gap in the data
        busy = {i for o in rest for i, w in enumerate(picks[o])
                for _, s, _ in w if stalta_near(noise_cft[i], s, fs) >= 3.0} | {i for i, r in enumerate(flats) if r}
        quiet = [i for i in range(len(fold)) if i not in busy]
        quiet_picks = sum(len(picks[name][i]) for i in quiet)
        gapfree = [i for i, r in enumerate(flats) if not r]
        lt = np.array([f["stalta"] for f in found]) if found else np.zeros(0)
        ok = np.isfinite(lt)
        sec = np.array([f["seconded"] for f in found], dtype=bool)
        per_window = np.bincount([f["window"] for f in found], minlength=len(fold))
        top = np.sort(per_window)[::-1]
        row = {"model": name, "seconders": rest, "picks": n, "per_hour": n / hours,
               "P": sum(f["phase"] == "P" for f in found), "S": sum(f["phase"] == "S" for f in found),
               "windows_with_picks": int((per_window > 0).sum()),
               "windows_holding_half": int(np.searchsorted(np.cumsum(top), n / 2.0) + 1) if n else 0,
               "seconded": int(sec.sum()), "in_last_3s": sum(f["last_3s"] for f in found),
               "stalta_warmup": int((~ok).sum()),
               "stalta_at_least": {str(v): int((lt[ok] >= v).sum()) for v in STALTA_LEVELS},
               "seconded_and_stalta_3": int((sec & ok & (lt >= 3.0)).sum()),
               "at_gap_edge": sum(f["gap_edge"] for f in found),
               "quiet_windows": len(quiet), "quiet_picks": quiet_picks, "gapfree_windows": len(gapfree),
               "gapfree_per_hour": sum(len(picks[name][i]) for i in gapfree) / (len(gapfree) * valid_s / 3600.0),
               "quiet_per_hour": quiet_picks / (len(quiet) * valid_s / 3600.0) if quiet else float("nan"),
               "picks_list": found}
        row["unsupported_per_hour"] = (n - row["seconded_and_stalta_3"]) / hours
        rows.append(row)
        log.info("%s: %.1f picks/h, %d seconded, %d with STA/LTA >= 3, both %d, %d at gap edges; %.1f/h on %d quiet "
                 "windows", name, row["per_hour"], row["seconded"], row["stalta_at_least"]["3.0"],
                 row["seconded_and_stalta_3"], row["at_gap_edge"], row["quiet_per_hour"], len(quiet))
    scale = {"labeled_P": {str(v): float(np.mean(at_p >= v)) for v in STALTA_LEVELS},
             "random_noise_instant": {str(v): float(np.mean(at_random >= v)) for v in STALTA_LEVELS},
             "median_labeled_P": float(np.median(at_p)), "median_random": float(np.median(at_random))}
    out = args.out or "falsepicks"
    plot = os.path.join(RESULTS, "plots", out + ".png")
    shown = _plot_noise_windows(data, noise_cft, picks, rows[0], fs, plot)
    _plot_misses(data, misses["P"]["traces"], fs, os.path.join(RESULTS, "plots", out + "_missed_p.png"))
    meta = {"command": "benchmarks/pareto.py falsepicks --folds %s%s" % (args.folds, " --out " + out if args.out else ""),
            "noise_windows": len(fold), "noise_hours": hours, "misses": misses, "stalta": {"band_hz": STALTA_BAND_HZ,
            "sta_lta_s": STALTA_S}, "second_within_s": SECOND_S, "scale": scale, "plotted_windows": shown,
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = [
        "# False picks on the NCEDC pre-P noise windows: what they are", "",
        "%d noise windows (%.2f h: the 29 s before each P, ending 1 s before it, picked up to %.1f s), each picked by "
        "the fold model that never saw its station, with thresholds tuned on its fold's validation stations, as the cross-validation counts "
        "false picks. Each pick is checked against two things its model did not learn from: a pick of either "
        "phase by the other model(s) within %.1f s (seconded), and a classic recursive STA/LTA (ObsPy; causal "
        "%g-%g Hz, %g s / %g s; the largest on any component from 0.5 s before to 1 s after the pick; the first "
        "%g s of a window is warm-up)." % (len(fold), hours, valid_s, SECOND_S, STALTA_BAND_HZ[0], STALTA_BAND_HZ[1],
                                           STALTA_S[0], STALTA_S[1], STALTA_S[1]), "",
        "`%s` (%s)" % (meta["command"], meta["when"]), "",
        "For scale, the same STA/LTA at the labeled P of the %d event traces (median %.1f) and at 2000 random "
        "instants of the noise windows (median %.1f):" % (len(at_p), scale["median_labeled_P"],
                                                         scale["median_random"]), "",
        "| STA/LTA at least | labeled P | random noise instant |", "|---|---|---|"]
    for v in STALTA_LEVELS:
        lines.append("| %g | %.0f %% | %.1f %% |" % (v, 100 * scale["labeled_P"][str(v)],
                                                     100 * scale["random_noise_instant"][str(v)]))
    lines += ["", "| model | seconded by | picks (P / S) | per hour | windows with picks | windows holding half "
              "| seconded | STA/LTA >= 2 / 3 / 4 | in warm-up | seconded and STA/LTA >= 3 | within 1 s of a padded gap "
              "| per hour, windows without padded gaps | per hour, quiet windows |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["stalta_at_least"]
        lines.append("| %s | %s | %d (%d / %d) | %.1f | %d | %d | %d | %d / %d / %d | %d | %d | %d | %.1f (%d windows) "
                     "| %.1f (%d windows) |" % (
                         r["model"], ", ".join(r["seconders"]), r["picks"], r["P"], r["S"], r["per_hour"],
                         r["windows_with_picks"], r["windows_holding_half"], r["seconded"], a["2.0"], a["3.0"],
                         a["4.0"], r["stalta_warmup"], r["seconded_and_stalta_3"], r["at_gap_edge"],
                         r["gapfree_per_hour"], r["gapfree_windows"], r["quiet_per_hour"], r["quiet_windows"]))
    lines += ["", "%d of the %d noise windows hold a padded gap: a run of identical samples of %g s or more, every one "
              "at the start of its trace (zeros, or the first value held: the recording began after the 90 s cut). The station never runs a window that holds a gap "
              "(edge/station.py), so it would make none of the picks on these windows. Quiet windows: no padded gap, "
              "and no pick of the other model(s) that the classic trigger supports (STA/LTA >= 3) - windows that "
              "evidence independent of the model in the row finds empty." % (
                  sum(1 for r in flats if r), len(fold), FLAT_S)]
    lines += ["", "## Arrivals that every model misses", "",
              "The event windows (the published 30 s crops), picked by the same fold models: arrivals no pick of "
              "their phase comes within %.1f s of. The signal-to-noise ratio is the data set's estimate on Z "
              "(`snr_db`); the STA/LTA is the classic trigger's largest value near the arrival." % cfg.tolerance_s, "",
              "| phase | labeled | missed, per model | missed by every model | their median SNR (all) "
              "| vertical-only among them (all) | their median STA/LTA (all) |", "|---|---|---|---|---|---|---|"]
    for ph, m in misses.items():
        lines.append("| %s | %d | %s | %d | %.1f dB (%.1f dB) | %d (%d) | %.1f (%.1f) |" % (
            ph, m["labeled"], ", ".join("%s %d" % kv for kv in m["by_model"].items()), m["by_every_model"],
            m["snr_db_median"][0], m["snr_db_median"][1], m["vertical_only"][0], m["vertical_only"][1],
            m["stalta_median"][0], m["stalta_median"][1]))
    lines += ["", "The P arrivals every model misses, 5 s either side of the label: "
              "`benchmarks/results/plots/%s_missed_p.png`." % out]
    lines += ["", "Plot: `benchmarks/results/plots/%s.png`, the %d windows where %s has the most picks that both checks "
              "support (traces: Z, N, E after the STA/LTA band; below: the STA/LTA)." % (out, len(shown), main_name)]
    _publish(out, meta, rows, lines)


def _plot_misses(data, traces, fs, path, half_s=5.0):
    """Plot each trace of ``traces`` (90 s event traces) ``half_s`` either side of its labeled P, in the STA/LTA band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not traces:
        return
    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 1.5 * len(traces)), squeeze=False)
    for ax, i in zip(axes[:, 0], traces):
        p = int(round(data.events.p_idx[i]))
        lo, hi = p - int(half_s * fs), p + int(half_s * fs)
        t = (np.arange(lo, hi) - p) / fs
        _plot_zne(ax, t, data.events.waveforms[i], fs, lo, hi)
        ax.axvline(0.0, color="C3", lw=1)
        ax.set_yticks([2, 1, 0])
        ax.set_yticklabels(["Z", "N", "E"])
        ax.set_xlim(-half_s, half_s)
        ax.set_title("trace %d (%s, SNR %.1f dB): labeled P at 0, missed by every model" % (
            i, data.station[i], float(data.events.meta["snr_db"][i])), fontsize=8)
    axes[-1, 0].set_xlabel("s from the labeled P")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_noise_windows(data, cft, picks, row, fs, path, n=6):
    """Plot the ``n`` noise windows with the most doubly supported picks of ``row``'s model; returns their indices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = [f["window"] for f in row["picks_list"]
            if f["seconded"] and np.isfinite(f["stalta"]) and f["stalta"] >= 3.0]
    if not both:
        return []
    windows = [int(w) for w in np.argsort(-np.bincount(both), kind="stable")[:n] if np.bincount(both)[w] > 0]
    fig, axes = plt.subplots(len(windows), 1, figsize=(12, 2.1 * len(windows)), squeeze=False)
    t = np.arange(data.noise.waveforms.shape[-1]) / fs
    colours = {"P": "C3", "S": "C0"}
    for ax, i in zip(axes[:, 0], windows):
        _plot_zne(ax, t, data.noise.waveforms[i], fs)
        ax.plot(t, -1.2 + 0.25 * cft[i].max(axis=0), lw=0.7, color="C2")
        for k, per in enumerate(picks.values()):
            for ph, s, _ in per[i]:
                ax.axvline(s / fs, color=colours[ph], ls="-" if k == 0 else "--", lw=1.2 if k == 0 else 0.9)
        ax.set_yticks([2, 1, 0, -1.2])
        ax.set_yticklabels(["Z", "N", "E", "STA/LTA"])
        ax.set_xlim(0, t[-1])
        ax.set_title("noise window %d (%s): picks of %s (solid) and %s (dashed); red P, blue S" % (
            i, data.station[i], row["model"],
            ", ".join(row["seconders"])), fontsize=8)
    axes[-1, 0].set_xlabel("s from the window start (the labeled P is 1 s after the end)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return windows


def _station_traces():
    """(station benchmark module, its NCEDC configs we compare, the real data, station folds, traces float64)."""
    import importlib.util

    from fieldpick.train.crossval import station_folds
    from fieldpick.train.fit import load_real

    spec = importlib.util.spec_from_file_location("bench_station", os.path.join(HERE, "station.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    configs = [(n, c) for n, c in bench.NCEDC_CONFIGS if n == "continuous" or n.endswith("(the default)")]
    data = load_real()
    return bench, configs, data, station_folds(data.station, K, SEED), data.events.waveforms.astype(np.float64)


def _fold_files(work, name):
    """[(fold, card with the fold's tuned thresholds, folder of its .tflite files)] of an int8 stage candidate."""
    with open(os.path.join(work, "int8_%s.json" % name)) as f:
        info = json.load(f)
    out = []
    for k in range(K):
        _, card, _ = _load(os.path.join(info["source"], "fold%d" % k, "best.pt"))
        card.thresholds = dict(info["folds"][k]["thresholds"])
        out.append((k, card, os.path.join(work, "int8", name, "fold%d" % k)))
    return out


def stage_station(args):
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

    bench, configs, data, fold, traces = _station_traces()
    rows = []
    for spec_ in args.candidate or []:
        name = spec_.partition("=")[0]
        found = {n: {"P": 0, "S": 0, "picks": 0, "windows_run": 0} for n, _ in configs}
        errors = {n: {"P": [], "S": []} for n, _ in configs}
        for f, card, folder in _fold_files(args.work, name):
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
    _publish(out, meta, rows, lines)


def stage_stationparity(args):
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
    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import InterpreterRunner, Station
    from fieldpick.export.parity import PICK_TOLERANCE_SAMPLES, _match

    bench, configs, data, fold, traces = _station_traces()
    fs = data.events.fs

    def pairs_for(name):
        """{fold: (card, fp32 path, int8 path)} of one model; fold None: one pair for every trace."""
        if name.startswith("export:"):
            d = name[len("export:"):]
            card = ModelCard.load(os.path.join(d, "model_int8.json"))
            return {None: (card, os.path.join(d, "model_fp32.tflite"), os.path.join(d, "model_int8.tflite"))}
        return {k: (card, os.path.join(d, "model_fp32.tflite"), os.path.join(d, "model_int8.tflite"))
                for k, card, d in _fold_files(args.work, name)}

    names = list(args.candidate or []) + ["export:" + d for d in (args.export_dir or [])]
    if not names:
        raise SystemExit("stationparity: give --candidate NAME and/or --export-dir DIR")
    rows = []
    for name in names:
        pairs = pairs_for(name.partition("=")[0])
        count = {n: {"matched": 0, "matched_0.1s": 0, "picks": 0, "fp32": 0, "int8": 0, "traces_differing": 0}
                 for n, _ in configs}
        for key, (card, fp32_path, int8_path) in pairs.items():
            runners = {kind: InterpreterRunner(path, card, "numpy")
                       for kind, path in (("fp32", fp32_path), ("int8", int8_path))}
            for i in (range(len(traces)) if key is None else np.flatnonzero(fold == key)):
                for cname, cfg in configs:
                    got = {kind: Station(r, StationConfig.from_dict(cfg)).feed_array(traces[i], bench.T0, fs)
                           for kind, r in runners.items()}
                    c, before = count[cname], count[cname]["matched"]
                    n_here = 0
                    for ph in ("P", "S"):
                        a, b = ([(p.time_ns - bench.T0) * fs / 1e9 for p in got[k] if p.phase == ph]
                                for k in ("fp32", "int8"))
                        c["matched"] += _match(a, b, PICK_TOLERANCE_SAMPLES)
                        c["matched_0.1s"] += _match(a, b, 0.1 * fs)
                        c["picks"] += max(len(a), len(b))
                        c["fp32"] += len(a)
                        c["int8"] += len(b)
                        n_here += max(len(a), len(b))
                    c["traces_differing"] += (c["matched"] - before) < n_here
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
    _publish(out, meta, rows, lines)


def _flops(int8_stage):
    """FLOPs per 30 s of the model behind an int8-stage file (its first fold's checkpoint)."""
    from fieldpick.train.checkpoint import load_checkpoint
    from fieldpick.train.crossval import flops_per_record

    path = os.path.join(int8_stage["source"], "fold%d" % int8_stage["folds_used"][0], "best.pt")
    model, _, _ = load_checkpoint(path)
    return flops_per_record(model)


def stage_table(args):
    work = args.work
    rows = []
    teacher = json.load(open(os.path.join(work, "teacher.json")))
    int8 = {}
    for fn in os.listdir(work):
        if fn.startswith("int8_") and fn.endswith(".json"):
            d = json.load(open(os.path.join(work, fn)))
            int8[d["name"] + ("+" + d["int8_variant"] if d.get("int8_variant") else "")] = d
    rows.append(_row("phasenet-teacher", "teacher", teacher["parameters"], teacher["flops_per_30s"],
                     teacher["pooled"], "PhaseNet (U-Net) fold models in %s" % teacher.get("source", "the zoo"),
                     int8.get("phasenet-teacher")))
    for path in args.distill or []:
        d = json.load(open(path))
        tc, kd = d["train_config"], d.get("distill_config")
        budget = "%d epochs x %d steps x %d windows" % (tc["epochs"], tc["steps_per_epoch"], tc["batch_size"])
        width = tc["model"].get("width")
        knobs = "T=%g, soft weight %g, feature weight %g (%d channels of %s), %d unlabeled windows per batch" % (
            kd["temperature"], kd["soft_weight"], kd["feature_weight"], kd["feature_channels"],
            kd["teacher_layer"], kd["unlabeled_per_batch"]) if kd else ""
        for v in ("scratch", "distilled"):
            if v in d:
                name = tc["name"] if v == "distilled" else "lppn-w%s-scratch-%dep" % (width, tc["epochs"])
                if any(r["name"] == name for r in rows):
                    continue  # the same scratch run again (the trainer is deterministic per seed)
                what = "distilled from the fold's teacher; " + knobs if v == "distilled" else "from scratch"
                rows.append(_row(name, v, d[v]["parameters"], d[v]["flops_per_30s"], d[v]["pooled"],
                                 "LPPN width %s, %s; %s" % (width, what, budget), int8.get(name)))
    for item in args.candidate or []:
        # a candidate scored by the int8 stage alone (e.g. fold models of `folds`): its row is the
        # PyTorch column of that stage, its FLOPs counted on its first fold model
        name, _, note = item.partition("=")
        if name not in int8:
            raise SystemExit("table --candidate %s: no int8_%s.json in %s (run the int8 stage first)"
                             % (name, name, work))
        d = int8[name]
        rows.append(_row(name, "candidate", d["parameters"], _flops(d), d["pooled"]["torch"],
                         note or "fold models in %s" % d["source"], d))
    for path in args.prune or []:
        p = json.load(open(path))
        kd = "-kd" if p.get("teacher") else ""
        for r in p["rows"]:
            if kd and not r["ratio"]:
                continue  # the unpruned row is in the plain sweep
            name = "lppn-w16-pruned%02d%s" % (round(100 * r["ratio"]), kd) if r["ratio"] else "lppn-w16-default"
            note = ("default LPPN w16 fold models (fieldpick train --crossval 5: synthetic pre-training, then "
                    "up to 60 epochs)" if not r["ratio"] else
                    "w16 with %d %% of channels removed, fine-tuned %d epochs%s" % (
                        round(100 * r["ratio"]), r["finetune_epochs"],
                        " by distillation from the fold's teacher" if kd else ""))
            rows.append(_row(name, "pruned" if r["ratio"] else "baseline", r["parameters"], r["flops_per_30s"],
                             r["pooled"], note, int8.get(name)))
    for r in rows:
        r["params_vs_teacher"] = r["parameters"] / rows[0]["parameters"]
        r["flops_vs_teacher"] = r["flops_per_30s"] / rows[0]["flops_per_30s"]
        r["dP_f1_vs_teacher"] = r["P_f1"] - rows[0]["P_f1"]
        r["dS_f1_vs_teacher"] = r["S_f1"] - rows[0]["S_f1"]
    pts = [(r["flops_per_30s"], -min(r["P_f1"], r["S_f1"])) for r in rows]
    for r, (fl, neg) in zip(rows, pts):
        r["pareto"] = not any(f2 <= fl and n2 <= neg and (f2, n2) != (fl, neg) for f2, n2 in pts)
    meta = {"folds": K, "seed": SEED, "python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "load_average": os.getloadavg(), "created_utc": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": "benchmarks/pareto.py " + " ".join(sys.argv[1:])}
    os.makedirs(os.path.join(RESULTS, "plots"), exist_ok=True)
    variants = [{"name": d["name"], "variant": d.get("int8_variant") or "plain", "clip_percentile": d.get("clip_percentile"),
                 "qat_epochs": d.get("qat_epochs", 0), "equalise": d.get("equalise"),
                 "folds": d["folds_used"], "int8_bytes": d["int8_bytes"], "fp32_bytes": d["fp32_bytes"],
                 **{"%s_%s_f1" % (kind, ph): d["pooled"][kind][ph + "_f1"] for kind in ("torch", "fp32", "int8")
                    for ph in ("P", "S")}} for _, d in sorted(int8.items())]
    stem = args.out or "pareto"
    _write(os.path.join(RESULTS, stem + ".json"), {"meta": meta, "rows": rows, "int8": variants})
    md = _markdown(rows, meta, variants)
    with open(os.path.join(RESULTS, stem + ".md"), "w") as f:
        f.write(md)
    _plot(rows, os.path.join(RESULTS, "plots", stem + ".png"))
    sys.stdout.write(md)


def _f(v, fmt="%.3f"):
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt % v


def _markdown(rows, meta, variants=()):
    out = ["# Compression: Pareto table", "",
           "P/S F1 pooled over %d station folds of the 154 NCEDC windows (+154 pre-P noise windows): each "
           "window picked by the fold model that never saw its station; picks match within 0.5 s; "
           "residual = pick - label. int8 = full-int8 TFLite (onnx2tf, calibrated on the fold's training "
           "stations + synthetic windows at many SNRs), run by ai-edge-litert; its F1 is pooled over the "
           "folds listed. Peer: the PhaseNet teacher of the same folds (ratios and deltas against it)." % meta["folds"],
           "",
           "| candidate | params | x teacher | MFLOPs/30 s | x teacher | int8 bytes | P F1 | S F1 | dP | dS "
           "| P res mean/std s | S res mean/std s | false/h | int8 P F1 | int8 S F1 | int8 - fp32 (P, S) | Pareto |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d8 = "-"
        if "int8_P_f1" in r:
            d8 = "%+.3f, %+.3f (folds %s)" % (r["int8_P_f1"] - r["fp32tfl_P_f1"], r["int8_S_f1"] - r["fp32tfl_S_f1"],
                                             ",".join(map(str, r["int8_folds"])))
        out.append("| %s | %d | %.3f | %.2f | %.3f | %s | %s | %s | %+.3f | %+.3f | %s/%s | %s/%s | %s | %s | %s | %s | %s |" % (
            r["name"], r["parameters"], r["params_vs_teacher"], r["flops_per_30s"] / 1e6, r["flops_vs_teacher"],
            _f(r["int8_bytes"], "%d"), _f(r["P_f1"]), _f(r["S_f1"]), r["dP_f1_vs_teacher"], r["dS_f1_vs_teacher"],
            _f(r["P_mean_s"], "%+.3f"), _f(r["P_std_s"]), _f(r["S_mean_s"], "%+.3f"), _f(r["S_std_s"]),
            _f(r["false_picks_per_hour"], "%.1f"), _f(r.get("int8_P_f1")), _f(r.get("int8_S_f1")), d8,
            "yes" if r["pareto"] else ""))
    out += ["", "Candidates:", ""] + ["- %s: %s" % (r["name"], r["note"]) for r in rows]
    out += ["", "## int8 against float32 (same thresholds, same held-out stations)", "",
            "| candidate | calibration | folds | fp32 .tflite bytes | int8 .tflite bytes | P F1 torch / fp32 / int8 "
            "| S F1 torch / fp32 / int8 | int8 - fp32 P | int8 - fp32 S | within 0.01 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        dp, ds = v["int8_P_f1"] - v["fp32_P_f1"], v["int8_S_f1"] - v["fp32_S_f1"]
        cal = "training stations + synthetic" + (", clipped at the %g-th percentile of |x|" % v["clip_percentile"]
                                                  if v["clip_percentile"] else "")
        if v.get("equalise"):
            cal += "; activations equalised (power %g)" % v["equalise"]
        if v.get("qat_epochs"):
            cal += "; after %d epochs of quantisation-aware fine-tuning (torch/fp32 columns: the fine-tuned model)" % (
                v["qat_epochs"])
        out.append("| %s | %s | %s | %d | %d | %.3f / %.3f / %.3f | %.3f / %.3f / %.3f | %+.3f | %+.3f | %s |" % (
            v["name"], cal, ",".join(map(str, v["folds"])), v["fp32_bytes"], v["int8_bytes"], v["torch_P_f1"],
            v["fp32_P_f1"], v["int8_P_f1"], v["torch_S_f1"], v["fp32_S_f1"], v["int8_S_f1"], dp, ds,
            "yes" if abs(dp) <= 0.01 and abs(ds) <= 0.01 else "no"))
    out += ["", "benchmarks/pareto.py; Python %s, numpy %s, %s; load average %s; %s." % (
        meta["python"], meta["numpy"], meta["machine"], ", ".join("%.1f" % v for v in meta["load_average"]),
        meta["created_utc"]), ""]
    return "\n".join(out)


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    for ax, phase in zip(axes, ("P", "S")):
        for k, r in enumerate(rows):
            x = r["flops_per_30s"] / 1e6 * (1 + 0.012 * (k % 5 - 2))  # spread equal-cost rows a little
            ax.scatter(x, r[phase + "_f1"], s=20 + 300 * (r["parameters"] / rows[0]["parameters"]) ** 0.5,
                       marker="o" if r["pareto"] else "s", color="C%d" % (k % 10),
                       label=r["name"] + (" (Pareto)" if r["pareto"] else "") if phase == "P" else None)
            if "int8_" + phase + "_f1" in r:
                ax.scatter(x, r["int8_" + phase + "_f1"], marker="x", color="C%d" % (k % 10))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([1, 3, 10, 30])
        ax.set_xticklabels(["1", "3", "10", "30"])
        ax.axvline(3.0, color="grey", ls=":", lw=1)
        ax.set_xlabel("MFLOPs per 30 s window (log; area ~ sqrt(parameters))")
        ax.set_ylabel("%s F1 (5-fold, by station)" % phase)
        ax.set_title("%s picks (x: full int8 TFLite, same colour)" % phase)
        ax.grid(alpha=0.3)
    fig.legend(loc="center right", fontsize=7, markerscale=0.5)
    fig.subplots_adjust(right=0.78)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("teacher", "folds", "int8", "ab", "noise", "thresholds", "falsepicks", "station",
                                      "stationparity", "table"))
    ap.add_argument("--work", default=WORK, help="where stage JSON files go (default runs/compress)")
    ap.add_argument("--folds", help="teacher/int8: folder of fold<i>/ checkpoints (folds: where to write them; "
                    "thresholds: one or more such folders, comma-separated; falsepicks: NAME=DIR,NAME=DIR...)")
    ap.add_argument("--config", help="folds: recipe file (e.g. configs/default.toml)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="folds: override a recipe field")
    ap.add_argument("--model", action="append", metavar="KEY=VALUE", help="folds: override a model config field")
    ap.add_argument("--checkpoint", default="best.pt",
                    help="int8: file name inside each fold folder; noise: the checkpoint file")
    ap.add_argument("--out", help="ab/noise/thresholds/table: results file stem under benchmarks/results")
    ap.add_argument("--init-seed", type=int, help="folds: seed of the weights and training windows (the folds and "
                    "validation stations stay seed 0's); measures how much a recipe's scores move between runs")
    ap.add_argument("--title", help="ab: the table's title")
    ap.add_argument("--name", help="int8: candidate name (as in the table)")
    ap.add_argument("--fold-list", default="0,1,2,3,4", help="folds/int8: folds to train / convert and score")
    ap.add_argument("--clip", type=float, help="int8: clip calibration windows at this percentile of |x|")
    ap.add_argument("--equalise", type=float, default=None, metavar="POWER",
                    help="int8: the export's activation equalisation power (fieldpick export --equalise). Off "
                    "unless given, as in the table's rows before the sixth session; fieldpick export equalises "
                    "by default (power 1), so give --equalise 1 to score what it ships")
    ap.add_argument("--qat-epochs", type=int, default=0,
                    help="int8: quantisation-aware fine-tuning epochs before conversion (0: none)")
    ap.add_argument("--variant", default="", help="int8: label of this calibration variant (file name suffix)")
    ap.add_argument("--distill", action="append", help="table: distill_cv.json of fieldpick distill --crossval "
                    "(repeatable)")
    ap.add_argument("--candidate", action="append", metavar="NAME[=NOTE]",
                    help="table: a row from the int8 stage's int8_NAME.json in --work (its PyTorch scores); station: "
                    "a candidate whose int8 fold models run the station pipeline")
    ap.add_argument("--export-dir", action="append", metavar="DIR",
                    help="stationparity: a fieldpick export folder (its fp32 and int8 files; repeatable)")
    ap.add_argument("--prune", action="append", help="table: prune_cv.json of fieldpick prune --crossval "
                    "(repeatable)")
    args = ap.parse_args(argv)
    _setup()
    if args.stage in ("teacher", "folds", "int8", "thresholds", "falsepicks") and not args.folds:
        ap.error("%s needs --folds DIR" % args.stage)
    if args.stage == "int8" and not args.name:
        ap.error("int8 needs --name")
    {"teacher": stage_teacher, "folds": stage_folds, "int8": stage_int8, "ab": stage_ab, "noise": stage_noise,
     "thresholds": stage_thresholds, "falsepicks": stage_falsepicks, "station": stage_station,
     "stationparity": stage_stationparity, "table": stage_table}[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
