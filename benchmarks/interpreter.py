"""Interpreter latency and throughput: the numpy runtime against the other runtimes, 1 thread.

Two models, each timed on the same windows by every runtime that can run it:

- the shipped default model (edge/models/fieldpick-default.tflite, full int8):
  numpy runtime (fieldpick.edge.tflite), ai-edge-litert (XNNPACK) and
  tflite-runtime, all int8; with ``--before DIR`` also the numpy runtime of an
  older checkout of this repository (``git worktree add DIR <commit>``), for a
  same-run before/after ratio;
- an LPPN-like picker (3 x 3000 samples in, noise/P/S per stride of 8 out;
  ~15k parameters) taken through the project's export route (torch -> ONNX ->
  onnx2tf float32 and full int8): numpy int8 and float32, ai-edge-litert int8
  and float32, tflite-runtime int8, onnxruntime on the ONNX twin, torch eager.

Single window: median and best latency (ms) over repeated calls, and the
median CPU time of the calling thread (less sensitive to a loaded host).
Batched: ms per window and windows per second with B windows per call, for
each B in ``--batch`` (default 8, 32, 128).  Ratios are the runtime's time
per window / ai-edge-litert int8's (the peer) in the same run, so > 1 is
slower.  It also checks the numpy int8 outputs against ai-edge-litert's
reference kernels (BUILTIN_REF), reports the planned activation memory, and
profiles the numpy runtime on the default model: time per operator kind
(median per-op wall time, one window and one call of 32) and time per numpy
function (cProfile over one-window calls).

    .venv/bin/python benchmarks/interpreter.py [--default M.tflite] [--int8 M.tflite --fp32 M.tflite --onnx M.onnx]
                                               [--repeats 80] [--batch 8,32,128] [--before DIR]

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

from fieldpick.edge.tflite.interpreter import CHUNK_BYTES, Interpreter  # noqa: E402

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


DEFAULT_MODEL = os.path.join(REPO, "edge", "models", "fieldpick-default.tflite")


def _before_interpreter(path):
    """The Interpreter class of an older checkout of this repository (imported as ``fieldpick_before``)."""
    import types

    root = os.path.abspath(path)
    if not os.path.exists(os.path.join(root, "edge", "tflite", "interpreter.py")):
        raise SystemExit("--before %s: no edge/tflite/interpreter.py there (give a checkout of this repository)" % path)
    pkg = types.ModuleType("fieldpick_before")
    pkg.__path__ = [root]
    sys.modules["fieldpick_before"] = pkg
    import importlib

    return importlib.import_module("fieldpick_before.edge.tflite.interpreter").Interpreter


def _commit(path):
    """Short commit id of a checkout (None without git)."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def measure(engines, batches, repeats, batch_repeats):
    """Interleaved rounds (each round times every runtime once, in a new order) -> rows."""
    single = {name: [] for name, _, _ in engines}
    single_cpu = {name: [] for name, _, _ in engines}
    batched = {(name, b): [] for name, _, _ in engines for b in batches}
    batched_cpu = {(name, b): [] for name, _, _ in engines for b in batches}
    for _name, _, (it, xs) in engines:  # warm up
        it.run(xs[:1])
        for b in batches:
            it.run(xs[:b])
    order = np.random.default_rng(7)
    for rnd in range(repeats):
        for e in order.permutation(len(engines)):
            name, _, (it, xs) = engines[e]
            c0, t0 = time.thread_time(), time.perf_counter()
            it.run(xs[:1])
            single[name].append(time.perf_counter() - t0)
            single_cpu[name].append(time.thread_time() - c0)
        if rnd < batch_repeats:
            for b in batches:
                for e in order.permutation(len(engines)):
                    name, _, (it, xs) = engines[e]
                    c0, t0 = time.thread_time(), time.perf_counter()
                    it.run(xs[:b])
                    batched[name, b].append((time.perf_counter() - t0) / b)
                    batched_cpu[name, b].append((time.thread_time() - c0) / b)
    rows = []
    for name, backend, _ in engines:
        med1, best1, cpu1 = statistics.median(single[name]), min(single[name]), statistics.median(single_cpu[name])
        row = {"runtime": name, "backend": backend,
               "single_ms": med1 * 1e3, "single_best_ms": best1 * 1e3, "single_cpu_ms": cpu1 * 1e3}
        line = "%-34s single %7.3f ms (best %6.3f, cpu %6.3f)" % (name, med1 * 1e3, best1 * 1e3, cpu1 * 1e3)
        for b in batches:
            medb, bestb = statistics.median(batched[name, b]), min(batched[name, b])
            row["batch%d_ms_per_window" % b] = medb * 1e3
            row["batch%d_best_ms_per_window" % b] = bestb * 1e3
            row["batch%d_cpu_ms_per_window" % b] = statistics.median(batched_cpu[name, b]) * 1e3
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
                for k in ("batch%d_ms_per_window", "batch%d_best_ms_per_window", "batch%d_cpu_ms_per_window"):
                    ratios["ratio_" + (k % b).replace("_ms_per_window", "") + "_vs_litert_int8"] = \
                        r[k % b] / peer[k % b]
            r.update(ratios)
    return rows, peer


