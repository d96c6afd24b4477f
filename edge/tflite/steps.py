"""The numpy engine's invoke plan: operators compiled once into a flat list of steps.

At load the operators become steps ``(kernel, input slots, output slot,
slots to free)`` over a list of tensor slots (constants placed once), so a
call does no dictionary look-ups, no per-operator checks and no list
building beyond each kernel's inputs.  Two kinds of operator are folded
into the step before them where the tensor between them has no other
reader and is not a model output:

- an int8 lookup-table operator (LOGISTIC, TANH, RELU, int8 -> int8
  QUANTIZE, ...: ``unary_table``) after another one: the two tables are
  composed into one (one pass instead of two);
- the same after any other int8 kernel: the table is applied inside that
  step (one dispatch fewer).

Both give the same values as the operators one after another: a table is
the operator's exact result on each of the 256 inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compile_steps"]


def _compose(first, second):
    """A kernel that applies table ``second`` to ``first``'s int8 output."""
    table_a = getattr(first, "unary_table", None)
    table_b = second.unary_table
    if table_a is not None:
        table = table_b[table_a.view(np.uint8)]

        def composed(ins):
            return table[ins[0].view(np.uint8)]

        composed.table = table
        composed.unary_table = table
        return composed

    def then_table(ins):
        y = first(ins)
        return table_b[y.view(np.uint8)] if y.dtype == np.int8 else second([y])

    return then_table


def compile_steps(sg, kernels, free_after):
    """(steps, slot count, constant slots) for one subgraph; see the module docstring.

    free_after[k]: tensors whose last reader is operator k.  A step is
    ``(kernel, input slots, output slot, slots to free, operator index)``; slot -1
    (an omitted optional input) reads None, as the last slot of the list.
    """
    n = len(sg.tensors)
    none_slot = n
    readers = {}
    for op in sg.operators:
        for i in op.inputs:
            if i >= 0:
                readers[i] = readers.get(i, 0) + 1
    outputs = set(sg.outputs)
    steps = []
    for k, op in enumerate(sg.operators):
        kernel = kernels[k]
        ins = tuple(none_slot if i < 0 else i for i in op.inputs)
        free = tuple(free_after[k])
        prev = steps[-1] if steps else None
        src = op.inputs[0] if op.inputs else -1
        if (prev is not None and getattr(kernel, "unary_table", None) is not None and prev[2] == src
                and readers.get(src, 0) == 1 and src not in outputs and sg.tensors[src].dtype == np.int8):
            steps[-1] = (_compose(prev[0], kernel), prev[1], op.outputs[0],
                         tuple(i for i in prev[3] + free if i != src), prev[4])
            continue
        steps.append((kernel, ins, op.outputs[0], free, k))
    constants = [(i, t.data) for i, t in enumerate(sg.tensors) if t.data is not None]
    return steps, n + 1, constants
