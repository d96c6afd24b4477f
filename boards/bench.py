"""``fieldpick bench``: measure this machine for the cost estimator, on the station itself.

It measures what :mod:`fieldpick.boards.estimate` needs, with numpy and the
standard library only (it runs from a station bundle):

- the numpy int8 convolution rate and the fixed cost per op, fitted to a set
  of single-layer workloads (int8 im2col + float32 matmul + requantise: the
  shape of the work a numpy TFLite interpreter does for CONV_2D);
- the sustained memory bandwidth (large ``np.copyto``);
- the resident memory of Python + numpy + ``fieldpick.edge``;
- when a model and the numpy interpreter are present, the model's latency
  per window and its planned activation memory.

``--write-profile PROFILE.json`` stores the result as the profile's
``measured`` block (atomically), so that estimates for that board stop
being guesses.  On a board, ``--json FILE`` keeps the measurement; back on
the workstation ``fieldpick bench --from-json FILE --write-profile
boards/profiles/NAME.json`` puts it into the repository's profile.  Timings use one thread; numpy's BLAS threads are not
changed (set OPENBLAS_NUM_THREADS=1 before running for one-core figures).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time

import numpy as np

from fieldpick.edge.errors import ConfigError

__all__ = ["conv1d_int8", "conv_work", "time_call", "fit_rate", "measure", "main"]

log = logging.getLogger(__name__)

#: calibration layers: (time samples in, channels in, channels out, kernel, stride)
#: from tiny to wide, and from narrow (few FLOPs per byte: elementwise passes dominate) to
#: wide (matmul dominates), so that the fit can tell the three costs apart
CALIBRATION = [
    (64, 3, 4, 3, 1), (256, 4, 8, 5, 1), (512, 8, 8, 7, 1), (1024, 8, 16, 7, 2),
    (1024, 16, 16, 5, 1), (2048, 16, 32, 7, 1), (3000, 8, 16, 7, 1), (3000, 32, 32, 5, 1),
    (3000, 4, 4, 3, 1), (6000, 3, 6, 3, 1), (2000, 6, 6, 2, 1), (4000, 2, 4, 5, 2),
    (256, 32, 128, 3, 1), (512, 64, 64, 3, 1), (128, 64, 128, 5, 1), (750, 32, 96, 5, 1),
]


def conv1d_int8(x, w, bias, scale, stride=1):
    """Reference int8 1-D convolution ('valid' padding), as a numpy interpreter computes it.

    x: (T, Cin) int8; w: (K, Cin, Cout) int8; bias: (Cout,) int32; scale: output
    multiplier (float).  Returns (T_out, Cout) int8 with T_out = (T - K) // stride + 1.
    The products of int8 values summed in float32 are exact while K * Cin < 1024.
    """
    T, cin = x.shape
    K, _, cout = w.shape
    t_out = (T - K) // stride + 1
    xs = np.lib.stride_tricks.as_strided(
        x, shape=(t_out, K, cin), strides=(x.strides[0] * stride, x.strides[0], x.strides[1]), writeable=False
    )
    cols = xs.reshape(t_out, K * cin).astype(np.float32)
    acc = cols @ w.reshape(K * cin, cout).astype(np.float32)
    acc += bias.astype(np.float32)
    acc *= np.float32(scale)
    np.rint(acc, out=acc)
    np.clip(acc, -128, 127, out=acc)
    return acc.astype(np.int8)


def conv_work(T, cin, cout, K, stride=1):
    """(flops, bytes) of :func:`conv1d_int8` on a (T, Cin) window: MACs x 2; bytes its passes move.

    With n = T_out * K * Cin (the im2col matrix) and m = T_out * Cout (the
    output): the int8 gather (2n), its float32 cast (5n), the matmul's reads
    (4n) and, over the output, the matmul write, bias, scale, round, clip
    (8m each, in place) and the int8 cast (5m): 11n + 41m, plus the weights.
    """
    t_out = (T - K) // stride + 1
    n, m = t_out * K * cin, t_out * cout
    flops = 2 * n * cout
    nbytes = 11 * n + 41 * m + 5 * K * cin * cout + T * cin
    return flops, nbytes


#: ops that only relabel an array (a view, no pass over the data)
VIEW_OPS = frozenset(("RESHAPE", "SQUEEZE", "EXPAND_DIMS"))


def model_work(model):
    """Per-op work of a .tflite model for the estimator, read from the file itself.

    model: a path or the file's bytes.  Returns a list of
    :class:`~fieldpick.boards.estimate.LayerWork`.  FLOPs: 2 per multiply-
    accumulate for CONV_2D (grouped and depthwise too), DEPTHWISE_CONV_2D,
    FULLY_CONNECTED and TRANSPOSE_CONV; one per output element for every
    other op but the view ops (RESHAPE, SQUEEZE, EXPAND_DIMS: 0).  Bytes use
    the same pass model as :func:`conv_work` for convolutions (11 per im2col
    element, 41 per output element) and 5 x (inputs + output) for the rest
    (a widening cast and back); view ops move nothing.
    """
    from fieldpick.edge.tflite.reader import read_model

    from .estimate import LayerWork

    data = model if isinstance(model, (bytes, bytearray)) else open(model, "rb").read()
    sg = read_model(bytes(data)).subgraphs[0]
    layers = []
    for op in sg.operators:
        ins = [sg.tensors[i] for i in op.inputs if i >= 0]
        out = sg.tensors[op.outputs[0]]
        out_elems = int(np.prod(out.shape)) if len(out.shape) else 1
        acts = [t for t in ins if t.data is None]
        consts = [t for t in ins if t.data is not None]
        name = op.name
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) >= 2:
            w = ins[1].shape  # CONV_2D (Cout, KH, KW, Cin/groups); DEPTHWISE (1, KH, KW, Cout)
            taps = int(w[1]) * int(w[2]) * (int(w[3]) if name == "CONV_2D" else 1)
            cout = int(out.shape[-1])
            positions = out_elems // max(cout, 1)
            n, m = positions * taps * (cout if (name == "DEPTHWISE_CONV_2D" or int(w[3]) == 1) else 1), out_elems
            if name == "CONV_2D" and int(w[3]) != 1:
                n = positions * taps
            flops = 2 * out_elems * taps
            nbytes = 11 * n + 41 * m + 5 * sum(t.nbytes for t in consts)
        elif name == "FULLY_CONNECTED" and len(ins) >= 2:
            k = int(ins[1].shape[-1])
            flops = 2 * out_elems * k
            nbytes = 11 * (out_elems // max(int(out.shape[-1]), 1)) * k + 41 * out_elems + 5 * ins[1].nbytes
        elif name == "TRANSPOSE_CONV" and len(ins) >= 3:
            w = ins[1].shape  # (Cout, KH, KW, Cin)
            in_elems = int(np.prod(ins[2].shape))
            flops = 2 * in_elems * int(w[0]) * int(w[1]) * int(w[2])
            nbytes = 11 * in_elems * int(w[1]) * int(w[2]) + 41 * out_elems + 5 * ins[1].nbytes
        elif name in VIEW_OPS:
            flops, nbytes = 0, 0
        else:
            flops = out_elems
            nbytes = 5 * (sum(t.nbytes for t in acts) + out.nbytes)
        layers.append(LayerWork(name, int(flops), int(nbytes)))
    return layers


#: the clock of every timing here: CPU seconds of this process, not wall time.  On a shared
#: machine the wall clock counts the time other processes hold the core (a 2-core host at
#: load 8 stretched an 8 ms window to 17 ms); single-threaded work on an idle board takes
#: as long on the wall as on this clock.  Run with one BLAS thread (OPENBLAS_NUM_THREADS=1).
CLOCK = time.process_time


def time_call(fn, min_time=0.05, repeat=5):
    """CPU seconds of one call of ``fn()``: the best of ``repeat`` batches of >= ``min_time`` s each.

    The minimum, not the median: the other processes only ever add time.
    """
    fn()
    n = 1
    while True:
        t0 = CLOCK()
        for _ in range(n):
            fn()
        dt = CLOCK() - t0
        if dt >= min_time or n >= 1 << 20:
            break
        n *= 2
    times = [dt / n]
    for _ in range(repeat - 1):
        t0 = CLOCK()
        for _ in range(n):
            fn()
        times.append((CLOCK() - t0) / n)
    return min(times)


def fit_rate(flops, nbytes, seconds):
    """Fit ``seconds = overhead + flops / rate + bytes / stream`` minimising relative error.

    Non-negative least squares by trying every subset of the three terms:
    a term that would need a negative cost is left out (its rate is then
    infinite).  Returns (overhead_s, rate in FLOP/s, stream in bytes/s).  A fit
    whose relative RMS error exceeds 80 % (1.0 is a fit that explains nothing) is refused;
    a busy shared machine gives 20-60 %.
    """
    f = np.asarray(flops, dtype=np.float64)
    b = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    cols = {"overhead": np.ones_like(f), "flops": f, "bytes": b}
    best = None
    for keep in (("overhead", "flops", "bytes"), ("overhead", "flops"), ("overhead", "bytes"),
                 ("flops", "bytes"), ("flops",), ("bytes",)):
        a = np.stack([cols[k] for k in keep], axis=1) / t[:, None]
        coef, *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
        if np.any(coef < 0):
            continue
        sse = float(np.sum((a @ coef - 1.0) ** 2))
        if best is None or sse < best[0]:
            best = (sse, dict(zip(keep, coef)))
    rms = (best[0] / len(t)) ** 0.5 if best else None
    if best is None or rms > 0.8:
        raise ConfigError("timings do not grow with the work (relative fit error %s); the machine is too "
                          "noisy to fit: rerun on an idle machine" % ("n/a" if rms is None else "%.0f %%" % (100 * rms)))
    fitted = best[1]
    rate = 1.0 / fitted["flops"] if fitted.get("flops", 0) > 0 else float("inf")
    stream = 1.0 / fitted["bytes"] if fitted.get("bytes", 0) > 0 else float("inf")
    return float(fitted.get("overhead", 0.0)), rate, stream


def fit_ops(samples):
    """Fit per-op timings ``t = overhead[op kind] + flops / rate[family] + bytes / stream[family]``.

    samples: [(LayerWork, seconds)], e.g. from :func:`profile_ops`.  Each op
    kind (CONV_2D, RESHAPE, SOFTMAX, ...) gets its own fixed cost, because a
    numpy kernel's Python work differs by kind far more than by size.  The
    FLOP and byte rates are fitted per family: the convolution kernels
    (:data:`~fieldpick.boards.estimate.CONV_OPS`: im2col and an int32 matmul)
    and every other op (elementwise passes), which run at different speeds
    per FLOP and byte.  Relative error is minimised; the rate terms are kept
    non-negative by trying each subset of them, and a negative fixed cost is
    clamped to 0.  Returns a dict: overhead_s_by_op, overhead_s_per_op (the
    median over kinds, for kinds not seen), rate_flops_per_s and
    stream_bytes_per_s (the convolution family; inf when a term was left
    out), other_ops (the same two for the other family), rms (relative).
    """
    from itertools import combinations

    from .estimate import CONV_OPS

    kinds = sorted({w.op for w, _ in samples})
    t = np.array([s for _, s in samples], dtype=np.float64)
    f = np.array([w.flops for w, _ in samples], dtype=np.float64)
    b = np.array([w.bytes for w, _ in samples], dtype=np.float64)
    conv = np.array([1.0 if w.op in CONV_OPS else 0.0 for w, _ in samples])
    terms = {"conv_flops": f * conv, "conv_bytes": b * conv, "other_flops": f * (1 - conv),
             "other_bytes": b * (1 - conv)}
    terms = {k: v for k, v in terms.items() if np.any(v > 0)}  # a family with no work has nothing to fit
    onehot = np.array([[1.0 if w.op == k else 0.0 for k in kinds] for w, _ in samples])
    best = None
    for n in range(len(terms), -1, -1):
        for keep in combinations(sorted(terms), n):
            a = np.concatenate([onehot] + [terms[k][:, None] for k in keep], axis=1) / t[:, None]
            coef, *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
            extra = dict(zip(keep, coef[len(kinds):]))
            if any(v < 0 for v in extra.values()):
                continue
            coef = coef.copy()
            coef[:len(kinds)] = np.maximum(coef[:len(kinds)], 0.0)
            sse = float(np.sum((a @ coef - 1.0) ** 2))
            if best is None or sse < best[0] - 1e-12:
                best = (sse, coef[:len(kinds)], extra)
    sse, ovh, extra = best
    by_op = {k: float(v) for k, v in zip(kinds, ovh)}

    def rate(key):
        return 1.0 / extra[key] if extra.get(key, 0) > 0 else float("inf")

    return {
        "overhead_s_by_op": by_op,
        "overhead_s_per_op": float(np.median(list(by_op.values()))) if by_op else 0.0,
        "rate_flops_per_s": rate("conv_flops"),
        "stream_bytes_per_s": rate("conv_bytes"),
        "other_ops": {"rate_flops_per_s": rate("other_flops"), "stream_bytes_per_s": rate("other_bytes")},
        "rms": (sse / max(len(t), 1)) ** 0.5,
    }


def _layer(rng, T, cin, cout, K, stride):
    x = rng.integers(-128, 128, size=(T, cin), dtype=np.int8)
    w = rng.integers(-128, 128, size=(K, cin, cout), dtype=np.int8)
    b = rng.integers(-1000, 1000, size=cout, dtype=np.int32)
    return lambda: conv1d_int8(x, w, b, 1e-3, stride)


def measure_conv(seed=0, min_time=0.05):
    """Time the calibration layers; returns rows of (layer, flops, bytes, seconds)."""
    rng = np.random.default_rng(seed)
    rows = []
    for layer in CALIBRATION:
        flops, nbytes = conv_work(*layer)
        rows.append({"layer": list(layer), "flops": flops, "bytes": nbytes,
                     "seconds": time_call(_layer(rng, *layer), min_time=min_time)})
    return rows


def measure_bandwidth(nbytes=64 << 20):
    """Sustained copy bandwidth (bytes read + written per second) of ``np.copyto``."""
    a = np.ones(nbytes // 8, dtype=np.float64)
    b = np.empty_like(a)
    t = time_call(lambda: np.copyto(b, a), min_time=0.1, repeat=3)
    return 2 * nbytes / t


def resident_bytes():
    """This process's resident set size (bytes), from /proc/self/status; 0 when unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_peak(profile):
    return float(profile["cpu"]["clock_hz"]) * float(profile["cpu"]["fp32_flops_per_cycle"])


