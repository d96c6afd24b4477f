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

from ...errors import UnsupportedOperatorError

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


def build_kernel(op, tensors):
    """Build the kernel function of one operator (see the module docstring)."""
    _load_families()
    builder = KERNELS.get(op.name)
    if builder is None:
        raise UnsupportedOperatorError(
            "operator %d is %s, which the numpy runtime does not implement; supported: %s"
            % (op.index, op.name, ", ".join(sorted(KERNELS))))
    return builder(op, tensors)


def _load_families():
    # Importing a family module registers its builders (a no-op once imported).
    from . import activation, conv, elementwise, pool, shape  # noqa: F401
