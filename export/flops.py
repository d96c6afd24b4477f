"""FLOPs per window, counted from an ONNX graph (not guessed from the code).

The one convention used everywhere (training logs, cross-validation,
benchmarks, the model card's ``flops_per_window``): one multiply-accumulate
is 2 FLOPs, and only the multiply-accumulates of convolutions (Conv,
ConvTranspose), matrix products (MatMul, Gemm) and recurrent cells (LSTM,
GRU: the input and recurrent matrix products) count.  Bias adds,
normalisations (folded into the convolutions at export), activations,
element-wise ops, pools and shape ops count 0: they are a few per cent of
the total and depend on how an exporter fuses them.  Shapes come from
``onnx.shape_inference``; an op whose shapes cannot be inferred, or an op
not listed here, is an error, not a silent zero, because the count would
then be wrong.

Example: ``Conv1d(3, 8, kernel_size=7, padding=3)`` over 400 samples is
400 * 8 * 3 * 7 = 67,200 MACs = 134,400 FLOPs.  :func:`module_flops`
counts a PyTorch module the same way, through its ONNX export.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from fieldpick.edge.errors import ModelFormatError, UnsupportedOperatorError

__all__ = ["count_flops", "module_flops", "ELEMENTWISE_OPS", "FREE_OPS"]

log = logging.getLogger(__name__)

#: no multiply-accumulates: 0 FLOPs (the convention counts MACs only)
ELEMENTWISE_OPS = frozenset(
    "Add Sub Mul Div Relu LeakyRelu PRelu Clip Sigmoid HardSigmoid HardSwish Tanh Exp Log Sqrt "
    "Neg Abs Max Min Pow Erf Elu Selu Softplus Mish Gelu Where Equal Greater Less Not And Or "
    "Sign Floor Ceil Round Reciprocal Cast QuantizeLinear DequantizeLinear".split()
)
#: data movement only: 0 FLOPs
FREE_OPS = frozenset(
    "Reshape Transpose Pad Slice Concat Split Squeeze Unsqueeze Flatten Identity Shape Gather "
    "Constant ConstantOfShape Expand Tile Resize Upsample DepthToSpace SpaceToDepth Dropout "
    "Range ArgMax".split()
)
#: arithmetic without multiply-accumulates (normalisations, reductions, pools, softmax): 0 FLOPs
OTHER_OPS = frozenset(
    "BatchNormalization InstanceNormalization LayerNormalization Softmax LogSoftmax GlobalAveragePool "
    "GlobalMaxPool ReduceMean ReduceMax ReduceSum MaxPool AveragePool".split()
)


def _shape(shapes, name, node):
    if name not in shapes:
        raise ModelFormatError(
            "cannot count FLOPs of %s node %r: the shape of %r is unknown after shape inference "
            "(export with static shapes)" % (node.op_type, node.name, name)
        )
    return shapes[name]


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def _node_flops(node, shapes):
    """2 x the multiply-accumulates of ``node``; 0 for ops without any."""
    op = node.op_type
    if op in FREE_OPS or op in ELEMENTWISE_OPS or op in OTHER_OPS:
        return 0
    out = _shape(shapes, node.output[0], node)
    n_out = int(np.prod(out))
    if op == "Conv":
        w = _shape(shapes, node.input[1], node)  # (Cout, Cin/group, *kernel)
        return 2 * n_out * int(np.prod(w[1:]))
    if op == "ConvTranspose":
        x = _shape(shapes, node.input[0], node)  # (N, Cin, *spatial)
        w = _shape(shapes, node.input[1], node)  # (Cin, Cout/group, *kernel)
        return 2 * int(np.prod(x)) * int(np.prod(w[1:]))
    if op in ("MatMul", "Gemm"):
        a = _shape(shapes, node.input[0], node)
        k = a[0] if (op == "Gemm" and _attr(node, "transA", 0)) else a[-1]
        return 2 * n_out * int(k)
    if op in ("LSTM", "GRU"):
        x = _shape(shapes, node.input[0], node)  # (T, B, I) (layout 0)
        r = _shape(shapes, node.input[2], node)  # (D, gates * H, H)
        d, gh, h = r
        steps, batch = (x[1], x[0]) if _attr(node, "layout", 0) else (x[0], x[1])
        return 2 * steps * batch * d * gh * (x[-1] + h)
    raise UnsupportedOperatorError(
        "cannot count FLOPs of ONNX op %r (node %r); counted ops: Conv, ConvTranspose, MatMul, "
        "Gemm, LSTM, GRU; free ops: normalisations, pools, Softmax, element-wise (%s) and shape ops (%s)"
        % (op, node.name, ", ".join(sorted(ELEMENTWISE_OPS)), ", ".join(sorted(FREE_OPS)))
    )


def count_flops(model_or_path):
    """FLOPs of one forward pass of an ONNX model with static shapes.

    Returns ``(total, by_op)`` where ``by_op`` maps op type -> FLOPs (ordered
    by first appearance).  Batch size is whatever the graph's input says
    (export uses 1, so the total is per window).
    """
    import onnx

    model = onnx.load(model_or_path) if isinstance(model_or_path, str) else model_or_path
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [int(d.dim_value) for d in dims]
    for init in g.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    by_op = OrderedDict()
    for node in g.node:
        f = _node_flops(node, shapes)
        by_op[node.op_type] = by_op.get(node.op_type, 0) + f
    total = int(sum(by_op.values()))
    log.debug("FLOPs per forward pass: %d (%s)", total, dict(by_op))
    return total, by_op


def module_flops(module, x):
    """FLOPs of one forward pass of a PyTorch ``module`` on the example input ``x`` (:func:`count_flops`'s
    convention, counted from the module's ONNX export)."""
    import os
    import tempfile
    import warnings

    import torch

    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as export/onnx.py
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants
            torch.onnx.export(module, (x,), path, dynamo=False, do_constant_folding=True, opset_version=17)
        total, _ = count_flops(path)
    return total