def exactness(it, xs, path):
    """Largest |difference| (quanta) of the numpy int8 outputs from BUILTIN_REF over the windows xs."""
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        return None
    ref = LiteRT(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF, num_threads=1)
    ref.allocate_tensors()
    worst = 0
    ours = it.run(xs)
    for b in range(len(xs)):
        ref.set_tensor(ref.get_input_details()[0]["index"], xs[b:b + 1])
        ref.invoke()
        for o, d in zip(ours, ref.get_output_details()):
            worst = max(worst, int(np.abs(o[b:b + 1].astype(np.int32) - ref.get_tensor(d["index"]).astype(np.int32)).max()))
    return worst


def memory(path, x1):
    """numpy memory of a fresh numpy Interpreter (tracemalloc): held after its first one-window
    call (kept buffers: patch matrices, padded inputs, the scratch arena) and the peak of a
    later call."""
    import tracemalloc

    tracemalloc.start()
    it = Interpreter(path)
    loaded = tracemalloc.get_traced_memory()[0]
    it.run(x1)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracemalloc.start()
    it.run(x1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"after_load_bytes": loaded, "held_after_first_call_bytes": held, "peak_of_later_call_bytes": peak}


def profile(it, xs, runs=40, cprofile=True):
    """Where the numpy runtime spends its time on one model.

    Per operator kind: the sum of median per-op wall times (Interpreter.op_times) for one
    window and for one call of 32 windows (run() would split it into chunks).  Per numpy
    function (with ``cprofile``): cProfile's own time over ``runs`` one-window calls.
    """
    import collections
    import cProfile
    import pstats

    out = {}
    for b in (1, 32):
        kinds = collections.Counter()
        counts = collections.Counter()
        xb = xs[:b]
        for _idx, name, sec in it.op_times(xb, runs=max(5, runs // (4 if b > 1 else 1))):
            kinds[name] += sec / len(xb)
            counts[name] += 1
        total = sum(kinds.values())
        out["ops_b%d" % b] = {"total_ms_per_window": total * 1e3,
                              "kinds": [{"op": k, "count": counts[k], "ms_per_window": v * 1e3, "share": v / total}
                                        for k, v in kinds.most_common()]}
    if not cprofile:
        return out
    # numpy ufuncs (matmul, multiply, add, ...) called from Python do not show in cProfile on
    # their own (their time lands in the caller's); for the profile they are wrapped in
    # Python functions named after them, so each numpy pass gets its own row.
    from fieldpick.edge.tflite.kernels import requant as _rq

    def _wrap(fn, name):
        def wrapped(*a, **k):
            return fn(*a, **k)

        kw = {"co_name": "numpy." + name}
        if sys.version_info >= (3, 11):
            kw["co_qualname"] = "numpy." + name
        wrapped.__code__ = wrapped.__code__.replace(**kw)  # cProfile names functions by their code
        return wrapped

    patched = [(np, n, getattr(np, n)) for n in ("matmul", "einsum", "copyto", "multiply", "add", "copysign",
                                                   "minimum", "maximum", "left_shift", "bitwise_or")]
    if getattr(_rq, "_CLIP", None) is not None:
        patched.append((_rq, "_CLIP", _rq._CLIP))
    pr = cProfile.Profile()
    x1 = xs[:1]
    it.run(x1)
    try:
        for mod, n, fn in patched:
            setattr(mod, n, _wrap(fn, "clip" if n == "_CLIP" else n))
        pr.enable()
        for _ in range(runs):
            it.run(x1)
        pr.disable()
    finally:
        for mod, n, fn in patched:
            setattr(mod, n, fn)
    st = pstats.Stats(pr)
    funcs = []
    total = 0.0
    for (fname, _line, func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        total += tt
        if func.startswith("numpy."):
            label = func + " (pass)"
        elif fname == "~":
            label = func.strip("<>")
        else:
            label = "%s:%s" % (os.path.relpath(fname, REPO) if fname.startswith(REPO) else os.path.basename(fname), func)
        funcs.append((tt, label))
    funcs.sort(reverse=True)
    out["numpy_functions"] = {"total_ms_per_window": total / runs * 1e3, "note": "cProfile adds its own overhead",
                              "top": [{"function": f, "ms_per_window": tt / runs * 1e3, "share": tt / total}
                                      for tt, f in funcs[:18]]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/interpreter.py", allow_abbrev=False,
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--default", default=DEFAULT_MODEL, help="full-int8 .tflite timed first (default: the shipped model)")
    p.add_argument("--int8", help="full-int8 .tflite (default: build the LPPN-like picker)")
    p.add_argument("--fp32", help="float32 .tflite of the same model")
    p.add_argument("--onnx", help="ONNX twin of the same model")
    p.add_argument("--repeats", type=int, default=80, help="timed calls per single-window measurement")
    p.add_argument("--batch", default="8,32,128", help="windows per call in the batched measurements (comma-separated)")
    p.add_argument("--batch-repeats", type=int, default=5, help="timed calls per batched measurement")
    p.add_argument("--before", help="a checkout of an older version of this repository: its numpy runtime is timed "
                                    "on the default model too")
    p.add_argument("--before-label", help="what --before is, for the report (default: its git commit)")
    p.add_argument("--skip-lppn", action="store_true", help="time the default model only")
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        p.error("--batch takes comma-separated window counts, e.g. 8,32,128; got %r" % args.batch)
    if not batches or min(batches) < 1:
        p.error("--batch counts must be >= 1; got %r" % args.batch)
    n_win = max(batches)

    def tflite_engine(name, path, backend, cls=Interpreter):
        try:
            it = cls(path, backend=backend, num_threads=1)
        except Exception as exc:  # a missing optional runtime is reported, not fatal
            print("skip %s: %s" % (name, exc))
            return None
        d = it.get_input_details()[0]
        t = int(d["shape"][1])
        rng = np.random.default_rng(20261122)
        windows = (rng.standard_normal((n_win, t, 3)) * rng.uniform(0.3, 2.0, (n_win, 1, 1))).astype(np.float32)
        xs = it._convert_input(windows, d)  # quantise once, outside the timing
        return it, xs

    sections = []
    # 1. The shipped default model, int8 in every runtime that takes it.
    dpath = args.default
    engines = []
    for name, backend in (("numpy int8", "numpy"), ("ai-edge-litert int8 (XNNPACK)", "litert"),
                          ("tflite-runtime int8", "tflite")):
        got = tflite_engine(name, dpath, backend)
        if got is not None:
            engines.append((name, backend, got))
    if args.before:
        got = tflite_engine("numpy int8 (before)", dpath, "numpy", _before_interpreter(args.before))
        if got is not None:
            engines.insert(1, ("numpy int8 (before)", "numpy", got))
    print("== default model %s" % os.path.relpath(dpath, REPO), flush=True)
    rows, peer = measure(engines, batches, args.repeats, args.batch_repeats)
    check = {}
    np_eng = next((e for e in engines if e[0] == "numpy int8"), None)
    if np_eng is not None:
        it, xs = np_eng[2]
        check["planned_bytes_int8"] = it.planned_bytes
        check["int8_max_abs_diff_vs_builtin_ref_quanta"] = exactness(it, xs, dpath)
        check["int8_windows_checked"] = len(xs)
        check["memory"] = memory(dpath, xs[:1])
        print("profiling the numpy runtime ...", flush=True)
        check["profile"] = profile(it, xs)
        before = next((e for e in engines if e[0] == "numpy int8 (before)"), None)
        if before is not None:
            print("profiling the numpy runtime of --before ...", flush=True)
            check["profile_before"] = profile(before[2][0], before[2][1], cprofile=False)
    sections.append({"model": os.path.relpath(dpath, REPO), "window_samples": int(np_eng[2][1].shape[1]) if np_eng else None,
                     "peer": peer["runtime"] if peer else None, "rows": rows, "numpy_runtime": check})

    # 2. The LPPN-like picker through the export route, in every runtime (fp32 twins included).
    if not args.skip_lppn:
        torch_model = None
        if args.int8:
            onnx_path, fp32_path, int8_path = args.onnx, args.fp32, args.int8
        else:
            onnx_path, fp32_path, int8_path, torch_model = build_models()
        engines = []
        prepared = {}
        for name, path, backend in [("numpy int8", int8_path, "numpy"), ("numpy fp32", fp32_path, "numpy"),
                                    ("ai-edge-litert int8 (XNNPACK)", int8_path, "litert"),
                                    ("ai-edge-litert fp32 (XNNPACK)", fp32_path, "litert"),
                                    ("tflite-runtime int8", int8_path, "tflite")]:
            if path is None:
                continue
            got = tflite_engine(name, path, backend)
            if got is not None:
                prepared[name] = got
                engines.append((name, backend, got))
        windows = prepared["numpy fp32"][1] if "numpy fp32" in prepared else None
        if onnx_path and windows is not None:
            try:
                import onnxruntime  # noqa: F401

                it = Interpreter(onnx_path, backend="onnx", num_threads=1)
                xs_nct = np.ascontiguousarray(windows.transpose(0, 2, 1))  # torch layout (B, C, T)
                engines.append(("onnxruntime fp32 (ONNX twin)", "onnx", (it, xs_nct)))
            except Exception as exc:
                print("skip onnxruntime: %s" % exc)
        if torch_model is not None and windows is not None:
            import torch

            torch.set_num_threads(1)
            xs_t = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 2, 1)))

            class _Torch:
                def run(self, x):
                    with torch.inference_mode():
                        return torch_model(x)

            engines.append(("torch eager fp32", "torch", (_Torch(), xs_t)))
        print("== LPPN-like picker (export route)", flush=True)
        rows, peer = measure(engines, batches, args.repeats, args.batch_repeats)
        check = {}
        if "numpy int8" in prepared:
            import tracemalloc

            it, xs = prepared["numpy int8"]
            check["planned_bytes_int8"] = it.planned_bytes
            it.run(xs[:1])
            tracemalloc.start()  # numpy reports its buffers to tracemalloc
            it.run(xs[:1])
            check["traced_peak_bytes_int8_one_window"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            check["int8_max_abs_diff_vs_builtin_ref_quanta"] = exactness(it, xs, int8_path)
            check["int8_windows_checked"] = len(xs)
        if "numpy fp32" in prepared:
            check["planned_bytes_fp32"] = prepared["numpy fp32"][0].planned_bytes
        sections.append({"model": "LPPN-like picker, torch -> ONNX -> onnx2tf (%s)" % (
            os.path.relpath(int8_path, REPO) if int8_path else None),
            "window_samples": T, "params": 14884 if torch_model is not None else None,
            "peer": peer["runtime"] if peer else None, "rows": rows, "numpy_runtime": check})

    result = {
        "benchmark": "interpreter",
        "command": "benchmarks/interpreter.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": _commit(REPO),
        "before_commit": (args.before_label or _commit(args.before)) if args.before else None,
        "chunk_bytes": CHUNK_BYTES,
        "threads": 1, "repeats": args.repeats, "batch_repeats": args.batch_repeats, "batches": batches,
        "host": {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
                 "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "sections": sections,
        # The default model's rows at the top level too, where benchmarks/run_all.py looks for them.
        "model": sections[0]["model"], "peer": sections[0]["peer"], "rows": sections[0]["rows"],
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "interpreter.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(RESULTS, "interpreter.md"), "w") as f:
        f.write(markdown(result))
    print(markdown(result))
    return 0


def _table(sec, batches):
    nan = float("nan")
    lines = ["| runtime | median (ms) | ratio | best (ms) | ratio of best | CPU median (ms) | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in sec["rows"]:
        lines.append("| %s | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f |" % (
            row["runtime"], row["single_ms"], row.get("ratio_single_vs_litert_int8", nan),
            row["single_best_ms"], row.get("ratio_single_best_vs_litert_int8", nan),
            row["single_cpu_ms"], row.get("ratio_single_cpu_vs_litert_int8", nan)))
    lines += ["", "Batches: ms per window (median wall, best wall, median CPU), windows/s of the median, ratio of the "
              "CPU median:", "",
              "| runtime | " + " | ".join("B=%d ms/window | best | CPU | windows/s | ratio" % b for b in batches) + " |",
              "|---|" + "---:|" * (5 * len(batches))]
    for row in sec["rows"]:
        cells = []
        for b in batches:
            cells += ["%.3f" % row["batch%d_ms_per_window" % b], "%.3f" % row["batch%d_best_ms_per_window" % b],
                      "%.3f" % row["batch%d_cpu_ms_per_window" % b], "%.0f" % row["batch%d_windows_per_s" % b],
                      "%.2f" % row.get("ratio_batch%d_cpu_vs_litert_int8" % b, nan)]
        lines.append("| %s | %s |" % (row["runtime"], " | ".join(cells)))
    return lines


def markdown(r):
    lines = ["## Interpreter: latency per window, 1 thread", "",
             "Command: `.venv/bin/python %s`. Host: %s, %d CPUs, numpy %s, load %.1f when measured (shared; absolute "
             "times are noisy, ratios are measured in the same run). Ratio = time per window / ai-edge-litert int8's." % (
                 r["command"], r["host"]["machine"], r["host"]["cpus"] or 0, r["host"]["numpy"],
                 r["host"]["load_avg_1min"] or 0), "",
             "Code: commit %s%s." % (r.get("commit"), "; \"numpy int8 (before)\" is the numpy runtime of commit %s, "
                                     "timed in the same rounds" % r["before_commit"] if r.get("before_commit") else ""), "",
             "Runtimes are timed in interleaved rounds (each round times every runtime once, in a shuffled order): %d rounds "
             "of one window, %d rounds of each batch size. Median and best wall time per call, and the median CPU time "
             "of the calling thread (time spent waiting for a core on the loaded host left out)." % (
                 r["repeats"], r["batch_repeats"]), ""]
    for k, sec in enumerate(r["sections"]):
        lines += ["### %s: %s (%s samples x 3 in)" % ("Default model" if k == 0 else "Export route", sec["model"],
                                                     sec.get("window_samples")), ""]
        lines += _table(sec, r["batches"])
        c = sec["numpy_runtime"]
        mem = c.get("memory")
        if mem:
            lines += ["", "numpy runtime memory (tracemalloc, a fresh Interpreter): %.2f MB after load (weights, "
                      "tables), %.2f MB held after the first one-window call (kept patch matrices, padded inputs, "
                      "scratch arena), %.2f MB more at the peak of a later call." % (
                          mem["after_load_bytes"] / 1e6, mem["held_after_first_call_bytes"] / 1e6,
                          mem["peak_of_later_call_bytes"] / 1e6)]
        lines += ["", "numpy runtime: planned activation memory (TFLite-style arena, batch 1) %s bytes (int8)%s%s; int8 "
                  "outputs vs ai-edge-litert BUILTIN_REF kernels: max |diff| %s quanta over %s windows." % (
                      c.get("planned_bytes_int8"),
                      ", %s bytes (fp32)" % c["planned_bytes_fp32"] if "planned_bytes_fp32" in c else "",
                      "; measured peak of numpy buffers during a later one-window int8 call (tracemalloc, float "
                      "temporaries included, buffers kept from the first call not) %s bytes" % c["traced_peak_bytes_int8_one_window"]
                      if "traced_peak_bytes_int8_one_window" in c else "",
                      c.get("int8_max_abs_diff_vs_builtin_ref_quanta"), c.get("int8_windows_checked")), ""]
        prof = c.get("profile")
        if prof:
            lines += ["#### Where the numpy runtime's time goes (default model)", "",
                      "Per operator kind, sum of median per-op wall times (`Interpreter.op_times`): one window, and one "
                      "call of 32 windows at once (run() itself splits batches into chunks of about %d KiB of int8 "
                      "plan x 8):" % (r.get("chunk_bytes", 1 << 20) // 1024), "",
                      "| op | count | B=1 ms/window | share | B=32 ms/window | share |", "|---|---:|---:|---:|---:|---:|"]
            b32 = {k["op"]: k for k in prof["ops_b32"]["kinds"]}
            for k in prof["ops_b1"]["kinds"]:
                o = b32.get(k["op"], {"ms_per_window": float("nan"), "share": float("nan")})
                lines.append("| %s | %d | %.3f | %.0f %% | %.3f | %.0f %% |" % (
                    k["op"], k["count"], k["ms_per_window"], 100 * k["share"], o["ms_per_window"], 100 * o["share"]))
            lines.append("| total | | %.3f | | %.3f | |" % (prof["ops_b1"]["total_ms_per_window"],
                                                          prof["ops_b32"]["total_ms_per_window"]))
            old = c.get("profile_before")
            if old:
                lines += ["", "The same per-operator profile, the numpy runtime of `--before` (commit %s) against this "
                          "one, timed one after the other in this run (ms per window):" % r.get("before_commit"), "",
                          "| op | before B=1 | now B=1 | now / before | before B=32 | now B=32 | now / before |",
                          "|---|---:|---:|---:|---:|---:|---:|"]
                now1 = {k["op"]: k["ms_per_window"] for k in prof["ops_b1"]["kinds"]}
                now32 = {k["op"]: k["ms_per_window"] for k in prof["ops_b32"]["kinds"]}
                rows = [(k["op"], k["ms_per_window"], {o["op"]: o["ms_per_window"] for o in old["ops_b32"]["kinds"]}
                         .get(k["op"], float("nan"))) for k in old["ops_b1"]["kinds"]]
                rows.append(("total", old["ops_b1"]["total_ms_per_window"], old["ops_b32"]["total_ms_per_window"]))
                now1["total"], now32["total"] = prof["ops_b1"]["total_ms_per_window"], prof["ops_b32"]["total_ms_per_window"]
                for op, b1, b32 in rows:
                    n1, n32 = now1.get(op, float("nan")), now32.get(op, float("nan"))
                    lines.append("| %s | %.3f | %.3f | %.2f | %.3f | %.3f | %.2f |" % (
                        op, b1, n1, n1 / b1 if b1 else float("nan"), b32, n32, n32 / b32 if b32 else float("nan")))
            f = prof["numpy_functions"]
            lines += ["", "Per function and numpy pass (cProfile own time over one-window calls, %.3f ms/window under "
                      "the profiler, which inflates Python-level calls; numpy ufuncs wrapped so that each pass gets "
                      "its own row):" % f["total_ms_per_window"], "", "| function | ms/window | share |",
                      "|---|---:|---:|"]
            for t in f["top"]:
                lines.append("| `%s` | %.3f | %.0f %% |" % (t["function"], t["ms_per_window"], 100 * t["share"]))
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
