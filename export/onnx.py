"""PyTorch -> ONNX: one file, static shapes, checked by ``onnx.checker`` and run by onnxruntime.

The exporter is ``torch.onnx.export(dynamo=False, opset_version=17)`` (the
TorchScript route; it and the dynamo route at opset 18 both match onnxruntime to ~1e-6).  With ``dynamo=True`` we pass
``external_data=False`` so that the weights stay inside the one file.

The graph input is named ``x`` with shape (1, C, T) (NCT, the PyTorch
layout); outputs are named ``y0``, ``y1``, ... in the order the model
returns them.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

from fieldpick.edge.errors import BackendError, ModelFormatError, NotAvailableError

__all__ = ["INPUT_NAME", "OPSETS", "export_onnx", "check_onnx", "run_onnx", "run_torch"]

log = logging.getLogger(__name__)

INPUT_NAME = "x"
#: opset -> exporter route
OPSETS = {17: "torchscript", 18: "dynamo"}
_INSTALL = "pip install 'fieldpick[export]' -c constraints.txt"


def _outputs_list(out):
    if isinstance(out, (tuple, list)):
        return list(out)
    if isinstance(out, dict):
        return list(out.values())
    return [out]


def run_torch(model, windows, batch=64):
    """Run ``model`` on (N, C, T) float32 windows; returns a list of (N, ...) float32 arrays."""
    import torch

    model.eval()
    chunks = []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            out = model(torch.from_numpy(np.ascontiguousarray(windows[i:i + batch], dtype=np.float32)))
            chunks.append([o.detach().cpu().numpy().astype(np.float32) for o in _outputs_list(out)])
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def export_onnx(model, path, channels, window_samples, opset=17):
    """Write ``model`` as one ONNX file with input ``x`` of shape (1, channels, window_samples).

    Returns the output names.  Raises :class:`ModelFormatError` when the
    exporter fails or the result does not pass :func:`check_onnx`.
    """
    import torch

    if opset not in OPSETS:
        raise ModelFormatError("ONNX opset %r; allowed: %s" % (opset, ", ".join(map(str, OPSETS))))
    model.eval()
    x = torch.zeros(1, channels, window_samples, dtype=torch.float32)
    with torch.no_grad():
        n_out = len(_outputs_list(model(x)))
    names = ["y%d" % i for i in range(n_out)]
    tmp = path + ".tmp"
    kwargs = dict(input_names=[INPUT_NAME], output_names=names, opset_version=opset)
    if OPSETS[opset] == "dynamo":
        kwargs.update(dynamo=True, external_data=False)
    else:
        kwargs.update(dynamo=False, do_constant_folding=True)
    try:
        with warnings.catch_warnings():
            # the TorchScript route is deprecated upstream but is the one TOOLCHAIN.md measured
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (x,), tmp, **kwargs)
    except Exception as exc:  # the exporters raise many kinds
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ModelFormatError(
            "torch.onnx.export (opset %d, %s) failed for %s: %s"
            % (opset, OPSETS[opset], type(model).__name__, exc)
        ) from exc
    if os.path.exists(tmp + ".data"):
        raise ModelFormatError("the exporter wrote a side file %s.data; expected one file" % tmp)
    check_onnx(tmp, (1, channels, window_samples))
    os.replace(tmp, path)
    log.info("wrote %s (opset %d, %d outputs, %d bytes)", path, opset, n_out, os.path.getsize(path))
    return names


def check_onnx(path, input_shape):
    """``onnx.checker`` (full check) plus: one input of ``input_shape``, all shapes static."""
    import onnx

    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ModelFormatError("%s fails onnx.checker: %s" % (path, exc)) from exc
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise ModelFormatError("%s has %d inputs (%s); expected one" % (path, len(inputs), [i.name for i in inputs]))
    for vi in inputs + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            raise ModelFormatError(
                "%s tensor %r has a dynamic shape %s; export with static shapes"
                % (path, vi.name, [d.dim_param or d.dim_value for d in dims])
            )
    got = tuple(d.dim_value for d in inputs[0].type.tensor_type.shape.dim)
    if got != tuple(input_shape):
        raise ModelFormatError("%s input has shape %s; expected %s" % (path, got, tuple(input_shape)))
    return model


def run_onnx(path, windows):
    """Run an ONNX file on (N, C, T) float32 windows with onnxruntime (one window per call)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise NotAvailableError("onnxruntime is not installed: %s" % _INSTALL) from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BackendError("onnxruntime cannot load %s: %s" % (path, exc)) from exc
    outs = []
    for w in windows:
        outs.append(sess.run(None, {INPUT_NAME: np.ascontiguousarray(w[None], dtype=np.float32)}))
    return [np.concatenate([o[k] for o in outs]).astype(np.float32) for k in range(len(outs[0]))]
