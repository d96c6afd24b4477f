"""ONNX -> TFLite float32 and full int8 with onnx2tf, and what the files hold.

onnx2tf (1.29.24 here) runs in a subprocess with a timeout: it is slow
(~60 s), loud, and REWRITES its input .onnx in place, so it converts a copy
in a scratch folder.  Full int8 is calibrated on windows the caller gives,
already normalised and in TF layout (N, T, C), passed with mean 0 and std 1
(without them onnx2tf applies ImageNet's mean and std).

The layout changes on the way: a (1, C, T) PyTorch input becomes (1, T, C)
in TFLite, and (1, C, T) outputs become (1, T, C).

:func:`inspect_tflite` lists a file's operators (the histogram the numpy
runtime must implement), its I/O tensors with scale and zero point, and
whether every operator computes in integers (full int8).  RESIZE, GATHER and
TRANSPOSE in an edge graph are red flags: usually wasted work from layout
juggling or upsampling.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from fieldpick.edge.errors import (
    BackendError,
    ModelFormatError,
    NotAvailableError,
    UnsupportedOperatorError,
)

__all__ = [
    "RED_FLAG_OPS",
    "ConversionError",
    "TensorInfo",
    "TfliteInfo",
    "convert",
    "inspect_tflite",
    "require_full_integer",
    "run_tflite",
]

log = logging.getLogger(__name__)

_INSTALL = "pip install 'fieldpick[export]' -c constraints.txt  (onnx2tf==1.29.24, tensorflow==2.19.0)"
_RUNTIME_INSTALL = "pip install 'fieldpick[runtimes]'  (ai-edge-litert==2.1.0)"

#: operators that mean wasted work on the edge path (layout juggling, upsampling)
RED_FLAG_OPS = ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "GATHER", "GATHER_ND", "TRANSPOSE")


class ConversionError(ModelFormatError):
    """onnx2tf failed or produced something unusable (the message holds its last lines)."""


def _onnx2tf_command():
    exe = os.path.join(os.path.dirname(sys.executable), "onnx2tf")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("onnx2tf")
    if found:
        return [found]
    raise NotAvailableError("the onnx2tf converter is not installed: %s" % _INSTALL)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(text, lines=25):
    """The last non-blank lines of a converter's output, without colour codes."""
    keep = [ln for ln in _ANSI.sub("", text).splitlines() if ln.strip()]
    return "\n".join(keep[-lines:])


def _headline(text):
    """The last line of a converter's output that names an error (or its last line)."""
    lines = [ln.strip() for ln in _ANSI.sub("", text).splitlines() if ln.strip()]
    nodes = [ln.split("onnx_op_name:", 1)[1].strip() for ln in lines if ln.startswith("ERROR: onnx_op_name:")]
    where = "at ONNX node %s: " % nodes[-1] if nodes else ""
    for i in range(len(lines) - 1, -1, -1):
        if "Error" in lines[i] or "ERROR" in lines[i]:
            head = lines[i]
            if head.endswith("(type TFOpLambda).") and i + 1 < len(lines):
                head += " " + lines[i + 1]  # keras puts the reason on the next line
            return where + head[:400]
    return where + (lines[-1][:400] if lines else "(no output)")


def convert(onnx_path, out_dir, calibration_ntc=None, input_name="x", timeout_s=900,
            command=None):
    """Convert ``onnx_path`` to TFLite files in ``out_dir``.

    calibration_ntc: (N, T, C) float32 normalised windows for full int8, or
    None for float32 only.  Returns a dict ``{"float32": path, "int8": path}``
    (no "int8" without calibration) of files inside a scratch folder under
    ``out_dir``; the caller moves them where they belong.  ``command`` is the
    converter command line prefix (default: the installed ``onnx2tf``).
    """
    command = list(command) if command else _onnx2tf_command()
    scratch = tempfile.mkdtemp(prefix="onnx2tf-", dir=os.path.abspath(out_dir))
    copy = os.path.join(scratch, "model.onnx")
    shutil.copyfile(onnx_path, copy)  # onnx2tf rewrites its input in place
    tf_dir = os.path.join(scratch, "tf")
    args = command + ["-i", copy, "-o", tf_dir]
    if calibration_ntc is not None:
        calib = np.ascontiguousarray(calibration_ntc, dtype=np.float32)
        if calib.ndim != 3 or not np.isfinite(calib).all():
            raise ModelFormatError(
                "calibration windows have shape %s (finite: %s); expected finite (N, T, C) float32"
                % (calib.shape, bool(np.isfinite(calib).all()))
            )
        c = calib.shape[2]
        calib_path = os.path.join(scratch, "calib_ntc.npy")
        np.save(calib_path, calib)
        zeros = "[[[%s]]]" % ",".join(["0"] * c)
        ones = "[[[%s]]]" % ",".join(["1"] * c)
        args += ["-oiqt", "-qt", "per-channel", "-cind", input_name, calib_path, zeros, ones]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    log.info("running %s", " ".join(args))
    t0 = time.time()
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout_s, cwd=scratch)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        raise ConversionError(
            "onnx2tf did not finish within %d s converting %s; last lines:\n%s"
            % (timeout_s, onnx_path, _tail(out))
        ) from None
    except OSError as exc:
        raise NotAvailableError("cannot run %s (%s): %s" % (args[0], exc.strerror, _INSTALL)) from None
    text = proc.stdout.decode("utf-8", "replace")
    with open(os.path.join(scratch, "onnx2tf.log"), "w", encoding="utf-8") as f:
        f.write(text)
    if proc.returncode != 0:
        raise ConversionError(
            "onnx2tf exited with status %d converting %s: %s (full log %s); last lines:\n%s"
            % (proc.returncode, onnx_path, _headline(text), os.path.join(scratch, "onnx2tf.log"), _tail(text))
        )
    made = {"float32": os.path.join(tf_dir, "model_float32.tflite")}
    if calibration_ntc is not None:
        made["int8"] = os.path.join(tf_dir, "model_full_integer_quant.tflite")
    for kind, path in made.items():
        if not os.path.exists(path):
            have = sorted(os.listdir(tf_dir)) if os.path.isdir(tf_dir) else []
            raise ConversionError(
                "onnx2tf exited 0 but wrote no %s file %s (it wrote %s); last lines:\n%s"
                % (kind, os.path.basename(path), have, _tail(text))
            )
    log.info("onnx2tf converted %s in %.1f s", onnx_path, time.time() - t0)
    made["scratch"] = scratch
    return made


