"""The TFLite reader: structure of a known model, clear errors, and fuzzing.

Runs with numpy only: the models are the small committed files in
tests/edge/data/ (rebuild them with ``tests/edge/tflite_models.py --data``).
Set FIELDPICK_FUZZ_EXAMPLES to fuzz longer than the default.
"""

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldpick.edge.errors import FieldpickError, ModelFormatError, UnsupportedOperatorError
from fieldpick.edge.tflite.interpreter import Interpreter
from fieldpick.edge.tflite.reader import _Buf, _Table, describe, read_model

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TINY_INT8 = os.path.join(DATA, "tiny_int8.tflite")
TINY_FP32 = os.path.join(DATA, "tiny_fp32.tflite")
FUZZ = int(os.environ.get("FIELDPICK_FUZZ_EXAMPLES", "400"))


@pytest.fixture(scope="module")
def tiny():
    with open(TINY_INT8, "rb") as f:
        return f.read()


def _root(data):
    buf = _Buf(data)
    return buf, _Table(buf, buf.ref(0, "root"), "model")


def test_reads_the_tiny_picker(tiny):
    m = read_model(tiny)
    assert m.version == 3
    assert [name for name, _ in describe(m)] == ["RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "RESHAPE", "SOFTMAX"]
    sg = m.subgraphs[0]
    x, y = sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]
    assert (x.shape, x.dtype.name, y.shape, y.dtype.name) == ((1, 16, 3), "int8", (1, 8, 3), "int8")
    # A softmax output is always quantised with scale 1/256 and zero point -128.
    assert (float(y.quant.scale[0]), int(y.quant.zero_point[0])) == (1 / 256, -128)
    conv = sg.operators[1]
    assert conv.options["stride_w"] == 2 and conv.options["padding"] == 0 and conv.options["activation"] == 1
    w = sg.tensors[conv.inputs[1]]
    assert w.shape == (4, 1, 3, 3) and w.data.dtype == np.int8 and w.quant.scale.size == 4  # per-channel
    assert np.abs(w.data).max() == 127  # symmetric per-channel weights use the full range


@pytest.mark.parametrize("data, match", [
    (b"", "too short"),
    (b"\x00" * 7, "too short"),
    (b"\x10\x00\x00\x00TFL2" + b"\x00" * 16, "identifier b'TFL2'"),
    (b"\x10\x00\x00\x00ONNX" + b"\x00" * 16, "not a .tflite model"),
    (b"\xff\xff\xff\x7fTFL3", "root table .* outside the 8-byte file"),
])
def test_rejects_what_is_not_a_model(data, match):
    with pytest.raises(ModelFormatError, match=match):
        read_model(data)


def test_rejects_another_schema_version(tiny):
    buf, root = _root(tiny)
    pos = root._field(0)
    bad = bytearray(tiny)
    struct.pack_into("<I", bad, pos, 2)
    with pytest.raises(ModelFormatError, match="schema version 2; this reader reads version 3"):
        read_model(bytes(bad))


def test_every_truncation_raises_a_clear_error(tiny):
    for n in range(len(tiny)):
        with pytest.raises(ModelFormatError):
            read_model(tiny[:n])


def test_a_huge_vector_length_is_refused_without_allocating(tiny):
    buf, root = _root(tiny)
    vec = buf.ref(root._field(4), "buffers")  # the buffers vector: patch its length
    bad = bytearray(tiny)
    struct.pack_into("<I", bad, vec, 0xFFFFFFF0)
    with pytest.raises(ModelFormatError, match="buffers .*4294967280 elements.* outside"):
        read_model(bytes(bad))


def test_a_tensor_index_out_of_range_is_named(tiny):
    buf, root = _root(tiny)
    sg = root.tables(2, "subgraphs", 10)[0]
    start, n = buf.vector(sg._field(1), 4, "inputs")
    bad = bytearray(tiny)
    struct.pack_into("<i", bad, start, 999)
    with pytest.raises(ModelFormatError, match="subgraph 0 inputs name tensor 999; the subgraph has tensors 0..14"):
        read_model(bytes(bad))


def _with_opcode(tiny, k, code):
    buf, root = _root(tiny)
    oc = root.tables(1, "operator_codes", 100)[k]
    bad = bytearray(tiny)
    struct.pack_into("<b", bad, oc._field(0), code)
    struct.pack_into("<i", bad, oc._field(3), code)
    return bytes(bad)


def test_an_unsupported_operator_is_named_at_load(tiny):
    m = read_model(tiny)
    k = [i for i, op in enumerate(m.subgraphs[0].operators) if op.name == "SOFTMAX"][0]
    idx = _opcode_index_of(tiny, k)
    bad = _with_opcode(tiny, idx, 100)  # MIRROR_PAD
    with pytest.raises(UnsupportedOperatorError, match="BUILTIN_100.*does not implement; supported: .*SOFTMAX"):
        Interpreter(bad)


def _opcode_index_of(tiny, op_k):
    buf, root = _root(tiny)
    op = root.tables(2, "subgraphs", 10)[0].tables(3, "operators", 100)[op_k]
    return op.scalar(0, "I", 0, "opcode_index")


@settings(max_examples=FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_byte_flips_never_escape_as_other_errors(tiny, data):
    """Corrupt 1-8 bytes anywhere; reading, loading and running either succeed or raise FieldpickError."""
    n = data.draw(st.integers(1, 8))
    bad = bytearray(tiny)
    for _ in range(n):
        pos = data.draw(st.integers(0, len(tiny) - 1))
        bad[pos] = data.draw(st.integers(0, 255))
    try:
        read_model(bytes(bad))
        it = Interpreter(bytes(bad))
        if it.planned_bytes > 1 << 20:  # loads, but declares big tensors: don't spend the test's time
            return
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
    except FieldpickError:
        pass


@settings(max_examples=FUZZ, deadline=None)
@given(st.binary(min_size=0, max_size=512))
def test_fuzz_random_bytes_with_the_identifier(blob):
    data = blob[:4] + b"TFL3" + blob[4:]
    try:
        read_model(data)
    except FieldpickError:
        pass


def test_a_tensor_declaring_gigabytes_is_refused_at_load(tiny):
    buf, root = _root(tiny)
    t0 = root.tables(2, "subgraphs", 10)[0].tables(0, "tensors", 100)[0]
    start, n = buf.vector(t0._field(0), 4, "shape")
    assert n == 3
    bad = bytearray(tiny)
    struct.pack_into("<i", bad, start + 4, 1 << 30)  # (1, 16, 3) -> (1, 2**30, 3): 3 GiB of int8
    read_model(bytes(bad))  # structurally fine ...
    with pytest.raises(ModelFormatError, match=r"tensor 0 .* declares 3221225472 bytes; this runtime takes at most 268435456"):
        Interpreter(bytes(bad))  # ... but not something to allocate
