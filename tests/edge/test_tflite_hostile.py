"""Model files that load but would exhaust a station: refused at load, with the number.

One changed byte of a dilation or a PAD constant made ``invoke`` allocate
gigabytes; a file whose flatbuffer vectors share one table made reading it
quadratic in its size."""

import os
import struct
import time

import numpy as np
import pytest

from fieldpick.edge.errors import ModelBudgetError, ModelFormatError
from fieldpick.edge.tflite.budget import DEFAULT_MEMORY_BUDGET, budget_from_profile
from fieldpick.edge.tflite.interpreter import Interpreter
from fieldpick.edge.tflite.reader import _Buf, _Table, read_model

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "edge", "models", "fieldpick-default.tflite")


@pytest.fixture(scope="module")
def model():
    with open(DEFAULT, "rb") as f:
        return f.read()


def _ops(data):
    buf = _Buf(data)
    root = _Table(buf, buf.ref(0, "root"), "model")
    return root.tables(2, "subgraphs", 10)[0].tables(3, "operators", 1000)


def test_the_bundled_model_fits_the_default_budget(model):
    it = Interpreter(model)
    assert 0 < it._engine.need_bytes < DEFAULT_MEMORY_BUDGET // 100
    with pytest.raises(ModelBudgetError, match=r"budget is 0.1 MiB"):
        Interpreter(model, memory_budget=100 << 10)


def test_one_byte_of_a_dilation_is_refused_at_load(model):
    m = read_model(model)
    k = [i for i, op in enumerate(m.subgraphs[0].operators)
         if op.name == "CONV_2D" and op.options["dilation_w"] > 1][0]
    opts = _ops(model)[k].table(4, "options")
    bad = bytearray(model)
    bad[opts._field(4) + 3] = 1  # dilation_w 2 -> 2 + 2**24: same output shape, a huge padded input
    assert read_model(bytes(bad)).subgraphs[0].operators[k].options["dilation_w"] == 2 + (1 << 24)
    with pytest.raises(ModelBudgetError, match=r"may need [0-9.]+ MiB .*operator %d \(CONV_2D\).*budget is 256.0 MiB" % k):
        Interpreter(bytes(bad))


def test_one_byte_of_a_pad_constant_is_refused_at_load(model):
    m = read_model(model)
    sg = m.subgraphs[0]
    pad = [op for op in sg.operators if op.name == "PAD"][0]
    t = sg.tensors[pad.inputs[1]]
    start = t.data.__array_interface__["data"][0] - np.frombuffer(model, np.uint8).__array_interface__["data"][0]
    assert start >= 0  # the constant is a view into the file's bytes
    bad = bytearray(model)
    item = t.data.dtype.itemsize
    bad[start + 2 * item + 3] = 1  # time padding 3 -> 3 + 2**24
    with pytest.raises(ModelFormatError, match=r"operator %d \(PAD\) pads .* but declares output" % pad.index):
        Interpreter(bytes(bad))


def _shared_name_model(n_tensors, name_bytes):
    """A hand-built flatbuffer: one subgraph of ``n_tensors`` tensors that all share one table
    whose name is ``name_bytes`` long (legal in a flatbuffer, quadratic to read naively).
    Every uoffset points forward, as flatbuffers require."""
    out = bytearray(b"\x00" * 4 + b"TFL3")

    def u32(v=0):
        at = len(out)
        out.extend(struct.pack("<I", v))
        return at

    def point(slot):  # the uoffset at ``slot`` refers to what is written next
        struct.pack_into("<I", out, slot, len(out) - slot)

    def table(vtable_fields, tsize):  # a vtable, then the table's soffset; returns the table position
        vt = len(out)
        out.extend(struct.pack("<%dH" % (2 + len(vtable_fields)), 4 + 2 * len(vtable_fields), tsize,
                               *vtable_fields))
        if len(out) % 4:
            out.extend(b"\x00" * (4 - len(out) % 4))
        at = len(out)
        out.extend(struct.pack("<i", at - vt))
        return at

    root = table([4, 0, 8, 0, 12], 16)  # version, subgraphs, buffers
    struct.pack_into("<I", out, 0, root)
    u32(3)
    sg_field, buf_field = u32(), u32()
    point(buf_field)
    u32(1)
    b_slot = u32()
    b_tab = table([], 4)  # one empty buffer
    struct.pack_into("<I", out, b_slot, b_tab - b_slot)
    point(sg_field)
    u32(1)
    s_slot = u32()
    sg = table([4], 8)  # tensors
    struct.pack_into("<I", out, s_slot, sg - s_slot)
    t_field = u32()
    point(t_field)
    u32(n_tensors)
    slots = [u32() for _ in range(n_tensors)]
    t_tab = table([0, 0, 0, 4], 8)  # name only
    name_field = u32()
    for slot in slots:
        struct.pack_into("<I", out, slot, t_tab - slot)
    point(name_field)
    u32(name_bytes)
    out.extend(b"x" * name_bytes + b"\x00\x00\x00\x00")
    return bytes(out)


def test_shared_flatbuffer_offsets_do_not_make_reading_quadratic():
    small = _shared_name_model(3, 100)
    m = read_model(small)  # the builder makes a file the reader takes
    assert len(m.subgraphs[0].tensors) == 3 and m.subgraphs[0].tensors[2].name == "x" * 100
    hostile = _shared_name_model(12000, 1 << 20)  # 1 MiB name read 12,000 times: 12 GiB naively
    t = time.process_time()  # CPU time: the machine may be shared
    with pytest.raises(ModelFormatError, match="visits more than 8 times its"):
        read_model(hostile)
    assert time.process_time() - t < 5.0  # generous; it takes a fraction of a second


def test_budget_from_a_board_profile():
    assert budget_from_profile({"memory": {"ram_bytes": 512 << 20}}) == 128 << 20
    with pytest.raises(Exception, match="memory.ram_bytes"):
        budget_from_profile({})


def test_an_operator_with_no_inputs_is_a_format_error(tiny_model):
    buf = _Buf(tiny_model)
    root = _Table(buf, buf.ref(0, "root"), "model")
    op = root.tables(2, "subgraphs", 10)[0].tables(3, "operators", 100)[1]  # the first CONV_2D
    start, n = buf.vector(op._field(1), 4, "inputs")
    bad = bytearray(tiny_model)
    struct.pack_into("<I", bad, start - 4, 0)  # its inputs vector now empty
    with pytest.raises(ModelFormatError, match=r"operator 1 \(CONV_2D\) has inputs \[\]; it needs at least 2"):
        Interpreter(bytes(bad))


@pytest.fixture(scope="module")
def tiny_model():
    with open(os.path.join(HERE, "data", "tiny_int8.tflite"), "rb") as f:
        return f.read()