@dataclass
class TensorInfo:
    """One input or output tensor of a .tflite file."""

    name: str
    shape: List[int]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0


@dataclass
class TfliteInfo:
    """What a .tflite file holds: operators, I/O tensors, numeric kinds."""

    path: str
    ops: List[str]
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    float_ops: List[str] = field(default_factory=list)

    @property
    def histogram(self) -> Dict[str, int]:
        return dict(sorted(Counter(self.ops).items()))

    @property
    def red_flags(self) -> Dict[str, int]:
        return {op: n for op, n in self.histogram.items() if op in RED_FLAG_OPS}

    @property
    def full_integer(self) -> bool:
        """int8 I/O and no operator computing in float (no float kernels, no Flex ops)."""
        io_int8 = all(t.dtype == "int8" for t in self.inputs + self.outputs)
        return io_int8 and not self.float_ops


def _interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise NotAvailableError("ai-edge-litert is needed to run .tflite files here: %s" % _RUNTIME_INSTALL) from None
    try:
        # The builtin kernels without XNNPACK: what the numpy runtime is held to.
        it = Interpreter(model_path=path, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
    except Exception as exc:
        raise BackendError("ai-edge-litert cannot load %s: %s" % (path, exc)) from exc
    return it


def _tensor_info(d):
    scale, zp = d["quantization"]
    return TensorInfo(str(d["name"]), [int(n) for n in d["shape"]], np.dtype(d["dtype"]).name,
                      float(scale), int(zp))


def inspect_tflite(path):
    """Operators, I/O tensors and float-computing operators of a .tflite file."""
    it = _interpreter(path)
    ops, float_ops = [], []
    for op in it._get_ops_details():
        name = str(op["op_name"])
        ops.append(name)
        kinds = {np.dtype(t).name for t in list(op.get("operand_types", [])) + list(op.get("result_types", []))}
        # Flex (TensorFlow) and custom ops run in float on a host TF, never on the station.
        if name.startswith("Flex") or name == "CUSTOM" or kinds & {"float32", "float16"}:
            float_ops.append(name)
    return TfliteInfo(path, ops, [_tensor_info(d) for d in it.get_input_details()],
                      [_tensor_info(d) for d in it.get_output_details()], float_ops)


def require_full_integer(info):
    """Raise :class:`UnsupportedOperatorError` naming what keeps ``info`` from full int8."""
    problems = []
    for t in info.inputs + info.outputs:
        if t.dtype != "int8":
            problems.append("tensor %r is %s, not int8" % (t.name, t.dtype))
    if info.float_ops:
        problems.append("operator(s) computing in float: %s" % ", ".join(sorted(Counter(info.float_ops))))
    if problems:
        raise UnsupportedOperatorError(
            "%s is not full int8: %s. These ops cannot be quantised by the TFLite converter; "
            "replace them in the PyTorch model (e.g. LSTM -> convolutions) or ship the float32 file"
            % (os.path.basename(info.path), "; ".join(problems))
        )
    return info


def run_tflite(path, windows_ntc):
    """Run a .tflite file on (N, T, C) float32 windows, one per call.

    Integer inputs (int8, int16) are quantised with the input's scale and
    zero point and integer outputs dequantised, so the caller always sees
    float32.  Returns a list
    of (N, ...) arrays, one per output in the file's output order.
    """
    it = _interpreter(path)
    ind = it.get_input_details()
    if len(ind) != 1:
        raise ModelFormatError("%s has %d inputs; expected one" % (path, len(ind)))
    ind = ind[0]
    outd = it.get_output_details()
    want = tuple(int(n) for n in ind["shape"][1:])
    if tuple(windows_ntc.shape[1:]) != want:
        raise ModelFormatError(
            "windows have shape %s per window but %s expects %s" % (windows_ntc.shape[1:], path, want)
        )
    results = [[] for _ in outd]
    for w in windows_ntc:
        x = w[None].astype(np.float32)
        kind = np.dtype(ind["dtype"])
        if kind.kind in "iu":  # quantised input (int8; int16 in the 16x8 variant)
            scale, zp = ind["quantization"]
            lim = np.iinfo(kind)
            x = np.clip(np.round(x / scale) + zp, lim.min, lim.max).astype(kind)
        it.set_tensor(ind["index"], x)
        it.invoke()
        for k, d in enumerate(outd):
            y = it.get_tensor(d["index"])
            if np.dtype(d["dtype"]) in (np.int8, np.uint8, np.int16):
                scale, zp = d["quantization"]
                y = (y.astype(np.float32) - zp) * scale
            results[k].append(y.astype(np.float32))
    return [np.concatenate(r) for r in results]
