"""Interpreter latency and throughput: the numpy runtime against the other runtimes, 1 thread.

On one LPPN-like picker (3 x 3000 samples in, noise/P/S per stride of 8 out;
~15k parameters) taken through the project's export route (torch -> ONNX ->
onnx2tf float32 and full int8), or on given files, this measures in the same
run and on the same windows:

- numpy runtime (fieldpick.edge.tflite), int8 and float32 .tflite;
- ai-edge-litert (XNNPACK), int8 and float32;
- tflite-runtime 2.14, int8;
- onnxruntime on the ONNX twin (float32);
- torch eager on the source model (float32; only when it was built here).

Single window: median and best latency (ms) over repeated calls, and the
median CPU time of the calling thread (less sensitive to a loaded host).
Batched: ms per window and windows per second with B windows per call, for
each B in ``--batch`` (default 8, 32, 128).  Ratios are the runtime's time
per window / ai-edge-litert int8's (the peer) in the same run, so > 1 is
slower.
It also checks the numpy int8 outputs against ai-edge-litert's reference
kernels (BUILTIN_REF) and reports the planned activation memory.

    .venv/bin/python benchmarks/interpreter.py [--int8 M.tflite --fp32 M.tflite --onnx M.onnx]
                                               [--repeats 80] [--batch 8,32,128]

Results: benchmarks/results/interpreter.json and interpreter.md.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy loads: one BLAS thread
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from fieldpick.edge.tflite.interpreter import Interpreter  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
WORK = os.path.join(REPO, "build", "bench_interpreter")
T = 3000


def _builders():
    path = os.path.join(REPO, "tests", "edge", "tflite_models.py")
    spec = importlib.util.spec_from_file_location("fieldpick_tflite_models", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_models():
    """The LPPN-like picker through torch -> ONNX -> onnx2tf (cached in build/bench_interpreter)."""
    mod = _builders()
    paths = [os.path.join(WORK, n) for n in ("lppn_torch.onnx", "lppn_torch_fp32.tflite", "lppn_torch_int8.tflite")]
    if not all(os.path.exists(p) for p in paths):
        print("building the LPPN-like model through onnx2tf (about a minute) ...", flush=True)
        paths = list(mod.build_onnx2tf(WORK, t=T))
    return paths + [mod.torch_lppn(t=T)]


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/interpreter.py", allow_abbrev=False,
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--int8", help="full-int8 .tflite (default: build the LPPN-like picker)")
    p.add_argument("--fp32", help="float32 .tflite of the same model")
    p.add_argument("--onnx", help="ONNX twin of the same model")
    p.add_argument("--repeats", type=int, default=80, help="timed calls per single-window measurement")
    p.add_argument("--batch", default="8,32,128", help="windows per call in the batched measurements (comma-separated)")
    p.add_argument("--batch-repeats", type=int, default=5, help="timed calls per batched measurement")
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        p.error("--batch takes comma-separated window counts, e.g. 8,32,128; got %r" % args.batch)
    if not batches or min(batches) < 1:
        p.error("--batch counts must be >= 1; got %r" % args.batch)

    torch_model = None
    if args.int8:
        onnx_path, fp32_path, int8_path = args.onnx, args.fp32, args.int8
    else:
        onnx_path, fp32_path, int8_path, torch_model = build_models()

    rng = np.random.default_rng(20261122)
    n_win = max(batches)
    windows = (rng.standard_normal((n_win, T, 3)) * rng.uniform(0.3, 2.0, (n_win, 1, 1))).astype(np.float32)

    engines = []  # (name, runtime, model kind, callable(x_batch float32))

    def tflite_engine(name, path, backend):
        try:
            it = Interpreter(path, backend=backend, num_threads=1)
        except Exception as exc:  # a missing optional runtime is reported, not fatal
            print("skip %s: %s" % (name, exc))
            return None
        d = it.get_input_details()[0]
        xs = it._convert_input(windows, d)  # quantise once, outside the timing
        return it, xs

    plan = [("numpy int8", int8_path, "numpy"), ("numpy fp32", fp32_path, "numpy"),
            ("ai-edge-litert int8 (XNNPACK)", int8_path, "litert"), ("ai-edge-litert fp32 (XNNPACK)", fp32_path, "litert"),
            ("tflite-runtime int8", int8_path, "tflite")]
    prepared = {}
    for name, path, backend in plan:
        if path is None:
            continue
        got = tflite_engine(name, path, backend)
        if got is not None:
            prepared[name] = got
            engines.append((name, backend, got))
    if onnx_path:
        try:
            import onnxruntime  # noqa: F401

            it = Interpreter(onnx_path, backend="onnx", num_threads=1)
            xs_nct = np.ascontiguousarray(windows.transpose(0, 2, 1))  # torch layout (B, C, T)
            engines.append(("onnxruntime fp32 (ONNX twin)", "onnx", (it, xs_nct)))
        except Exception as exc:
            print("skip onnxruntime: %s" % exc)
    if torch_model is not None:
        import torch

        torch.set_num_threads(1)
        xs_t = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 2, 1)))

        class _Torch:
            def run(self, x):
                with torch.inference_mode():
                    return torch_model(x)

        engines.append(("torch eager fp32", "torch", (_Torch(), xs_t)))

    # Interleaved: every round times each runtime once, so they share the host's load alike.
    rows = []
    single = {name: [] for name, _, _ in engines}
    single_cpu = {name: [] for name, _, _ in engines}
    batched = {(name, b): [] for name, _, _ in engines for b in batches}
    for _name, _, (it, xs) in engines:  # warm up
        it.run(xs[:1])
        for b in batches:
            it.run(xs[:b])
    order = np.random.default_rng(7)
    for rnd in range(args.repeats):
        # Each round in a new order: the runtime timed first in a round is not always the same one.
        for e in order.permutation(len(engines)):
            name, _, (it, xs) = engines[e]
            c0, t0 = time.thread_time(), time.perf_counter()
            it.run(xs[:1])
            single[name].append(time.perf_counter() - t0)
            single_cpu[name].append(time.thread_time() - c0)
        if rnd < args.batch_repeats:
            for b in batches:
                for e in order.permutation(len(engines)):
                    name, _, (it, xs) = engines[e]
                    t0 = time.perf_counter()
                    it.run(xs[:b])
                    batched[name, b].append((time.perf_counter() - t0) / b)
    for name, backend, _ in engines:
        med1, best1, cpu1 = statistics.median(single[name]), min(single[name]), statistics.median(single_cpu[name])
        row = {"runtime": name, "backend": backend,
               "single_ms": med1 * 1e3, "single_best_ms": best1 * 1e3, "single_cpu_ms": cpu1 * 1e3}
        line = "%-32s single %7.3f ms (best %6.3f, cpu %6.3f)" % (name, med1 * 1e3, best1 * 1e3, cpu1 * 1e3)
        for b in batches:
            medb, bestb = statistics.median(batched[name, b]), min(batched[name, b])
            row["batch%d_ms_per_window" % b] = medb * 1e3
            row["batch%d_best_ms_per_window" % b] = bestb * 1e3
            row["batch%d_windows_per_s" % b] = 1.0 / medb
            line += "  b%d %6.3f (best %6.3f)" % (b, medb * 1e3, bestb * 1e3)
        rows.append(row)
        print(line, flush=True)
    peer = next((r for r in rows if r["runtime"].startswith("ai-edge-litert int8")), None)
    for r in rows:
        if peer:
            ratios = {"ratio_single_vs_litert_int8": r["single_ms"] / peer["single_ms"],
                      "ratio_single_best_vs_litert_int8": r["single_best_ms"] / peer["single_best_ms"],
                      "ratio_single_cpu_vs_litert_int8": r["single_cpu_ms"] / peer["single_cpu_ms"]}
            for b in batches:
                k = "batch%d_ms_per_window" % b
                ratios["ratio_batch%d_vs_litert_int8" % b] = r[k] / peer[k]
                k = "batch%d_best_ms_per_window" % b
                ratios["ratio_batch%d_best_vs_litert_int8" % b] = r[k] / peer[k]
            r.update(ratios)

    # Exactness and memory of the numpy runtime on this model.
    check = {}
    if "numpy int8" in prepared:
        import tracemalloc

        it, xs = prepared["numpy int8"]
        check["planned_bytes_int8"] = it.planned_bytes
        tracemalloc.start()  # numpy reports its buffers to tracemalloc
        it.run(xs[:1])
        check["traced_peak_bytes_int8_one_window"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        try:
            from ai_edge_litert.interpreter import Interpreter as LiteRT
            from ai_edge_litert.interpreter import OpResolverType

            ref = LiteRT(model_path=int8_path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF, num_threads=1)
            ref.allocate_tensors()
            worst = 0
            ours = it.run(xs)
            for b in range(len(xs)):
                ref.set_tensor(ref.get_input_details()[0]["index"], xs[b:b + 1])
                ref.invoke()
                for o, d in zip(ours, ref.get_output_details()):
                    worst = max(worst, int(np.abs(o[b:b + 1].astype(np.int32) - ref.get_tensor(d["index"]).astype(np.int32)).max()))
            check["int8_max_abs_diff_vs_builtin_ref_quanta"] = worst
            check["int8_windows_checked"] = len(xs)
        except ImportError:
            check["int8_max_abs_diff_vs_builtin_ref_quanta"] = None
    if "numpy fp32" in prepared:
        check["planned_bytes_fp32"] = prepared["numpy fp32"][0].planned_bytes

    result = {
        "benchmark": "interpreter",
        "model": {"int8": os.path.relpath(int8_path, REPO) if int8_path else None,
                  "fp32": os.path.relpath(fp32_path, REPO) if fp32_path else None,
                  "onnx": os.path.relpath(onnx_path, REPO) if onnx_path else None,
                  "window_samples": T, "params": 14884 if torch_model is not None else None},
        "threads": 1, "repeats": args.repeats, "batch_repeats": args.batch_repeats, "batches": batches,
        "host": {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
                 "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "peer": peer["runtime"] if peer else None,
        "rows": rows,
        "numpy_runtime": check,
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "interpreter.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(RESULTS, "interpreter.md"), "w") as f:
        f.write(markdown(result))
    print(markdown(result))
    return 0


def markdown(r):
    lines = ["## Interpreter: latency per window, 1 thread", "",
             "Model: LPPN-like picker, %d samples x 3 components in, ~15k parameters (torch -> ONNX -> onnx2tf). "
             "Host: %s, %d CPUs, load %.1f when measured (shared; absolute times are noisy, ratios are "
             "measured in the same run). Ratio = time per window / ai-edge-litert int8's." % (
                 r["model"]["window_samples"], r["host"]["machine"], r["host"]["cpus"] or 0, r["host"]["load_avg_1min"] or 0), "",
             "Runtimes are timed in interleaved rounds (each round times every runtime once, in a shuffled order): %d rounds of one "
             "window, %d rounds of each batch size. Median and best wall time per call, and the median CPU time "
             "of the calling thread (time spent waiting for a core on the loaded host left out)." % (
                 r["repeats"], r["batch_repeats"]), "",
             "### One window per call", "",
             "| runtime | median (ms) | ratio | best (ms) | ratio of best | CPU median (ms) | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    nan = float("nan")
    for row in r["rows"]:
        lines.append("| %s | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f |" % (
            row["runtime"], row["single_ms"], row.get("ratio_single_vs_litert_int8", nan),
            row["single_best_ms"], row.get("ratio_single_best_vs_litert_int8", nan),
            row["single_cpu_ms"], row.get("ratio_single_cpu_vs_litert_int8", nan)))
    lines += ["", "### Batches: ms per window (median, best) and ratio of the median", "",
              "| runtime | " + " | ".join("B=%d ms/window | best | windows/s | ratio" % b for b in r["batches"]) + " |",
              "|---|" + "---:|" * (4 * len(r["batches"]))]
    for row in r["rows"]:
        cells = []
        for b in r["batches"]:
            cells += ["%.3f" % row["batch%d_ms_per_window" % b], "%.3f" % row["batch%d_best_ms_per_window" % b],
                      "%.0f" % row["batch%d_windows_per_s" % b], "%.2f" % row.get("ratio_batch%d_vs_litert_int8" % b, nan)]
        lines.append("| %s | %s |" % (row["runtime"], " | ".join(cells)))
    c = r["numpy_runtime"]
    lines += ["", "numpy runtime: planned activation memory (TFLite-style arena, batch 1) %s bytes (int8), %s bytes "
              "(fp32); measured peak of numpy buffers during one int8 window (tracemalloc, float temporaries "
              "included) %s bytes; int8 outputs vs ai-edge-litert BUILTIN_REF kernels: max |diff| %s quanta over "
              "%s windows." % (
                  c.get("planned_bytes_int8"), c.get("planned_bytes_fp32"), c.get("traced_peak_bytes_int8_one_window"),
                  c.get("int8_max_abs_diff_vs_builtin_ref_quanta"), c.get("int8_windows_checked")), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
