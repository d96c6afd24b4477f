"""The numpy runtime's floor: how long its BLAS and einsum calls alone take, against ai-edge-litert.

The numpy interpreter's int8 convolutions end in one float64 ``matmul``
(im2col patches against scale-folded weights) or one ``einsum``
(depthwise taps: float64 over contiguous rows, or float32 over patches) per layer.  Everything else it does (copies into the
patch buffers, the truncating cast and clamp, the Python dispatch of each
operator) comes on top.  This script times those calls inside real
single-window runs of a model (each call wrapped with a timer, so their
own Python call overhead is included) and, in the same rounds,
ai-edge-litert (XNNPACK) on the same file, one thread each:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/interpreter_floor.py [--model PATH] [--rounds 300]

If the calls alone exceed the target (the numpy runtime within 1.5x of litert), no
arrangement of the remaining numpy passes can meet it.  Writes
benchmarks/results/interpreter_floor.{json,md}.
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


class _Timed:
    """Stands in for numpy inside the conv kernels: ``matmul`` and ``einsum`` are timed, the rest passes."""

    WRAPPED = ("matmul", "einsum")

    def __init__(self):
        self.seconds = {k: 0.0 for k in self.WRAPPED}
        self.calls = 0

    def reset(self):
        self.seconds = {k: 0.0 for k in self.WRAPPED}
        self.calls = 0

    def __getattr__(self, name):
        fn = getattr(np, name)
        if name not in self.WRAPPED:
            return fn

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds[name] += time.perf_counter() - t0
            self.calls += 1
            return out

        return timed


def measure(path, rounds, seed=0):
    import fieldpick.edge.tflite.kernels.conv as conv
    import fieldpick.edge.tflite.kernels.depthwise as depthwise
    from fieldpick.edge.tflite.interpreter import Interpreter

    timed = _Timed()
    real_np = conv.np
    conv.np = depthwise.np = timed
    try:
        ours = Interpreter(path)
        litert = Interpreter(path, backend="litert")
        shape = tuple(int(s) for s in ours.get_input_details()[0]["shape"][1:])
        x = np.random.default_rng(seed).standard_normal((1,) + shape).astype(np.float32)
        for _ in range(20):  # warm: buffers, plans, XNNPACK packing
            ours.run(x)
            litert.run(x)
        t_ours, t_calls, t_litert, per = [], [], [], {k: [] for k in _Timed.WRAPPED}
        for _ in range(rounds):
            timed.reset()
            t0 = time.perf_counter()
            ours.run(x)
            t_ours.append(time.perf_counter() - t0)
            t_calls.append(sum(timed.seconds.values()))
            for k in _Timed.WRAPPED:
                per[k].append(timed.seconds[k])
            t0 = time.perf_counter()
            litert.run(x)
            t_litert.append(time.perf_counter() - t0)
        calls = timed.calls
    finally:
        conv.np = depthwise.np = real_np

    def ms(a):
        return 1e3 * float(np.median(a))

    return {"model": os.path.relpath(path, ROOT), "rounds": rounds, "calls_per_window": calls,
            "numpy_ms": ms(t_ours), "floor_ms": ms(t_calls), "matmul_ms": ms(per["matmul"]),
            "einsum_ms": ms(per["einsum"]), "litert_ms": ms(t_litert),
            "numpy_over_litert": ms(t_ours) / ms(t_litert), "floor_over_litert": ms(t_calls) / ms(t_litert)}


def markdown(r):
    return "\n".join([
        "# The numpy runtime's floor against ai-edge-litert", "",
        "Command: `%s`. %s, numpy %s, one thread (OMP_NUM_THREADS=%s), load %s at start; one window per "
        "call, %d interleaved rounds, medians." % (r["command"], r["host"], np.__version__,
                                                  os.environ.get("OMP_NUM_THREADS", "unset"), r["load"],
                                                  r["rounds"]), "",
        "| model | numpy runtime | its %d matmul + einsum calls alone | of which matmul / einsum | "
        "ai-edge-litert (XNNPACK) | numpy / litert | calls alone / litert |" % r["calls_per_window"],
        "|---|---:|---:|---:|---:|---:|---:|",
        "| %s | %.3f ms | %.3f ms | %.3f / %.3f ms | %.3f ms | %.2fx | **%.2fx** |" % (
            r["model"], r["numpy_ms"], r["floor_ms"], r["matmul_ms"], r["einsum_ms"], r["litert_ms"],
            r["numpy_over_litert"], r["floor_over_litert"]), "",
        "The target: the numpy runtime within 1.5x of litert on one window. The calls in the "
        "third column are the arithmetic itself; the rest of the runtime's time is the copies into patch "
        "buffers, the requantisation's cast and clamp and the dispatch of each operator.", ""])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "edge", "models", "fieldpick-default.tflite"))
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--out", default=os.path.join(RESULTS, "interpreter_floor"), help="output stem (.json, .md)")
    args = ap.parse_args(argv)
    r = measure(args.model, args.rounds)
    r.update(command=("benchmarks/interpreter_floor.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
             host="%s, %d CPUs" % (platform.machine(), os.cpu_count() or 0),
             load="%.1f" % os.getloadavg()[0], date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    with open(args.out + ".json", "w") as f:
        json.dump(r, f, indent=1)
    md = markdown(r)
    with open(args.out + ".md", "w") as f:
        f.write(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
