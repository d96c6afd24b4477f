"""The numpy runtime against TFLite's reference kernels on every model of the zoo.

The zoo (tests/edge/tflite_models.py) is converted once per code version and
cached in pytest's cache folder; without TensorFlow and ai-edge-litert the
tests skip.  int8 outputs must equal ai-edge-litert's BUILTIN_REF kernels bit
for bit; float32 outputs must agree within 1e-5.
"""

import hashlib
import importlib.util
import os

import numpy as np
import pytest

from fieldpick.edge.tflite.interpreter import CHUNK_BYTES, Interpreter

HERE = os.path.dirname(os.path.abspath(__file__))
N_INPUTS = 12  # random windows per model, at several amplitudes


def _builder():
    spec = importlib.util.spec_from_file_location("fieldpick_tflite_models", os.path.join(HERE, "tflite_models.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cached_dir(request, name):
    with open(os.path.join(HERE, "tflite_models.py"), "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    return os.path.join(str(request.config.cache.mkdir("fieldpick_tflite")), "%s_%s" % (name, key))


@pytest.fixture(scope="session")
def zoo(request):
    pytest.importorskip("tensorflow", reason="the zoo is built with TensorFlow's converter")
    pytest.importorskip("ai_edge_litert", reason="the reference kernels come from ai-edge-litert")
    builder = _builder()
    out = _cached_dir(request, "zoo")
    done = os.path.join(out, "DONE")
    if not os.path.exists(done):
        builder.build_zoo(out)
        open(done, "w").close()
    return {f[:-7]: os.path.join(out, f) for f in sorted(os.listdir(out)) if f.endswith(".tflite")}


ZOO_NAMES = ["%s_%s" % (m, k) for m in ("conv_picker", "unet", "lppn", "ops_a", "ops_b") for k in ("fp32", "int8", "int8f")]


def _reference(path):
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType

    it = LiteRT(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF, num_threads=1)
    it.allocate_tensors()
    return it


def _inputs(it, rng, n):
    d = it.get_input_details()[0]
    for k in range(n):
        amp = [0.05, 0.5, 1.0, 2.0, 8.0][k % 5]  # 8.0 saturates the int8 input
        x = (rng.standard_normal(d["shape"]) * amp).astype(np.float32)
        yield it._convert_input(x, d)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_matches_tflite_reference_kernels(zoo, name, rng):
    path = zoo[name]
    ours = Interpreter(path)
    ref = _reference(path)
    int8_out = [np.dtype(d["dtype"]) == np.int8 for d in ours.get_output_details()]
    for x in _inputs(ours, rng, N_INPUTS):
        ref.set_tensor(ref.get_input_details()[0]["index"], x)
        ref.invoke()
        got = ours.run(x)
        for g, d, is_int in zip(got, ref.get_output_details(), int8_out):
            want = ref.get_tensor(d["index"])
            assert g.shape == want.shape and g.dtype == want.dtype
            if is_int:
                np.testing.assert_array_equal(g, want)
            elif "int8" in name:  # float out of int8 insides: dequantised, so exact too
                np.testing.assert_array_equal(g, want)
            else:
                np.testing.assert_allclose(g, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["unet_int8", "lppn_fp32", "ops_b_int8"])
def test_a_batch_equals_its_windows_one_by_one(zoo, name, rng):
    it = Interpreter(zoo[name])
    xs = np.concatenate(list(_inputs(it, rng, 5)), axis=0)
    batched = it.run(xs)
    for b in range(len(xs)):
        single = it.run(xs[b:b + 1])
        for bo, so in zip(batched, single):
            if bo.dtype.kind == "f":  # BLAS may sum a larger matrix in another order
                np.testing.assert_allclose(bo[b:b + 1], so, rtol=0, atol=1e-6)
            else:
                np.testing.assert_array_equal(bo[b:b + 1], so)


@pytest.mark.parametrize("name", ["unet_int8", "conv_picker_fp32"])
def test_litert_backend_has_the_same_interface(zoo, name, rng):
    ours = Interpreter(zoo[name])
    lite = Interpreter(zoo[name], backend="litert")
    for a, b in zip(ours.get_input_details() + ours.get_output_details(),
                    lite.get_input_details() + lite.get_output_details()):
        assert (a["name"], a["index"], tuple(a["shape"]), a["dtype"]) == (b["name"], b["index"], tuple(b["shape"]), b["dtype"])
        assert a["quantization"][1] == b["quantization"][1]
        assert a["quantization"][0] == pytest.approx(b["quantization"][0], rel=1e-7)
    xs = np.concatenate(list(_inputs(ours, rng, 3)), axis=0)
    for g, w in zip(ours.run(xs), lite.run(xs)):
        # XNNPACK's optimised kernels may differ from the reference by a few quanta.
        tol = 4 * (ours.get_output_details()[0]["quantization"][0] or 1e-5)
        np.testing.assert_allclose(g.astype(np.float64) * (1 if g.dtype.kind == "f" else tol / 4),
                                   w.astype(np.float64) * (1 if w.dtype.kind == "f" else tol / 4), atol=tol)


@pytest.fixture(scope="session")
def onnx2tf_models(request):
    pytest.importorskip("torch")
    pytest.importorskip("onnx2tf")
    pytest.importorskip("ai_edge_litert")
    out = _cached_dir(request, "onnx2tf")
    done = os.path.join(out, "DONE")
    if not os.path.exists(done):
        _builder().build_onnx2tf(out, t=600)
        open(done, "w").close()
    return {k: os.path.join(out, "lppn_torch_%s.tflite" % k) for k in ("fp32", "int8")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["int8", "fp32"])
def test_onnx2tf_route_matches_reference(onnx2tf_models, kind, rng):
    """The route the project's real models take: torch -> ONNX -> onnx2tf (PAD + grouped CONV_2D)."""
    path = onnx2tf_models[kind]
    ours = Interpreter(path)
    ref = _reference(path)
    names = [op.name for op in ours._engine.sg.operators]
    assert "PAD" in names and "CONV_2D" in names
    for x in _inputs(ours, rng, 6):
        ref.set_tensor(ref.get_input_details()[0]["index"], x)
        ref.invoke()
        for g, d in zip(ours.run(x), ref.get_output_details()):
            want = ref.get_tensor(d["index"])
            if kind == "int8":
                np.testing.assert_array_equal(g, want)
            else:
                np.testing.assert_allclose(g, want, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_onnx_backend_runs_the_twin(onnx2tf_models, rng):
    """backend="onnx" on the ONNX twin gives the float32 .tflite's answer (in torch's (B, C, T) layout)."""
    pytest.importorskip("onnxruntime")
    onnx_path = os.path.join(os.path.dirname(onnx2tf_models["fp32"]), "lppn_torch.onnx")
    twin = Interpreter(onnx_path, backend="onnx")
    ours = Interpreter(onnx2tf_models["fp32"])
    assert tuple(twin.get_input_details()[0]["shape"]) == (1, 3, 600)
    x = rng.standard_normal((2, 600, 3)).astype(np.float32)
    got = twin.run(np.ascontiguousarray(x.transpose(0, 2, 1)))
    want = ours.run(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.transpose(0, 2, 1), w, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_a_batch_larger_than_one_chunk_equals_single_windows(onnx2tf_models, rng):
    it = Interpreter(onnx2tf_models["int8"])
    step = CHUNK_BYTES // (8 * it.planned_bytes)
    assert 1 < step < 40
    n = 2 * step + 3  # two full chunks and a short one
    xs = np.concatenate(list(_inputs(it, rng, n)), axis=0)
    batched = it.run(xs)
    for b in range(n):
        for bo, so in zip(batched, it.run(xs[b:b + 1])):
            np.testing.assert_array_equal(bo[b:b + 1], so)


def test_shipped_default_model_matches_reference(rng):
    """The model the station runs (whatever its weights): every int8 output equal to BUILTIN_REF's,
    and every float64-foldable layer on the exact path (a fall back would be slower, not wrong)."""
    pytest.importorskip("ai_edge_litert", reason="the reference kernels come from ai-edge-litert")
    path = os.path.join(os.path.dirname(os.path.dirname(HERE)), "edge", "models", "fieldpick-default.tflite")
    if not os.path.exists(path):
        pytest.skip("no shipped default model at %s" % path)
    ours = Interpreter(path)
    if np.dtype(ours.get_input_details()[0]["dtype"]) != np.int8:
        pytest.skip("the shipped model is not full int8")
    convs = [k for k, op in zip(ours._engine.kernels, ours._engine.sg.operators)
             if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert convs and all(hasattr(k, "exact") for k in convs)
    ref = _reference(path)
    xs = np.concatenate(list(_inputs(ours, rng, 10)), axis=0)
    got = ours.run(xs)
    for b in range(len(xs)):
        ref.set_tensor(ref.get_input_details()[0]["index"], xs[b:b + 1])
        ref.invoke()
        for g, d in zip(got, ref.get_output_details()):
            np.testing.assert_array_equal(g[b:b + 1], ref.get_tensor(d["index"]))
