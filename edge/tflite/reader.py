"""A bounds-checked reader for TFLite model files (the ``TFL3`` flatbuffer).

Written against the public schema (tensorflow/lite/schema/schema.fbs) with
nothing but ``struct`` and numpy: no ``flatbuffers`` or ``tflite`` package
is needed at run time.  Every offset and length is checked against the
buffer before it is followed, so a truncated, corrupted or hostile file
raises :class:`~fieldpick.edge.errors.ModelFormatError` naming what is
wrong; it never reads outside the buffer, and since every reference the
reader follows is a fixed-depth walk of the schema, it cannot loop.

The result is plain data (:class:`Model`, :class:`Subgraph`,
:class:`Tensor`, :class:`Operator`) that the interpreter plans and runs.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Tuple

import numpy as np

from ..errors import ModelFormatError

__all__ = [
    "FILE_IDENTIFIER",
    "OPCODES",
    "OPNAMES",
    "Quantization",
    "Tensor",
    "Operator",
    "Subgraph",
    "Model",
    "read_model",
]

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
MAX_RANK = 8
READ_FACTOR = 8  # the reader visits at most this many times the file's bytes
MAX_OPERATORS = 1024  # per subgraph; pickers have tens to hundreds (the plan is quadratic in it)
MAX_TENSORS = 16384
MAX_SUBGRAPHS = 64

# TensorType (schema.fbs) -> numpy dtype; types this runtime cannot hold are left out.
TENSOR_TYPES = {
    0: np.dtype("<f4"),  # FLOAT32
    1: np.dtype("<f2"),  # FLOAT16
    2: np.dtype("<i4"),  # INT32
    3: np.dtype("u1"),  # UINT8
    4: np.dtype("<i8"),  # INT64
    6: np.dtype("?"),  # BOOL
    7: np.dtype("<i2"),  # INT16
    9: np.dtype("i1"),  # INT8
    10: np.dtype("<f8"),  # FLOAT64
}
TENSOR_TYPE_NAMES = {
    0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL",
    7: "INT16", 8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 11: "COMPLEX128", 12: "UINT64",
    13: "RESOURCE", 14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4",
}

# BuiltinOperator codes (schema.fbs) of the operators that the interpreter knows by name.
OPCODES = {
    "ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4,
    "DEQUANTIZE": 6, "FULLY_CONNECTED": 9, "LOGISTIC": 14, "MAX_POOL_2D": 17, "MUL": 18,
    "RELU": 19, "RELU6": 21, "RESHAPE": 22, "SOFTMAX": 25, "TANH": 28, "CUSTOM": 32, "PAD": 34,
    "GATHER": 36, "TRANSPOSE": 39, "MEAN": 40, "SUB": 41, "SQUEEZE": 43, "STRIDED_SLICE": 45,
    "SLICE": 65, "TRANSPOSE_CONV": 67, "EXPAND_DIMS": 70, "RESIZE_NEAREST_NEIGHBOR": 97,
    "LEAKY_RELU": 98, "QUANTIZE": 114, "HARD_SWISH": 117,
}
OPNAMES = {v: k for k, v in OPCODES.items()}

# Options tables: op name -> (BuiltinOptions union type, [(field name, slot, kind, default)]).
# kinds: "b" int8/bool/enum byte, "i" int32, "f" float32, "vi" vector of int32.
_OPTIONS = {
    "CONV_2D": (1, [("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0),
                    ("activation", 3, "b", 0), ("dilation_w", 4, "i", 1), ("dilation_h", 5, "i", 1)]),
    "DEPTHWISE_CONV_2D": (2, [("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0),
                              ("depth_multiplier", 3, "i", 0), ("activation", 4, "b", 0),
                              ("dilation_w", 5, "i", 1), ("dilation_h", 6, "i", 1)]),
    "TRANSPOSE_CONV": (49, [("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0),
                            ("activation", 3, "b", 0)]),
    "AVERAGE_POOL_2D": (5, [("padding", 0, "b", 0), ("stride_w", 1, "i", 0), ("stride_h", 2, "i", 0),
                            ("filter_w", 3, "i", 0), ("filter_h", 4, "i", 0), ("activation", 5, "b", 0)]),
    "FULLY_CONNECTED": (8, [("activation", 0, "b", 0), ("weights_format", 1, "b", 0),
                            ("keep_num_dims", 2, "b", 0)]),
    "SOFTMAX": (9, [("beta", 0, "f", 0.0)]),
    "CONCATENATION": (10, [("axis", 0, "i", 0), ("activation", 1, "b", 0)]),
    "ADD": (11, [("activation", 0, "b", 0)]),
    "SUB": (28, [("activation", 0, "b", 0)]),
    "MUL": (21, [("activation", 0, "b", 0)]),
    "RESHAPE": (17, [("new_shape", 0, "vi", None)]),
    "STRIDED_SLICE": (32, [("begin_mask", 0, "i", 0), ("end_mask", 1, "i", 0), ("ellipsis_mask", 2, "i", 0),
                           ("new_axis_mask", 3, "i", 0), ("shrink_axis_mask", 4, "i", 0),
                           ("offset", 5, "b", 0)]),
    "GATHER": (23, [("axis", 0, "i", 0), ("batch_dims", 1, "i", 0)]),
    "MEAN": (27, [("keep_dims", 0, "b", 0)]),
    "RESIZE_NEAREST_NEIGHBOR": (74, [("align_corners", 0, "b", 0), ("half_pixel_centers", 1, "b", 0)]),
    "LEAKY_RELU": (75, [("alpha", 0, "f", 0.0)]),
    "SQUEEZE": (30, [("squeeze_dims", 0, "vi", None)]),
}
_OPTIONS["MAX_POOL_2D"] = _OPTIONS["AVERAGE_POOL_2D"]


class Quantization:
    """Affine quantisation of a tensor: real = scale * (q - zero_point).

    scale: float32 array (one value, or one per channel along ``axis``);
    zero_point: int64 array of the same length; axis: the quantised dimension.
    """

    __slots__ = ("scale", "zero_point", "axis")

    def __init__(self, scale, zero_point, axis=0):
        self.scale = scale
        self.zero_point = zero_point
        self.axis = axis

    @property
    def per_channel(self):
        return self.scale.size > 1

    def __repr__(self):
        return "Quantization(scale=%s, zero_point=%s, axis=%d)" % (self.scale, self.zero_point, self.axis)


class Tensor:
    """One tensor of a subgraph: shape, dtype, constant data (or None), quantisation (or None)."""

    __slots__ = ("index", "name", "shape", "type_code", "dtype", "buffer", "data", "quant", "shape_signature")

    def __init__(self, index, name, shape, type_code, dtype, buffer, data, quant, shape_signature):
        self.index = index
        self.name = name
        self.shape = shape
        self.type_code = type_code
        self.dtype = dtype
        self.buffer = buffer
        self.data = data
        self.quant = quant
        self.shape_signature = shape_signature

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * (self.dtype.itemsize if self.dtype is not None else 0)

    def __repr__(self):
        return "Tensor(%d %r %s %s%s)" % (
            self.index, self.name, self.shape, TENSOR_TYPE_NAMES.get(self.type_code, self.type_code),
            " const" if self.data is not None else "")


class Operator:
    """One operator: builtin code and name, input and output tensor indices (-1: absent), options."""

    __slots__ = ("index", "code", "name", "version", "inputs", "outputs", "options")

    def __init__(self, index, code, name, version, inputs, outputs, options):
        self.index = index
        self.code = code
        self.name = name
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.options = options

    def __repr__(self):
        return "Operator(%d %s in=%s out=%s %s)" % (self.index, self.name, self.inputs, self.outputs, self.options)


class Subgraph:
    __slots__ = ("name", "tensors", "inputs", "outputs", "operators")

    def __init__(self, name, tensors, inputs, outputs, operators):
        self.name = name
        self.tensors = tensors
        self.inputs = inputs
        self.outputs = outputs
        self.operators = operators


class Model:
    __slots__ = ("version", "description", "subgraphs", "size")

    def __init__(self, version, description, subgraphs, size):
        self.version = version
        self.description = description
        self.subgraphs = subgraphs
        self.size = size


class _Buf:
    """Bounds-checked little-endian access to the flatbuffer bytes."""

    def __init__(self, data):
        self.data = data
        self.n = len(data)
        # bytes the reader may visit in all: a file whose vectors and tables share offsets
        # (legal in a flatbuffer) could otherwise make the reading quadratic in its size
        self.budget = READ_FACTOR * self.n + 4096

    def _spend(self, nbytes, what):
        self.budget -= nbytes
        if self.budget < 0:
            raise ModelFormatError("corrupt .tflite: reading it visits more than %d times its %d bytes (tables "
                                   "or vectors shared many times, at %s); refused" % (READ_FACTOR, self.n, what))

    def _check(self, pos, size, what):
        if pos < 0 or size < 0 or pos + size > self.n:
            raise ModelFormatError(
                "corrupt .tflite: %s at byte %d (+%d) lies outside the %d-byte file" % (what, pos, size, self.n))

    def u8(self, pos, what):
        self._check(pos, 1, what)
        return self.data[pos]

    def i8(self, pos, what):
        self._check(pos, 1, what)
        return struct.unpack_from("<b", self.data, pos)[0]

    def u16(self, pos, what):
        self._check(pos, 2, what)
        return struct.unpack_from("<H", self.data, pos)[0]

    def i32(self, pos, what):
        self._check(pos, 4, what)
        return struct.unpack_from("<i", self.data, pos)[0]

    def u32(self, pos, what):
        self._check(pos, 4, what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def u64(self, pos, what):
        self._check(pos, 8, what)
        return struct.unpack_from("<Q", self.data, pos)[0]

    def f32(self, pos, what):
        self._check(pos, 4, what)
        return struct.unpack_from("<f", self.data, pos)[0]

    def table(self, pos, what):
        """Return (table position, list of field offsets) for the table at ``pos``."""
        vt = pos - self.i32(pos, what + " vtable offset")
        vsize = self.u16(vt, what + " vtable size")
        tsize = self.u16(vt + 2, what + " table size")
        if vsize < 4 or vsize % 2:
            raise ModelFormatError("corrupt .tflite: %s has a vtable of %d bytes (must be even and >= 4)" % (what, vsize))
        self._check(vt, vsize, what + " vtable")
        self._check(pos, tsize, what + " table")
        self._spend(vsize + tsize, what)
        fields = list(struct.unpack_from("<%dH" % ((vsize - 4) // 2), self.data, vt + 4))
        for i, off in enumerate(fields):
            if off and off >= max(tsize, 4):
                raise ModelFormatError(
                    "corrupt .tflite: field %d of %s at offset %d lies outside its %d-byte table" % (i, what, off, tsize))
        return pos, fields

    def ref(self, pos, what):
        """Follow a uoffset at ``pos``."""
        target = pos + self.u32(pos, what)
        self._check(target, 4, what)
        return target

    def vector(self, pos, elem_size, what):
        """Return (first element position, length) of the vector referenced at ``pos``."""
        start = self.ref(pos, what)
        n = self.u32(start, what + " length")
        self._check(start + 4, n * elem_size, what + " (%d elements)" % n)
        self._spend(4 + n * elem_size, what)
        return start + 4, n


class _Table:
    def __init__(self, buf, pos, what):
        self.buf = buf
        self.what = what
        self.pos, self.fields = buf.table(pos, what)

    def _field(self, slot):
        if slot < len(self.fields) and self.fields[slot]:
            return self.pos + self.fields[slot]
        return None

    def has(self, slot):
        return self._field(slot) is not None

    def scalar(self, slot, kind, default, name):
        p = self._field(slot)
        if p is None:
            return default
        what = "%s.%s" % (self.what, name)
        return {"b": self.buf.i8, "B": self.buf.u8, "i": self.buf.i32, "I": self.buf.u32,
                "f": self.buf.f32, "Q": self.buf.u64}[kind](p, what)

    def table(self, slot, name):
        p = self._field(slot)
        if p is None:
            return None
        what = "%s.%s" % (self.what, name)
        return _Table(self.buf, self.buf.ref(p, what), what)

    def string(self, slot, name):
        p = self._field(slot)
        if p is None:
            return ""
        start, n = self.buf.vector(p, 1, "%s.%s" % (self.what, name))
        return bytes(self.buf.data[start:start + n]).decode("utf-8", "replace")

    def array(self, slot, dtype, name):
        """A numeric vector as a numpy array (a copy), empty when absent."""
        dtype = np.dtype(dtype)
        p = self._field(slot)
        if p is None:
            return np.zeros(0, dtype)
        start, n = self.buf.vector(p, dtype.itemsize, "%s.%s" % (self.what, name))
        return np.frombuffer(self.buf.data, dtype, n, start).copy()

    def tables(self, slot, name, limit):
        p = self._field(slot)
        if p is None:
            return []
        start, n = self.buf.vector(p, 4, "%s.%s" % (self.what, name))
        if n > limit:
            raise ModelFormatError("corrupt .tflite: %s.%s has %d entries (at most %d)" % (self.what, name, n, limit))
        return [_Table(self.buf, self.buf.ref(start + 4 * i, "%s.%s[%d]" % (self.what, name, i)),
                       "%s.%s[%d]" % (self.what, name, i)) for i in range(n)]


def _read_buffers(model_tab, buf):
    """Constant data of every buffer as a memoryview-backed bytes slice (None when empty)."""
    out = []
    for b in model_tab.tables(4, "buffers", buf.n // 4 + 1):
        data = None
        if b.has(0):
            start, n = buf.vector(b._field(0), 1, b.what + ".data")
            if n:
                data = (start, n)
        else:
            off = b.scalar(1, "Q", 0, "offset")
            size = b.scalar(2, "Q", 0, "size")
            if off > 1 and size:
                buf._check(off, size, b.what + " (offset/size)")
                data = (off, size)
        out.append(data)
    return out


def _read_quant(q, tensor_what, shape):
    if q is None:
        return None
    scale = q.array(2, "<f4", "scale")
    zp = q.array(3, "<i8", "zero_point")
    axis = q.scalar(6, "i", 0, "quantized_dimension")
    if scale.size == 0:
        return None
    if zp.size not in (0, scale.size):
        raise ModelFormatError("corrupt .tflite: %s has %d scales but %d zero points" % (tensor_what, scale.size, zp.size))
    if zp.size == 0:
        zp = np.zeros(scale.size, np.int64)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ModelFormatError("corrupt .tflite: %s has quantisation scale %s (must be finite and > 0)"
                               % (tensor_what, scale[:4]))
    if scale.size > 1:
        if not 0 <= axis < len(shape) or shape[axis] != scale.size:
            raise ModelFormatError("corrupt .tflite: %s has %d per-channel scales along axis %d of shape %s"
                                   % (tensor_what, scale.size, axis, shape))
    return Quantization(scale, zp, axis)


def _read_options(op_tab, name, what):
    spec = _OPTIONS.get(name)
    if spec is None:
        return {}
    union_type, fields = spec
    opts = {f[0]: f[3] for f in fields}
    utype = op_tab.scalar(3, "B", 0, "builtin_options_type")
    if utype == 0:
        return opts
    if utype != union_type:
        raise ModelFormatError("corrupt .tflite: %s (%s) carries options of union type %d; expected %d"
                               % (what, name, utype, union_type))
    t = op_tab.table(4, "builtin_options")
    if t is None:
        return opts
    for fname, slot, kind, default in fields:
        if kind == "vi":
            if t.has(slot):
                opts[fname] = [int(v) for v in t.array(slot, "<i4", fname)]
        else:
            opts[fname] = t.scalar(slot, kind, default, fname)
    return opts


def read_model(data) -> Model:
    """Parse a .tflite flatbuffer (bytes-like) into a :class:`Model`.

    Raises ModelFormatError for anything truncated, corrupt, of an unknown
    schema version or not a TFLite file at all.
    """
    data = bytes(data)
    buf = _Buf(data)
    if buf.n < 8:
        raise ModelFormatError("not a .tflite model: %d bytes is too short (a model has at least 8)" % buf.n)
    ident = data[4:8]
    if ident != FILE_IDENTIFIER:
        raise ModelFormatError("not a .tflite model: file identifier %r, expected %r" % (ident, FILE_IDENTIFIER))
    root = _Table(buf, buf.ref(0, "root table"), "model")
    version = root.scalar(0, "I", 0, "version")
    if version != SCHEMA_VERSION:
        raise ModelFormatError("unsupported .tflite schema version %d; this reader reads version %d"
                               % (version, SCHEMA_VERSION))
    codes = []
    for oc in root.tables(1, "operator_codes", min(buf.n // 4 + 1, 1024)):
        dep = oc.scalar(0, "b", 0, "deprecated_builtin_code")
        new = oc.scalar(3, "i", 0, "builtin_code")
        codes.append((max(dep, new), oc.scalar(2, "i", 1, "version"), oc.string(1, "custom_code")))
    buffers = _read_buffers(root, buf)
    subgraphs = []
    for si, sg in enumerate(root.tables(2, "subgraphs", MAX_SUBGRAPHS)):
        tensors = []
        for ti, t in enumerate(sg.tables(0, "tensors", MAX_TENSORS)):
            tensors.append(_read_tensor(t, ti, buffers, buf))
        nt = len(tensors)
        inputs = _indices(sg.array(1, "<i4", "inputs"), nt, "subgraph %d inputs" % si, allow_absent=False)
        outputs = _indices(sg.array(2, "<i4", "outputs"), nt, "subgraph %d outputs" % si, allow_absent=False)
        ops = []
        for oi, o in enumerate(sg.tables(3, "operators", MAX_OPERATORS)):
            what = "operator %d" % oi
            ci = o.scalar(0, "I", 0, "opcode_index")
            if ci >= len(codes):
                raise ModelFormatError("corrupt .tflite: %s uses opcode index %d; the model has %d operator codes"
                                       % (what, ci, len(codes)))
            code, opver, custom = codes[ci]
            name = OPNAMES.get(code, "CUSTOM(%s)" % custom if code == 32 else "BUILTIN_%d" % code)
            ins = _indices(o.array(1, "<i4", "inputs"), nt, what + " inputs", allow_absent=True)
            outs = _indices(o.array(2, "<i4", "outputs"), nt, what + " outputs", allow_absent=False)
            ops.append(Operator(oi, code, name, opver, ins, outs, _read_options(o, name, what)))
        subgraphs.append(Subgraph(sg.string(4, "name"), tensors, inputs, outputs, ops))
    if not subgraphs:
        raise ModelFormatError("corrupt .tflite: the model has no subgraph")
    return Model(version, root.string(3, "description"), subgraphs, buf.n)


def _indices(arr, n, what, allow_absent):
    lo = -1 if allow_absent else 0
    bad = [int(v) for v in arr if not lo <= v < n]
    if bad:
        raise ModelFormatError("corrupt .tflite: %s name tensor %d; the subgraph has tensors 0..%d"
                               % (what, bad[0], n - 1))
    return tuple(int(v) for v in arr)


def _read_tensor(t, ti, buffers, buf):
    what = "tensor %d" % ti
    shape = t.array(0, "<i4", "shape")
    if shape.size > MAX_RANK or np.any(shape < 0):
        raise ModelFormatError("corrupt .tflite: %s has shape %s (rank <= %d, sizes >= 0)"
                               % (what, shape.tolist()[:MAX_RANK + 1], MAX_RANK))
    shape = tuple(int(s) for s in shape)
    sig = tuple(int(s) for s in t.array(7, "<i4", "shape_signature")[:MAX_RANK])
    type_code = t.scalar(1, "b", 0, "type")
    dtype = TENSOR_TYPES.get(type_code)
    bi = t.scalar(2, "I", 0, "buffer")
    if bi >= len(buffers):
        raise ModelFormatError("corrupt .tflite: %s refers to buffer %d; the model has %d buffers"
                               % (what, bi, len(buffers)))
    name = t.string(3, "name")
    what = "tensor %d (%r)" % (ti, name)
    quant = _read_quant(t.table(4, "quantization"), what, shape)
    data = None
    if buffers[bi] is not None:
        if dtype is None:
            raise ModelFormatError("unsupported .tflite: constant %s has type %s; supported: %s" % (
                what, TENSOR_TYPE_NAMES.get(type_code, type_code),
                ", ".join(TENSOR_TYPE_NAMES[k] for k in sorted(TENSOR_TYPES))))
        start, n = buffers[bi]
        count = 1
        for s in shape:
            count *= s
        if n != count * dtype.itemsize:
            raise ModelFormatError("corrupt .tflite: %s of shape %s and type %s needs %d bytes; its buffer holds %d"
                                   % (what, shape, dtype, count * dtype.itemsize, n))
        data = np.frombuffer(buf.data, dtype, count, start).reshape(shape)
    return Tensor(ti, name, shape, type_code, dtype, bi, data, quant, sig)


def describe(model: Model) -> List[Tuple[str, Optional[str]]]:
    """One (operator name, first output tensor name) pair per operator of subgraph 0."""
    sg = model.subgraphs[0]
    return [(op.name, sg.tensors[op.outputs[0]].name if op.outputs else None) for op in sg.operators]