def profile_ops(model_path, runs=30):
    """Seconds of each op of a model on the numpy interpreter, one window; [(LayerWork, seconds)].

    The whole chain runs ``runs`` times, as the interpreter runs it, with a
    clock around each kernel; an op's time is its median over the runs.
    (Timing one op in a loop on the same input is up to 2x faster than the
    chain: caches stay warm.)  It drives the interpreter's kernels through
    its ``_engine``, as there is no public per-op hook yet.  Returns None
    (and logs why) when the interpreter is missing or has no numpy engine.
    """
    try:
        from fieldpick.edge.tflite.interpreter import Interpreter
    except ImportError as exc:
        log.warning("cannot profile %s: the numpy interpreter is not in this build (%s)", model_path, exc)
        return None
    interp = Interpreter(model_path)
    eng = getattr(interp, "_engine", None)
    if eng is None or not hasattr(eng, "kernels") or not hasattr(eng, "sg"):
        log.warning("cannot profile %s: the interpreter exposes no per-op kernels", model_path)
        return None
    work = model_work(model_path)
    sg, tensors, kernels = eng.sg, eng.sg.tensors, eng.kernels
    d = interp.get_input_details()[0]
    x = interp._convert_input(_example_input(interp), d)
    clock = CLOCK
    times = np.zeros((runs + 1, len(sg.operators)))
    for r in range(runs + 1):  # the first run warms up and is dropped
        values = {d["index"]: x}
        row = times[r]
        for k, op in enumerate(sg.operators):
            ins = [None if i < 0 else (values[i] if tensors[i].data is None else tensors[i].data) for i in op.inputs]
            t0 = clock()
            values[op.outputs[0]] = kernels[k](ins)
            row[k] = clock() - t0
    med = np.median(times[1:], axis=0)
    return [(work[k], float(med[k])) for k in range(len(sg.operators))]


