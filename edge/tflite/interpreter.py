"""Run a .tflite model: numpy kernels, or a faster runtime where one is installed.

Lifecycle (as TFLite's own Python interpreter)::

    it = Interpreter("picker.tflite")           # load, check every operator, plan memory
    it.get_input_details()                      # name, index, shape, dtype, quantization
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])

or in one call on a batch of windows: ``outputs = it.run(batch)`` with
``batch`` of shape (B, T, C) (float32, or the model's input type).

``planned_bytes`` is the activation memory planned at load the way TFLite's
arena planner does it (greedy by size over tensor lifetimes, batch of 1).
The numpy engine frees each activation after its last reader, so its live
tensors follow that plan; its int8 kernels also keep float buffers (patch
matrices, padded inputs: per layer and batch size; accumulators and
requantiser scratch: one per-thread arena for all layers), several times
the int8 plan.  An Interpreter, like TFLite's, is for one thread at a time;
interpreters in different threads are independent.

Speed (numpy engine; measured in benchmarks/interpreter.py): the work at
load is done once (zero points and requantisation folded into float64
weights, lookup tables for elementwise ops, int8 -> int8 QUANTIZE and
softmax; the operators compiled into a flat list of steps, with chains of
table lookups composed, see steps.py), so a call is a few numpy passes per
operator.  On the default
model nearly all the time is in the convolutions: float64 BLAS, the
depthwise einsum, and about three passes per int8 output to cast and clamp
(see kernels/conv.py and kernels/requant.py).  Batches run in chunks of
about ``CHUNK_BYTES`` (14 windows of the default model): up to about 8
windows a call costs less per window, beyond that no less.

``backend`` picks the engine behind the same interface: ``"numpy"`` (this
package, needs nothing but numpy), ``"litert"`` (ai-edge-litert),
``"tflite"`` (tflite-runtime) or ``"onnx"`` (onnxruntime on an ``.onnx``
twin of the model).  The optional ones are imported only when asked for
and raise :class:`BackendError` saying how to install them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import List

import numpy as np

from ..errors import (
    BackendError,
    ConfigError,
    DataError,
    FieldpickError,
    ModelFormatError,
    UnsupportedOperatorError,
)
from .budget import DEFAULT_MEMORY_BUDGET, check_budget
from .kernels import KERNELS, _load_families, build_kernel
from .kernels.quant import round_half_away
from .reader import read_model
from .steps import compile_steps

__all__ = ["Interpreter", "BACKENDS", "plan_memory"]

log = logging.getLogger(__name__)

BACKENDS = ("numpy", "litert", "tflite", "onnx")
CHUNK_BYTES = 1 << 22  # run() splits a batch into chunks whose working set is about this (see _run_batch)
MAX_TENSOR_BYTES = 1 << 28  # 256 MiB: no picker comes near; a hostile file cannot make us allocate more


def _load_bytes(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    path = os.fspath(path_or_bytes)
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except OSError as exc:
        raise ModelFormatError("cannot read model file %r: %s" % (path, exc)) from None


def plan_memory(sizes, first_use, last_use):
    """Greedy-by-size arena plan (as TFLite's ArenaPlanner); returns (offsets, peak bytes).

    sizes[i] bytes live from op first_use[i] to op last_use[i] inclusive;
    two tensors share bytes only when their lifetimes do not overlap.
    """
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    placed = []  # (offset, size, first, last)
    offsets = [0] * len(sizes)
    peak = 0
    for i in order:
        if sizes[i] == 0:
            continue
        busy = sorted((o, o + s) for o, s, f, e in placed if not (e < first_use[i] or last_use[i] < f))
        off = 0
        for a, b in busy:
            if off + sizes[i] <= a:
                break
            off = max(off, b)
        offsets[i] = off
        placed.append((off, sizes[i], first_use[i], last_use[i]))
        peak = max(peak, off + sizes[i])
    return offsets, peak


def _details(t, index=None):
    q = t.quant
    scale = float(q.scale[0]) if q is not None and q.scale.size == 1 else 0.0
    zp = int(q.zero_point[0]) if q is not None and q.scale.size == 1 else 0
    return {
        "name": t.name,
        "index": t.index if index is None else index,
        "shape": np.array(t.shape, np.int32),
        "shape_signature": np.array(t.shape_signature or t.shape, np.int32),
        "dtype": t.dtype.type,
        "quantization": (scale, zp),
        "quantization_parameters": {
            "scales": q.scale.astype(np.float32) if q is not None else np.zeros(0, np.float32),
            "zero_points": q.zero_point.astype(np.int32) if q is not None else np.zeros(0, np.int32),
            "quantized_dimension": q.axis if q is not None else 0,
        },
    }


class _NumpyEngine:
    """The numpy runtime: kernels built at load, memory planned once."""

    def __init__(self, data, memory_budget=DEFAULT_MEMORY_BUDGET):
        model = read_model(data)
        sg = model.subgraphs[0]
        for t in sg.tensors:
            if t.dtype is not None and t.nbytes > MAX_TENSOR_BYTES:
                raise ModelFormatError("tensor %d (%r) of shape %s declares %d bytes; this runtime takes at most %d"
                                       % (t.index, t.name, t.shape, t.nbytes, MAX_TENSOR_BYTES))
        self.model = model
        self.sg = sg
        self.tensors = sg.tensors
        _load_families()
        missing = sorted(set(op.name for op in sg.operators if op.name not in KERNELS))
        if missing:
            raise UnsupportedOperatorError(
                "the model uses operator(s) %s, which the numpy runtime does not implement; supported: %s"
                % (", ".join(missing), ", ".join(sorted(KERNELS))))
        for op in sg.operators:
            if not op.outputs:
                raise ModelFormatError("corrupt .tflite: operator %d (%s) has no output" % (op.index, op.name))
        self._plan()  # before any kernel is built: a model over the budget allocates nothing
        self.need_bytes = check_budget(sg, self.planned_bytes, memory_budget)
        self.kernels = [build_kernel(op, sg.tensors) for op in sg.operators]
        produced = set(sg.inputs)
        for op in sg.operators:
            for i in op.inputs:
                t = sg.tensors[i] if i >= 0 else None
                if t is not None and t.data is None and i not in produced:
                    raise ModelFormatError("corrupt .tflite: operator %d (%s) reads tensor %d (%r) before anything writes it"
                                           % (op.index, op.name, i, t.name))
            produced.update(op.outputs)
        for o in sg.outputs:
            if o not in produced:
                raise ModelFormatError("corrupt .tflite: output tensor %d is never written" % o)
        self.batch_safe = all(getattr(k, "batch_safe", True) for k in self.kernels) and all(
            len(sg.tensors[i].shape) >= 1 and sg.tensors[i].shape[0] == 1 for i in sg.inputs)
        # Kernels that return buffers they keep (and reshapes may pass them on as views):
        # model outputs are then copied before they leave run().
        self.copy_outputs = any(getattr(k, "reuses_output", False) for k in self.kernels)
        self._steps, n_slots, constants = compile_steps(sg, self.kernels, self.free_after)
        self._slots = [None] * n_slots  # constants placed once; activations come and go per call
        for i, data in constants:
            self._slots[i] = data
        self._outs = tuple(sg.outputs)

    def _plan(self):
        sg = self.sg
        n_ops = len(sg.operators)
        first, last = {}, {}
        for i in sg.inputs:
            first[i] = 0
            last[i] = 0
        for k, op in enumerate(sg.operators):
            for i in op.outputs:
                first.setdefault(i, k)
                last[i] = max(last.get(i, k), k)
            for i in op.inputs:
                if i >= 0 and sg.tensors[i].data is None:
                    last[i] = max(last.get(i, k), k)
        for i in sg.outputs:
            last[i] = n_ops
        ids = sorted(first)
        sizes = [sg.tensors[i].nbytes for i in ids]
        _, self.planned_bytes = plan_memory(sizes, [first[i] for i in ids], [last[i] for i in ids])
        self.weight_bytes = sum(t.data.nbytes for t in sg.tensors if t.data is not None)
        # Free each activation after the operator that reads it last.
        self.free_after = [[] for _ in range(n_ops)]
        keep = set(sg.outputs) | set(sg.inputs)
        for i in ids:
            if i not in keep and last[i] < n_ops:
                self.free_after[last[i]].append(i)

    def run(self, feeds):
        """feeds: {input tensor index: array with batch on axis 0} -> {output index: array}."""
        values = list(self._slots)  # a call of its own: another thread's call keeps its list
        for i, x in feeds.items():
            values[i] = x
        step = None
        try:
            for step in self._steps:
                kernel, ins, out, free, _ = step
                values[out] = kernel([values[i] for i in ins])
                for i in free:
                    values[i] = None
        except (IndexError, ValueError, TypeError) as exc:
            if isinstance(exc, FieldpickError):
                raise
            # The kernels were checked at load; this is a model whose shapes contradict each other.
            op = self.sg.operators[step[4]]
            raise ModelFormatError("operator %d (%s) failed on tensors %s: %s: %s" % (
                op.index, op.name, [self.tensors[i].shape for i in op.inputs if i >= 0],
                type(exc).__name__, exc)) from None
        if self.copy_outputs:
            return {o: np.array(values[o]) for o in self._outs}
        return {o: values[o] for o in self._outs}


class Interpreter:
    """One interface over the numpy runtime and the optional TFLite/ONNX runtimes.

    path_or_bytes: a .tflite file (or its bytes); for backend "onnx", an
    .onnx file.  num_threads: threads for back ends that use them (numpy's
    BLAS threads are set by OMP/OPENBLAS_NUM_THREADS before numpy loads).
    memory_budget: bytes the numpy back end may need at run time (see
    :mod:`fieldpick.edge.tflite.budget`; None: no limit); a model that may
    need more is refused at load with :class:`ModelBudgetError`.
    """

    def __init__(self, path_or_bytes, backend="numpy", num_threads=1, memory_budget=DEFAULT_MEMORY_BUDGET):
        if backend not in BACKENDS:
            raise ConfigError("unknown backend %r; choose one of: %s" % (backend, ", ".join(BACKENDS)))
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ConfigError("num_threads must be an integer >= 1, got %r" % (num_threads,))
        self.backend = backend
        self.num_threads = num_threads
        data, self.source = _load_bytes(path_or_bytes)
        self._feeds = {}
        self._results = {}
        if backend == "numpy":
            self._engine = _NumpyEngine(data, memory_budget)
            sg = self._engine.sg
            self._inputs = [_details(sg.tensors[i]) for i in sg.inputs]
            self._outputs = [_details(sg.tensors[i]) for i in sg.outputs]
            self.planned_bytes = self._engine.planned_bytes
            log.debug("loaded %s: %d operators, %d activation bytes planned, batchable=%s", self.source,
                      len(sg.operators), self.planned_bytes, self._engine.batch_safe)
        elif backend in ("litert", "tflite"):
            self._engine = _TfliteEngine(data, backend, num_threads)
            self._inputs, self._outputs = self._engine.details()
            self.planned_bytes = None
        else:
            self._engine = _OnnxEngine(data, num_threads)
            self._inputs, self._outputs = self._engine.details()
            self.planned_bytes = None

    # -- TFLite-style interface -------------------------------------------------
    def get_input_details(self) -> List[dict]:
        return [dict(d) for d in self._inputs]

    def get_output_details(self) -> List[dict]:
        return [dict(d) for d in self._outputs]

    def _detail(self, index, which):
        for d in which:
            if d["index"] == index:
                return d
        return None

    def set_tensor(self, index, value):
        d = self._detail(index, self._inputs)
        if d is None:
            raise ConfigError("tensor %r is not an input; inputs: %s" % (index, [x["index"] for x in self._inputs]))
        value = np.asarray(value)
        if value.dtype.type is not d["dtype"]:
            raise DataError("input %r must be %s, got %s" % (d["name"], np.dtype(d["dtype"]).name, value.dtype))
        want = tuple(int(n) for n in d["shape"])
        if tuple(value.shape) != want:
            raise DataError("input %r must have shape %s, got %s" % (d["name"], want, value.shape))
        self._feeds[index] = np.array(value)

    def invoke(self):
        missing = [d["name"] for d in self._inputs if d["index"] not in self._feeds]
        if missing:
            raise ConfigError("set_tensor was not called for input(s) %s" % missing)
        self._results = self._engine.run(self._feeds)

    def get_tensor(self, index):
        if self._detail(index, self._outputs) is None:
            raise ConfigError("tensor %r is not an output; outputs: %s" % (index, [x["index"] for x in self._outputs]))
        if index not in self._results:
            raise ConfigError("no result yet: call invoke() first")
        return np.array(self._results[index])

    # -- batches -----------------------------------------------------------------
    def run(self, x, dequantize=False):
        """Run a batch of windows: x (B, T, C) -> list of outputs, each with B first.

        x may be float32 (quantised here with the input's scale and zero
        point when the model takes int8) or already of the model's input
        type.  With ``dequantize=True`` quantised outputs come back as
        float32 real values.  Only single-input models are supported here.
        """
        if len(self._inputs) != 1:
            raise ConfigError("run() takes single-input models; this one has %d inputs: use set_tensor/invoke"
                              % len(self._inputs))
        d = self._inputs[0]
        x = np.asarray(x)
        want = tuple(int(s) for s in d["shape"])
        if x.ndim == len(want) - 1:
            x = x[None]
        if x.ndim != len(want) or tuple(x.shape[1:]) != want[1:]:
            raise DataError("run() takes windows of shape (B,) + %s, got %s" % (want[1:], x.shape))
        x = self._convert_input(x, d)
        outs = self._engine.run_batch(d["index"], x) if hasattr(self._engine, "run_batch") else None
        if outs is None:
            outs = self._run_batch(d["index"], x)
        results = [outs[o["index"]] for o in self._outputs]
        if dequantize:
            results = [_dequantize(r, o) for r, o in zip(results, self._outputs)]
        return results

    def quantize_input(self, x):
        """Windows (B, T, C) as the model's input type: float32 is quantised with the input's
        scale and zero point (round half away from zero, then clamped), as TFLite's QUANTIZE does."""
        return self._convert_input(np.asarray(x), self._inputs[0])

    def op_times(self, x, runs=5):
        """Per-operator wall time of the numpy engine: [(op index, op name, median seconds)].

        x: one batch as :meth:`run` takes it.  The first of ``runs + 1`` passes warms up.
        """
        if not isinstance(self._engine, _NumpyEngine):
            raise ConfigError("op_times() profiles the numpy back end; this interpreter runs %r" % self.backend)
        eng = self._engine
        d = self._inputs[0]
        x = self._convert_input(np.asarray(x), d)
        times = np.zeros((runs + 1, len(eng.kernels)))
        tensors = eng.tensors
        for r in range(runs + 1):
            values = {d["index"]: x}
            for k, op in enumerate(eng.sg.operators):
                ins = [None if i < 0 else (values[i] if tensors[i].data is None else tensors[i].data) for i in op.inputs]
                t0 = time.perf_counter()
                values[op.outputs[0]] = eng.kernels[k](ins)
                times[r, k] = time.perf_counter() - t0
        med = np.median(times[1:], axis=0)
        return [(op.index, op.name, float(med[k])) for k, op in enumerate(eng.sg.operators)]

    def _convert_input(self, x, d):
        dtype = np.dtype(d["dtype"])
        if x.dtype == dtype:
            return x
        if x.dtype.kind != "f":
            raise DataError("input %r must be float32 or %s, got %s" % (d["name"], dtype.name, x.dtype))
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise DataError("input %r holds NaN or infinite samples; clean or gap-fill the window first" % d["name"])
        if dtype.kind in "iu":
            scale, zp = d["quantization"]
            if scale == 0:
                raise ModelFormatError("input %r is %s without a quantisation scale" % (d["name"], dtype.name))
            info = np.iinfo(dtype)
            q = round_half_away(x / np.float32(scale))  # float64, a new array: updated in place
            q += zp
            return np.clip(q, info.min, info.max, out=q).astype(dtype)
        return x.astype(dtype)

    def _run_batch(self, index, x):
        eng = self._engine
        if isinstance(eng, _NumpyEngine) and eng.batch_safe:
            # Chunks of about CHUNK_BYTES of float working set (8 bytes per planned int8
            # byte): 14 windows of the default model.  On 24 windows of it (2026-12, x86_64,
            # one thread) chunks of 1, 3, 8 and 24 windows took 1.74, 1.18, 1.00 and 0.99x
            # the time of chunks of 8: per-call costs fall with the chunk until about 8.
            step = max(1, CHUNK_BYTES // max(1, 8 * eng.planned_bytes))
            if x.shape[0] <= step:
                return eng.run({index: x})
            parts = [eng.run({index: x[b:b + step]}) for b in range(0, x.shape[0], step)]
            return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
        parts = [eng.run({index: x[b:b + 1]}) for b in range(x.shape[0])]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def _dequantize(r, d):
    scale, zp = d["quantization"]
    if np.dtype(d["dtype"]).kind in "iu" and scale:
        return (np.float32(scale) * (r.astype(np.int32) - zp).astype(np.float32)).astype(np.float32)
    return r


class _TfliteEngine:
    """ai-edge-litert or tflite-runtime behind the numpy engine's interface."""

    def __init__(self, data, backend, num_threads):
        try:
            if backend == "litert":
                from ai_edge_litert.interpreter import Interpreter as _TFLInterpreter
            else:
                from tflite_runtime.interpreter import Interpreter as _TFLInterpreter
        except ImportError as exc:
            pkg = "ai-edge-litert" if backend == "litert" else "tflite-runtime"
            raise BackendError("backend %r needs the package %s (pip install %s): %s" % (backend, pkg, pkg, exc)) from None
        self._cls = _TFLInterpreter
        self._data = data
        self._threads = num_threads
        try:
            self._it = _TFLInterpreter(model_content=data, num_threads=num_threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError("%s could not load the model: %s" % (backend, exc)) from None
        self._batched = {}

    def details(self):
        return self._it.get_input_details(), self._it.get_output_details()

    def run(self, feeds, it=None):
        it = it or self._it
        for k, v in feeds.items():
            it.set_tensor(k, v)
        it.invoke()
        return {d["index"]: it.get_tensor(d["index"]) for d in it.get_output_details()}

    def run_batch(self, index, x):
        b = x.shape[0]
        if b == 1:
            return self.run({index: x})
        it = self._batched.get(b)
        if it is None and b not in self._batched:
            try:
                it = self._cls(model_content=self._data, num_threads=self._threads)
                it.resize_tensor_input(index, list(x.shape))
                it.allocate_tensors()
                out = self.run({index: x}, it)
                self._batched[b] = it
                return out
            except (ValueError, RuntimeError) as exc:
                log.info("this model does not take a batch of %d in TFLite (%s); running windows one by one", b, exc)
                self._batched[b] = None
                return None
        if it is None:
            return None
        return self.run({index: x}, it)


class _OnnxEngine:
    """onnxruntime on the ONNX twin of a model (float32 in and out)."""

    _TYPES = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
              "tensor(int32)": np.int32, "tensor(int64)": np.int64}

    def __init__(self, data, num_threads):
        try:
            import onnxruntime as ort  # lazy: optional back end, only when asked for
        except ImportError as exc:
            raise BackendError("backend 'onnx' needs onnxruntime (pip install onnxruntime): %s" % exc) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        try:
            self._sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError("onnxruntime could not load the model: %s" % exc) from None
        self._in = self._sess.get_inputs()
        self._out = self._sess.get_outputs()

    def _d(self, k, a):
        shape = [s if isinstance(s, int) else 1 for s in a.shape]
        return {"name": a.name, "index": k, "shape": np.array(shape, np.int32),
                "shape_signature": np.array([s if isinstance(s, int) else -1 for s in a.shape], np.int32),
                "dtype": self._TYPES.get(a.type, np.float32), "quantization": (0.0, 0),
                "quantization_parameters": {"scales": np.zeros(0, np.float32), "zero_points": np.zeros(0, np.int32),
                                            "quantized_dimension": 0}}

    def details(self):
        return ([self._d(k, a) for k, a in enumerate(self._in)],
                [self._d(len(self._in) + k, a) for k, a in enumerate(self._out)])

    def run(self, feeds):
        res = self._sess.run(None, {self._in[k].name: v for k, v in feeds.items()})
        return {len(self._in) + k: r for k, r in enumerate(res)}

    def run_batch(self, index, x):
        try:
            return self.run({index: x})
        except Exception as exc:  # a fixed batch dimension: fall back to windows one by one
            log.info("onnxruntime rejected a batch of %d (%s); running windows one by one", x.shape[0], exc)
            return None
