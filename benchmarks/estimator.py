"""How far off is the cost estimator?  Predictions against measurements on this machine.

1. ``fieldpick bench``'s measurement of this machine (int8 conv rate and per-op
   cost fitted on 8 single layers, copy bandwidth) makes the host profile.
2. Held-out model-shaped stacks of int8 convolutions (shapes the fit never
   saw) are timed end to end and predicted layer by layer: the ratio
   predicted / measured is the estimator's error.
3. Where the numpy interpreter and exported models exist, each model is timed
   on the interpreter and predicted from its card (whole-model FLOPs and
   bytes): same ratio.
4. The estimator's table for every board profile: latency per window, memory,
   CPU duty cycle and energy per day, continuous and gated.

    .venv/bin/python benchmarks/estimator.py [--quick]

Writes benchmarks/results/estimator.json and estimator.md.  One thread.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from fieldpick.boards import bench  # noqa: E402
from fieldpick.boards.estimate import (  # noqa: E402
    LayerWork,
    Operation,
    Workload,
    estimate,
    host_profile,
    list_profiles,
    load_profile,
    table,
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

#: held-out stacks: name -> (T, [(cin, cout, K, stride), ...]); none of these layers is in the calibration set
STACKS = {
    "tiny (4 s window)": (400, [(3, 4, 5, 1), (4, 4, 5, 1), (4, 3, 1, 1)]),
    "lppn-like (30 s, strided)": (3000, [(3, 8, 7, 1), (8, 16, 5, 2), (16, 16, 5, 2), (16, 32, 3, 2),
                                         (32, 32, 3, 2), (32, 16, 3, 1), (16, 4, 1, 1)]),
    "encoder-like (30 s)": (3001, [(3, 8, 7, 1), (8, 8, 7, 1), (8, 11, 7, 4), (11, 16, 7, 4),
                                   (16, 22, 7, 4), (22, 32, 7, 4)]),
    "wide (10 s)": (1000, [(3, 32, 5, 1), (32, 64, 5, 1), (64, 64, 3, 1), (64, 3, 1, 1)]),
    "deep narrow (30 s)": (3000, [(3, 8, 3, 1)] + [(8, 8, 3, 1)] * 10 + [(8, 3, 1, 1)]),
}


def stack_workload(name, T, layers):
    """LayerWork per layer and a runnable chain of :func:`bench.conv1d_int8` (seeded)."""
    rng = np.random.default_rng(7)
    works, params = [], []
    t = T
    for cin, cout, K, s in layers:
        f, b = bench.conv_work(t, cin, cout, K, s)
        works.append(LayerWork("CONV", f, b))
        w = rng.integers(-128, 128, size=(K, cin, cout), dtype=np.int8)
        bias = rng.integers(-1000, 1000, size=cout, dtype=np.int32)
        params.append((w, bias, 1.0 / (K * cin * 128), s))
        t = (t - K) // s + 1
    x = rng.integers(-128, 128, size=(T, layers[0][0]), dtype=np.int8)

    def run():
        h = x
        for w, bias, scale, s in params:
            h = bench.conv1d_int8(h, w, bias, scale, s)
        return h

    model_bytes = sum(w.size + 4 * b.size for w, b, _, _ in params)
    return Workload(name, works, model_bytes, T, 100.0, 3), run


def build_zoo(out_root):
    """The test suite's TFLite zoo (tests/edge/tflite_models.py), int8 kind, built once per version.

    Returns the folder, or None (and why) when TensorFlow is not installed.
    """
    import hashlib
    import importlib.util

    src = os.path.join(REPO, "tests", "edge", "tflite_models.py")
    if not os.path.exists(src):
        return None, "tests/edge/tflite_models.py not found"
    with open(src, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    out = os.path.join(out_root, "zoo_" + key)
    if os.path.exists(os.path.join(out, "DONE")):
        return out, None
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        return None, "TensorFlow is not installed (%s)" % exc
    spec = importlib.util.spec_from_file_location("fieldpick_tflite_models", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build_zoo(out, kinds=("int8",))
    open(os.path.join(out, "DONE"), "w").close()
    return out, None


def interpreter_models(zoo_dir=None):
    """int8 .tflite models to time and predict: [(name, path, card or None)].

    All of them are made by this run of make bench or committed, never picked
    up from another tool's cache: the shipped model (edge/models/), the
    export benchmark's zoo (results/tmp/export/<arch>/model_int8.tflite), the
    interpreter benchmark's LPPN-like picker (build/bench_interpreter/) and
    the test suite's small operator zoo, built here into ``zoo_dir``.
    """
    from fieldpick.edge.card import ModelCard

    sources = [("", sorted(glob.glob(os.path.join(REPO, "edge", "models", "*.tflite"))))]
    sources.append(("export/", sorted(glob.glob(os.path.join(RESULTS, "tmp", "export", "*", "model_int8.tflite")))))
    sources.append(("", sorted(glob.glob(os.path.join(REPO, "build", "bench_interpreter", "*_int8.tflite")))))
    if zoo_dir:
        sources.append(("", sorted(glob.glob(os.path.join(zoo_dir, "*_int8.tflite")))))
    found, seen = [], set()
    for prefix, paths in sources:
        for path in paths:
            name = os.path.basename(path)[:-7]
            if prefix == "export/":  # export/<arch>/model_int8.tflite
                name = "export/" + os.path.basename(os.path.dirname(path))
            if name in seen:
                continue
            card = None
            card_path = path[:-7] + ".json"
            if os.path.exists(card_path):
                try:
                    card = ModelCard.load(card_path, verify=True)
                except Exception:  # a stale card: time the model without it
                    card = None
            seen.add(name)
            found.append((name, path, card))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter timings")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()

    measured = bench.measure(quick=args.quick)
    host = host_profile(measured=measured)
    rt = measured["runtimes"]["numpy"]

    rows = []
    for name, (T, layers) in STACKS.items():
        wl, run = stack_workload(name, T, layers)
        t_meas = bench.time_call(run, min_time=0.05 if args.quick else 0.2, repeat=5)
        est = estimate(wl, host)
        rows.append({"workload": name, "kind": "conv stack (numpy int8 reference kernels)", "layers": len(layers),
                     "flops": wl.flops, "measured_s": t_meas, "predicted_s": est.latency_s,
                     "ratio_predicted_over_measured": est.latency_s / t_meas})

    interp_rows, interp_note, profiled = [], "", {}
    zoo_dir, zoo_note = build_zoo(os.path.join(RESULTS, "tmp", "estimator"))
    models = interpreter_models(zoo_dir)
    try:
        from fieldpick.edge.tflite.interpreter import Interpreter  # noqa: F401
    except ImportError as exc:
        interp_note = "numpy interpreter not in this build (%s)" % exc
        models = []
    for name, path, _ in models:
        try:
            m = bench.measure_model(path)
            ops = bench.profile_ops(path, runs=10 if args.quick else 30)
        except Exception as exc:  # a model the interpreter cannot run is reported, not fatal
            interp_rows.append({"workload": name, "error": "%s: %s" % (type(exc).__name__, exc)})
            continue
        profiled[name] = (m, ops)
    if len(profiled) < 2 and not interp_note:
        interp_note = "fewer than two int8 models found to fit on one and predict another (%d)" % len(profiled)
    # leave one model out: fit the per-op costs on every other model, predict this one end to end
    for name, (m, ops) in profiled.items():
        others = [s for n, (_, o) in profiled.items() if n != name for s in o]
        if not others:
            continue
        fit = bench.fit_ops(others)
        per_window = float(np.median([mm["latency_s"] - sum(t for _, t in oo)
                                      for n, (mm, oo) in profiled.items() if n != name]))
        prof = host_profile(measured={"date": measured["date"], "bandwidth_bytes_per_s": measured["bandwidth_bytes_per_s"],
                                      "runtimes": {"numpy": {
                                          "fraction_of_fp32_peak": min(1.0, fit["rate_flops_per_s"] / rt["fp32_peak_used"]),
                                          "fraction_of_bandwidth": min(1.0, fit["stream_bytes_per_s"] / measured["bandwidth_bytes_per_s"]),
                                          "other_ops": {
                                              "fraction_of_fp32_peak": min(1.0, fit["other_ops"]["rate_flops_per_s"]
                                                                           / rt["fp32_peak_used"]),
                                              "fraction_of_bandwidth": min(1.0, fit["other_ops"]["stream_bytes_per_s"]
                                                                           / measured["bandwidth_bytes_per_s"])},
                                          "overhead_s_per_op": fit["overhead_s_per_op"],
                                          "overhead_s_by_op": fit["overhead_s_by_op"],
                                          "overhead_s_per_window": max(0.0, per_window),
                                          "baseline_rss_bytes": rt["baseline_rss_bytes"]}}})
        wl = Workload(name, [w for w, _ in ops], m["bytes"], 3000, 100.0, 3, m["planned_bytes"])
        est = estimate(wl, prof)
        unseen = sorted({w.op for w, _ in ops} - set(fit["overhead_s_by_op"]))
        interp_rows.append({"workload": name, "kind": "numpy TFLite interpreter, fitted on the other %d models"
                            % (len(profiled) - 1) + (" (unseen ops: %s)" % ", ".join(unseen) if unseen else ""),
                            "layers": len(ops), "flops": wl.flops, "measured_s": m["latency_s"],
                            "predicted_s": est.latency_s,
                            "ratio_predicted_over_measured": est.latency_s / m["latency_s"]})

    # the estimator's table for every board: the exported models, else the held-out lppn-like stack
    with_cards = [(n, p, c) for n, p, c in models if c is not None and c.flops_per_window > 0]
    if with_cards:
        board_workloads = [Workload.from_card(c, layers=bench.model_work(p)) for _, p, c in with_cards]
    elif "lppn_torch_int8" in profiled:
        m, ops = profiled["lppn_torch_int8"]
        board_workloads = [Workload("lppn_torch_int8 (test model, 6 s window)", [w for w, _ in ops], m["bytes"], 600,
                                    100.0, 3, m["planned_bytes"])]
    else:
        board_workloads = [stack_workload("lppn-like (30 s, strided)", *STACKS["lppn-like (30 s, strided)"])[0]]
    boards = []
    for wl in board_workloads:
        for name in ["host"] + list_profiles():
            prof = host if name == "host" else load_profile(name)
            for runtime in ("numpy", "xnnpack_int8"):
                if runtime not in (prof.get("efficiency") or {}) and runtime not in ((prof.get("measured") or {}).get("runtimes") or {}):
                    continue
                e = estimate(wl, prof, Operation(runtime=runtime))
                boards.append(e.to_dict())

    all_ops = [x for _, (_, o) in profiled.items() for x in o]
    host_fit = bench.fit_ops(all_ops) if all_ops else None
    if host_fit:
        host_fit["overhead_s_per_window"] = float(np.median([max(0.0, mm["latency_s"] - sum(t for _, t in oo))
                                                             for mm, oo in profiled.values()]))
        host_fit["models"] = sorted(profiled)
    ratios = [r["ratio_predicted_over_measured"] for r in rows + interp_rows if "ratio_predicted_over_measured" in r]
    errs = [abs(r - 1.0) for r in ratios]
    res = {
        "what": "cost estimator: predicted vs measured latency per window on this machine, and the table for every board",
        "machine": {"cpu": host["cpu"]["model"], "cores": host["cpu"]["cores"], "clock_hz": host["cpu"]["clock_hz"],
                    "arch": platform.machine(), "python": platform.python_version(), "numpy": np.__version__},
        "host_measured": {"rate_flops_per_s": rt["rate_flops_per_s"], "fraction_of_fp32_peak": rt["fraction_of_fp32_peak"],
                          "stream_bytes_per_s": rt["stream_bytes_per_s"],
                          "overhead_s_per_op": rt["overhead_s_per_op"], "bandwidth_bytes_per_s": measured["bandwidth_bytes_per_s"],
                          "baseline_rss_bytes": rt["baseline_rss_bytes"]},
        "validation": rows,
        "interpreter_validation": interp_rows,
        "interpreter_note": interp_note,
        "models": [{"name": n, "path": os.path.relpath(p, REPO), "file_time_utc": time.strftime(
            "%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(p)))} for n, p, _ in models],
        "zoo_note": zoo_note,
        "budget": "quick (shorter timings)" if args.quick else "full",
        "command": "benchmarks/estimator.py" + (" --quick" if args.quick else ""),
        "host_interpreter_fit": host_fit,
        "mean_abs_error": float(np.mean(errs)) if errs else None,
        "max_abs_error": float(np.max(errs)) if errs else None,
        "boards": boards,
        "seconds": time.time() - t_start,
    }
    with open(os.path.join(args.out, "estimator.json"), "w") as f:
        json.dump(res, f, indent=2)
    with open(os.path.join(args.out, "estimator.md"), "w") as f:
        f.write(render_md(res, boards))
    print("estimator: mean |predicted/measured - 1| = %.0f %% over %d workloads (max %.0f %%)"
          % (100 * res["mean_abs_error"], len(errs), 100 * res["max_abs_error"]))
    return 0


def render_md(res, boards):
    m, h = res["machine"], res["host_measured"]
    out = ["# Cost estimator: how far off it is, and what each board would cost", ""]
    out.append("Measured on %s (%d cores, %.2f GHz, %s), Python %s, numpy %s, one thread." % (
        m["cpu"], m["cores"], m["clock_hz"] / 1e9, m["arch"], m["python"], m["numpy"]))
    out.append("Host fit (fieldpick bench, t = overhead + FLOPs / rate + bytes / stream over 16 single layers): "
               "int8 conv %.1f GFLOP/s (%.0f %% of one core's fp32 peak), elementwise passes %.1f GB/s, "
               "%.1f us per op; copy bandwidth %.1f GB/s; Python+numpy+fieldpick.edge %.0f MB resident." % (
                   h["rate_flops_per_s"] / 1e9, 100 * h["fraction_of_fp32_peak"], h["stream_bytes_per_s"] / 1e9,
                   h["overhead_s_per_op"] * 1e6, h["bandwidth_bytes_per_s"] / 1e9, h["baseline_rss_bytes"] / 1e6))
    out.append("")
    out.append("This machine is shared (2 cores, ~8 users): timings are the best of 5 batches, and the fit "
               "moves by tens of per cent between runs.")
    out += ["", "## Predicted vs measured latency per window (held out from the fit)", "",
            "| workload | kind | FLOPs | measured | predicted | predicted / measured |", "|---|---|---|---|---|---|"]
    for r in res["validation"] + res["interpreter_validation"]:
        if "error" in r:
            out.append("| %s | error | | | | %s |" % (r["workload"], r["error"]))
            continue
        out.append("| %s | %s | %.3g | %.3f ms | %.3f ms | %.2f |" % (
            r["workload"], r["kind"], r["flops"], r["measured_s"] * 1e3, r["predicted_s"] * 1e3,
            r["ratio_predicted_over_measured"]))
    if res["interpreter_note"]:
        out.append("")
        out.append("Interpreter check not run: %s." % res["interpreter_note"])
    if res.get("models"):
        out += ["", "Models timed on the interpreter (built by make bench's export and interpreter benchmarks, by "
                "this script, or committed; file times in UTC): %s." % ", ".join(
                    "%s (`%s`, %s)" % (m["name"], m["path"], m.get("file_time_utc", "?")) for m in res["models"])]
    if res.get("zoo_note"):
        out += ["", "The test suite's operator zoo was not built: %s." % res["zoo_note"]]
    if res.get("budget"):
        out += ["", "Budget: %s; command `%s`." % (res["budget"], res["command"])]
    if res["mean_abs_error"] is not None:
        out += ["", "Mean |predicted / measured - 1| = **%.0f %%**, worst %.0f %%." % (
            100 * res["mean_abs_error"], 100 * res["max_abs_error"])]
    out += ["", "## Every board (estimates unless the basis says measured)", ""]
    from fieldpick.boards.estimate import Estimate

    by_model = {}
    for b in boards:
        by_model.setdefault(b["model"], []).append(Estimate(**b))
    for model, ests in by_model.items():
        out += ["### %s (%.3g FLOPs per window)" % (model, ests[0].flops_per_window), "", table(ests)]
    out.append("Continuous: a window every half window (50 % overlap). Gated: the STA/LTA gate open 5 % of "
               "the time. Energy is the whole board for a day; 'picker' is the part above idle. "
               "Board figures are estimates until `fieldpick bench --write-profile` runs on the board.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