def measure_model(model_path, runs=20):
    """Latency per window (median s) and planned bytes of a .tflite model on the numpy interpreter.

    Returns None (and logs why) when the interpreter is not in this build.
    """
    try:
        from fieldpick.edge.tflite.interpreter import Interpreter
    except ImportError as exc:
        log.warning("cannot time %s: the numpy interpreter is not in this build (%s)", model_path, exc)
        return None
    interp = Interpreter(model_path)
    batch = _example_input(interp)
    seconds = time_call(lambda: interp.run(batch), min_time=0.2, repeat=max(3, runs // 4))
    out = {"model": os.path.basename(model_path), "bytes": os.path.getsize(model_path), "latency_s": seconds,
           "planned_bytes": int(getattr(interp, "planned_bytes", 0) or 0)}
    return out


def _example_input(interp):
    """A seeded input batch of the interpreter's input shape and dtype."""
    details = None
    for name in ("input_details", "get_input_details"):
        attr = getattr(interp, name, None)
        if attr is not None:
            details = attr() if callable(attr) else attr
            break
    if isinstance(details, (list, tuple)):
        details = details[0]
    shape = tuple(int(n) for n in (details["shape"] if isinstance(details, dict) else details.shape))
    # float32 windows of unit variance: the interpreter quantises them as it would a station's
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def measure(models=(), quick=False):
    """Everything ``fieldpick bench`` measures, as a JSON-ready dict (the profile's ``measured`` block).

    The ``numpy`` runtime's figures come from per-op timings of the numpy
    interpreter on ``models`` (.tflite paths) when there are any and the
    interpreter is in the build; otherwise from the reference int8 conv
    layers (``reference_conv``, always measured), which underestimate the
    interpreter's fixed cost per op.
    """
    from .estimate import host_profile

    if isinstance(models, str):
        models = [models]
    base_rss = resident_bytes()
    rows = measure_conv(min_time=0.02 if quick else 0.05)
    overhead, rate, stream = fit_rate([r["flops"] for r in rows], [r["bytes"] for r in rows],
                                      [r["seconds"] for r in rows])
    bw = measure_bandwidth(16 << 20 if quick else 64 << 20)
    host = host_profile()
    peak = _cpu_peak(host)
    reference = {
        "fraction_of_fp32_peak": min(1.0, rate / peak),
        "overhead_s_per_op": overhead,
        "fraction_of_bandwidth": min(1.0, stream / bw),
        "rate_flops_per_s": rate,
        "stream_bytes_per_s": stream,
        "baseline_rss_bytes": base_rss,
        "fp32_peak_used": peak,
        "how": "fit of t = overhead + flops / rate + bytes / stream over %d reference int8 conv layers "
               "(fieldpick.boards.bench.conv1d_int8)" % len(rows),
    }
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu": host["cpu"]["model"], "cores": host["cpu"]["cores"], "clock_hz": host["cpu"]["clock_hz"],
                    "arch": platform.machine(), "os": host["software"]["os"]},
        "software": {"python": platform.python_version(), "numpy": np.__version__,
                     "glibc": host["software"]["glibc"]},
        "bandwidth_bytes_per_s": bw,
        "conv_layers": rows,
        "reference_conv": reference,
        "runtimes": {"numpy": dict(reference)},
        "models": [],
    }
    samples, per_window = [], []
    for path in models:
        m = measure_model(path)
        if not m:
            continue
        ops = profile_ops(path, runs=10 if quick else 30)
        if ops:
            samples += ops
            m["ops"] = len(ops)
            m["sum_of_ops_s"] = sum(t for _, t in ops)
            per_window.append(max(0.0, m["latency_s"] - m["sum_of_ops_s"]))
        result["models"].append(m)
    if samples:
        fit = fit_ops(samples)
        result["runtimes"]["numpy"] = {
            "fraction_of_fp32_peak": min(1.0, fit["rate_flops_per_s"] / peak),
            "fraction_of_bandwidth": min(1.0, fit["stream_bytes_per_s"] / bw),
            "other_ops": {"fraction_of_fp32_peak": min(1.0, fit["other_ops"]["rate_flops_per_s"] / peak),
                          "fraction_of_bandwidth": min(1.0, fit["other_ops"]["stream_bytes_per_s"] / bw)},
            "overhead_s_per_op": fit["overhead_s_per_op"],
            "overhead_s_by_op": fit["overhead_s_by_op"],
            "overhead_s_per_window": float(np.median(per_window)),
            "rate_flops_per_s": fit["rate_flops_per_s"],
            "stream_bytes_per_s": fit["stream_bytes_per_s"],
            "baseline_rss_bytes": base_rss,
            "fp32_peak_used": peak,
            "fit_rms": fit["rms"],
            "how": "per-op timings of the numpy interpreter on %s: t = overhead[op] + flops / rate[family] + "
                   "bytes / stream[family], families: convolutions, other ops" % ", ".join(os.path.basename(p) for p in models),
        }
    return result


