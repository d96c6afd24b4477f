"""Export every zoo model (or given checkpoints) and tabulate what comes out.

For each architecture in ``fieldpick.train.models.REGISTRY`` this builds the
model with its default config (seeded, untrained unless a checkpoint is
given), writes a checkpoint, runs the full export (ONNX, TFLite float32,
full int8, cards, parity gates) and records: parity figures, file sizes,
FLOPs, the TFLite operator histograms and red-flag ops, whether full int8
was reached (or why not), and latency per window on this machine (1 thread,
median of repeats) with ratios against PyTorch eager measured in the same run.

    .venv/bin/python benchmarks/export.py [--arch lppn ...] [--checkpoint lppn=PATH ...]

Writes benchmarks/results/NAME.json and NAME.md (NAME: --name, default
export); model files go to benchmarks/results/tmp/NAME/<arch>/ (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def _median_ms(fn, repeats):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def _latency(model, out_dir, stem, card, repeats):
    import onnxruntime as ort
    import torch
    from ai_edge_litert.interpreter import Interpreter

    c, t = len(card.input.channels), card.input.window_samples
    x = np.random.default_rng(0).standard_normal((1, c, t)).astype(np.float32)
    xt = torch.from_numpy(x)
    out = {}
    with torch.no_grad():
        out["torch"] = _median_ms(lambda: model(xt), repeats)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(out_dir, stem + ".onnx"), opts, providers=["CPUExecutionProvider"])
    out["onnxruntime"] = _median_ms(lambda: sess.run(None, {"x": x}), repeats)
    for kind in ("fp32", "int8"):
        it = Interpreter(model_path=os.path.join(out_dir, "%s_%s.tflite" % (stem, kind)), num_threads=1)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
        out["litert_" + kind] = _median_ms(it.invoke, repeats)
    return out


def main(argv=None):
    import torch

    torch.set_num_threads(1)
    from fieldpick.edge.errors import FieldpickError
    from fieldpick.edge.log import setup_logging
    from fieldpick.export.cli import _ncedc_root
    from fieldpick.export.pipeline import ExportSettings, export_checkpoint
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint
    from fieldpick.train.models import REGISTRY, build

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--arch", action="append", help="architecture(s) to export (default: the whole zoo)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="ARCH=PATH",
                   help="export this trained checkpoint instead of an untrained model")
    p.add_argument("--windows", type=int, default=200, help="synthetic calibration and parity windows")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats per runtime")
    p.add_argument("--no-ncedc", action="store_true")
    p.add_argument("--name", default="export", help="results file stem (default: export)")
    args = p.parse_args(argv)
    setup_logging(1)
    given = dict(item.split("=", 1) for item in args.checkpoint)
    archs = args.arch or list(REGISTRY)
    ncedc = None if args.no_ncedc else _ncedc_root(argparse.Namespace(no_ncedc=False, ncedc=None))
    rows = []
    for arch in archs:
        out_dir = os.path.join(RESULTS, "tmp", args.name, arch)  # ignored by git
        os.makedirs(out_dir, exist_ok=True)
        row = {"architecture": arch, "checkpoint": given.get(arch, "untrained (seed 0, default config)")}
        t0 = time.time()
        try:
            if arch in given:
                ckpt = given[arch]
            else:
                torch.manual_seed(0)
                model = build(arch, {})
                ckpt = os.path.join(tempfile.mkdtemp(prefix="fp-export-"), arch + ".pt")
                save_checkpoint(ckpt, model)
            settings = ExportSettings(calibration_windows=args.windows, parity_windows=args.windows,
                                      ncedc_root=ncedc, stem="model")
            command = "fieldpick export %s --out %s --calibration-windows %d --parity-windows %d%s" % (
                ckpt, out_dir, args.windows, args.windows, " --no-ncedc" if ncedc is None else "")
            report = export_checkpoint(ckpt, out_dir, settings, command=command)
            row["status"] = "full int8"
            model, card, _ = load_checkpoint(ckpt)
            row["latency_ms"] = _latency(model, out_dir, "model", card, args.repeats)
        except ImportError as exc:
            row["status"] = "not built: %s" % exc
            report = None
        except FieldpickError as exc:
            row["status"] = "FAILED: %s: %s" % (type(exc).__name__, exc)
            path = os.path.join(out_dir, "export_report.json")
            report = json.load(open(path)) if os.path.exists(path) else None
        except Exception as exc:  # a bug: record it and go on with the zoo
            row["status"] = "CRASHED: %s" % "".join(traceback.format_exception_only(type(exc), exc)).strip()
            report = None
        row["seconds"] = round(time.time() - t0, 1)
        row["report"] = report
        rows.append(row)
        print("%-10s %s (%.0f s)" % (arch, row["status"].splitlines()[0], row["seconds"]))
    _write(rows, args.name, args, ncedc)
    return 0


def _fmt(v, spec):
    return (spec % v) if isinstance(v, (int, float)) else "-"


def _write(rows, name, args=None, ncedc=None):
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        json.dump({"host": os.uname().nodename, "rows": rows}, f, indent=2, default=float)
    lines = [
        "# Export of the zoo",
        "",
        "Command: `.venv/bin/python benchmarks/export.py %s`" % " ".join(sys.argv[1:]),
        "",
        "Checkpoints: %s." % "; ".join("%s: %s" % (r["architecture"], r["checkpoint"]) for r in rows),
        "",
        "Budget: %s synthetic calibration and parity windows, %s timed repeats per runtime; NCEDC windows in the "
        "parity gates: %s." % (getattr(args, "windows", "?"), getattr(args, "repeats", "?"),
                               ncedc or "no (not found, or --no-ncedc)"),
        "",
        "| model | status | params | FLOPs/window | onnx B | fp32 B | int8 B | ONNX max diff | fp32 max diff "
        "| int8 vs fp32 max diff | argmax agree | pick agree | F1 fp32 -> int8 | TFLite int8 ops | red flags |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rep = r["report"] or {}
        g = rep.get("gates", {})
        sz = rep.get("sizes_bytes", {})
        flags = dict(rep.get("red_flags_fp32", {}), **rep.get("red_flags_int8", {}))
        pick = _fmt(g.get("pick_agreement"), "%.4f") if "pick_agreement" in g else g.get("pick_parity", "-")[:40]
        f1 = ("%.3f -> %.3f" % (g["f1_all_fp32"], g["f1_all_int8"])) if "f1_all_fp32" in g else "-"
        if "picks_fp32" in g:
            pick += " (%d/%d picks)" % (g["picks_fp32"], g["picks_int8"])
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["architecture"], r["status"].splitlines()[0][:160].replace("|", "/"), _fmt(rep.get("parameters"), "%d"),
            _fmt(rep.get("flops_per_window"), "%d"), _fmt(sz.get("onnx"), "%d"), _fmt(sz.get("fp32"), "%d"),
            _fmt(sz.get("int8"), "%d"), _fmt(g.get("onnx_max_abs_diff"), "%.1e"),
            _fmt(g.get("fp32_max_abs_diff"), "%.1e"), _fmt(g.get("max_abs_diff_vs_fp32"), "%.3f"),
            _fmt(g.get("argmax_agreement_vs_fp32"), "%.4f"), pick, f1,
            json.dumps(rep.get("ops_int8", {})).replace("|", "/"), json.dumps(flags) if flags else "none"))
    lines += ["", "Latency per window, 1 thread, median (ms), and ratio to PyTorch eager in the same run:", "",
              "| model | torch | onnxruntime | litert fp32 | litert int8 |", "|---|---|---|---|---|"]
    for r in rows:
        lat = r.get("latency_ms")
        if not lat:
            continue
        cells = ["%.2f (%.2fx)" % (lat[k], lat["torch"] / lat[k]) for k in ("onnxruntime", "litert_fp32", "litert_int8")]
        lines.append("| %s | %.2f | %s |" % (r["architecture"], lat["torch"], " | ".join(cells)))
    with open(os.path.join(RESULTS, name + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
