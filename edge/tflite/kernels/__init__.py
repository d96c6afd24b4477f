"""Operator kernels of the numpy TFLite runtime, one module per operator family.

A kernel *builder* takes an :class:`~fieldpick.edge.tflite.reader.Operator`
and the subgraph's tensors at load time, checks that it can run them
(types, options, quantisation), precomputes what it can (weights as float
matrices, fixed-point multipliers, lookup tables) and returns a function
``f(inputs) -> output`` over numpy arrays whose first axis is the batch.
A builder that meets something it cannot run raises
:class:`~fieldpick.edge.errors.UnsupportedOperatorError` naming it, so a
model fails at load, never at the first invoke.  A function that cannot be
batched along axis 0 carries ``batch_safe = False``.
"""

from __future__ import annotations

from ...errors import ModelFormatError, UnsupportedOperatorError

__all__ = ["KERNELS", "register", "build_kernel", "unsupported"]

KERNELS = {}


def register(*names):
    """Decorator: register a builder for one or more operator names."""

    def deco(fn):
        for n in names:
            KERNELS[n] = fn
        return fn

    return deco


def unsupported(op, why):
    return UnsupportedOperatorError("operator %d (%s): %s" % (op.index, op.name, why))


# Operators whose tensors must have a fixed rank: name -> {input or output slot: rank}.
_RANKS = {
    "CONV_2D": {"in0": 4, "in1": 4, "out0": 4},
    "DEPTHWISE_CONV_2D": {"in0": 4, "in1": 4, "out0": 4},
    "TRANSPOSE_CONV": {"in1": 4, "in2": 4, "out0": 4},
    "AVERAGE_POOL_2D": {"in0": 4, "out0": 4},
    "MAX_POOL_2D": {"in0": 4, "out0": 4},
    "FULLY_CONNECTED": {"in1": 2},
    "RESIZE_NEAREST_NEIGHBOR": {"in0": 4, "out0": 4},
}
# Fewest inputs each operator needs.
_MIN_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "TRANSPOSE_CONV": 3, "FULLY_CONNECTED": 2, "ADD": 2,
               "SUB": 2, "MUL": 2, "RESHAPE": 1, "TRANSPOSE": 2, "PAD": 2, "STRIDED_SLICE": 4, "SLICE": 3,
               "GATHER": 2, "MEAN": 2, "RESIZE_NEAREST_NEIGHBOR": 2, "CONCATENATION": 1}


def _check_structure(op, tensors):
    if not op.outputs:
        raise ModelFormatError("corrupt .tflite: operator %d (%s) has no output" % (op.index, op.name))
    need = _MIN_INPUTS.get(op.name, 1)
    present = [i for i in op.inputs[:need] if i >= 0]
    if len(op.inputs) < need or len(present) < need:
        raise ModelFormatError("corrupt .tflite: operator %d (%s) has inputs %s; it needs at least %d"
                               % (op.index, op.name, list(op.inputs), need))
    for slot, rank in _RANKS.get(op.name, {}).items():
        k = int(slot[-1])
        idx = op.inputs[k] if slot.startswith("in") else op.outputs[k]
        if idx < 0 or len(tensors[idx].shape) != rank:
            raise ModelFormatError("corrupt .tflite: operator %d (%s) %s must be a rank-%d tensor, got shape %s"
                                   % (op.index, op.name, slot, rank, tensors[idx].shape if idx >= 0 else None))
    for i in list(op.inputs) + list(op.outputs):
        if i >= 0 and tensors[i].dtype is None:
            raise UnsupportedOperatorError("operator %d (%s): tensor %d has a type this runtime cannot hold (code %d)"
                                           % (op.index, op.name, i, tensors[i].type_code))


def build_kernel(op, tensors):
    """Build the kernel function of one operator (see the module docstring)."""
    _load_families()
    builder = KERNELS.get(op.name)
    if builder is None:
        raise UnsupportedOperatorError(
            "operator %d is %s, which the numpy runtime does not implement; supported: %s"
            % (op.index, op.name, ", ".join(sorted(KERNELS))))
    _check_structure(op, tensors)
    try:
        return builder(op, tensors)
    except (IndexError, ValueError, TypeError, KeyError, ZeroDivisionError, OverflowError) as exc:
        if isinstance(exc, (ModelFormatError, UnsupportedOperatorError)):
            raise
        # Shapes or parameters that contradict each other (a corrupt file that parsed).
        raise ModelFormatError("corrupt .tflite: operator %d (%s) has inconsistent tensors or options: %s: %s"
                               % (op.index, op.name, type(exc).__name__, exc)) from None


def _load_families():
    # Importing a family module registers its builders (a no-op once imported).
    from . import activation, conv, elementwise, pool, shape  # noqa: F401