def write_profile(path, measured):
    """Store ``measured`` as the ``measured`` block of the profile at ``path`` (write, fsync, rename)."""
    from .estimate import validate_profile

    try:
        with open(path, "r", encoding="utf-8") as f:
            profile = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError("cannot read board profile %s: %s" % (path, exc)) from None
    profile["measured"] = measured
    validate_profile(profile, where=os.path.basename(path))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _bundled_models():
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge", "models")
    return sorted(os.path.join(here, n) for n in os.listdir(here) if n.endswith(".tflite")) if os.path.isdir(here) else []


def _rate(x, unit):
    return "not separable from the other terms" if x == float("inf") else "%.2f %s" % (x / 1e9, unit)


def main(argv):
    parser = argparse.ArgumentParser(
        prog="fieldpick bench", description="Measure this machine for the cost estimator (numpy only).",
        allow_abbrev=False,
    )
    parser.add_argument("--model", action="append", default=[],
                        help="a .tflite model to time op by op on the numpy interpreter (repeatable; default: "
                             "the bundled model(s) in edge/models/)")
    parser.add_argument("--json", metavar="FILE", help="also write the measurement as JSON to FILE")
    parser.add_argument("--write-profile", metavar="PROFILE", help="store the measurement as PROFILE.json's 'measured' block")
    parser.add_argument("--quick", action="store_true", help="shorter timings (noisier; for smoke tests)")
    parser.add_argument("--from-json", metavar="FILE",
                        help="measure nothing: take a measurement written on the board with --json (to store it "
                             "in the repository's profile with --write-profile)")
    args = parser.parse_args(argv)
    if args.from_json:
        if not args.write_profile:
            raise ConfigError("--from-json needs --write-profile PROFILE.json (there is nothing else to do with it)")
        try:
            with open(args.from_json, "r", encoding="utf-8") as f:
                measured = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError("cannot read --from-json %s: %s" % (args.from_json, exc)) from None
        write_profile(args.write_profile, measured)
        sys.stdout.write("wrote the 'measured' block of %s from %s (measured %s on %s)\n" % (
            args.write_profile, args.from_json, measured.get("date", "?"), (measured.get("machine") or {}).get("cpu", "?")))
        return 0
    for path in args.model:
        if not os.path.exists(path):
            raise ConfigError("--model %s does not exist" % path)
    models = args.model or _bundled_models()
    if args.write_profile and not os.path.exists(args.write_profile):
        raise ConfigError("--write-profile %s does not exist; give a profile .json to update" % args.write_profile)
    m = measure(models, quick=args.quick)
    numpy_rt = m["runtimes"]["numpy"]
    out = sys.stdout
    out.write("machine: %s, %d cores, %.2f GHz, %s; Python %s, numpy %s\n" % (
        m["machine"]["cpu"], m["machine"]["cores"], m["machine"]["clock_hz"] / 1e9, m["machine"]["arch"],
        m["software"]["python"], m["software"]["numpy"]))
    out.write("numpy runtime: %s; %.1f us per op (median over kinds); elementwise passes %s\n" % (
        _rate(numpy_rt["rate_flops_per_s"], "GFLOP/s") + " = %.1f %% of the fp32 peak of one core"
        % (100 * numpy_rt["fraction_of_fp32_peak"]), numpy_rt["overhead_s_per_op"] * 1e6,
        _rate(numpy_rt["stream_bytes_per_s"], "GB/s")))
    out.write("memory copy bandwidth: %.2f GB/s; Python + numpy + fieldpick.edge resident: %.1f MB\n" % (
        m["bandwidth_bytes_per_s"] / 1e9, numpy_rt["baseline_rss_bytes"] / 1e6))
    for mm in m["models"]:
        out.write("model %s: %.3f ms per window (%d ops), %d activation bytes planned\n" % (
            mm["model"], mm["latency_s"] * 1e3, mm.get("ops", 0), mm["planned_bytes"]))
    if not m["models"]:
        out.write("no model timed (none given, none bundled, or no interpreter): the numpy figures come from "
                  "the reference conv layers\n")
    else:
        out.write("numpy runtime figures from: %s\n" % numpy_rt["how"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(m, f, indent=2)
            f.write("\n")
    if args.write_profile:
        write_profile(args.write_profile, m)
        out.write("wrote the 'measured' block of %s\n" % args.write_profile)
    return 0
