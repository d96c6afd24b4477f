"""The Interpreter's interface: details, set/invoke/get, run on batches, errors, back ends.

Uses the small committed models in tests/edge/data/ (numpy only); the
optional back ends are tested where they are installed.
"""

import os
import sys

import numpy as np
import pytest

from fieldpick.edge.errors import BackendError, ConfigError, DataError, ModelFormatError
from fieldpick.edge.tflite import Interpreter

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TINY_INT8 = os.path.join(DATA, "tiny_int8.tflite")
TINY_FP32 = os.path.join(DATA, "tiny_fp32.tflite")


@pytest.fixture(scope="module")
def int8():
    return Interpreter(TINY_INT8)


def test_details_look_like_tflites(int8):
    (i,), (o,) = int8.get_input_details(), int8.get_output_details()
    assert (tuple(i["shape"]), i["dtype"], tuple(o["shape"]), o["dtype"]) == ((1, 16, 3), np.int8, (1, 8, 3), np.int8)
    assert o["quantization"] == (1 / 256, -128)
    assert i["quantization"][1] == 15 and i["quantization"][0] == pytest.approx(0.0394579, rel=1e-5)
    assert i["quantization_parameters"]["scales"].dtype == np.float32


def test_planned_memory_by_hand():
    # int8: the (1, 16, 3) input and its reshaped copy are live together at the first op: 48 + 48 bytes.
    assert Interpreter(TINY_INT8).planned_bytes == 96
    assert Interpreter(TINY_FP32).planned_bytes == 4 * 96


def test_set_invoke_get_equals_run(int8, rng):
    d = int8.get_input_details()[0]
    x = rng.integers(-128, 128, d["shape"]).astype(np.int8)
    int8.set_tensor(d["index"], x)
    int8.invoke()
    got = int8.get_tensor(int8.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, int8.run(x)[0])


def test_run_quantises_float_windows_and_dequantises(int8, rng):
    x = rng.standard_normal((4, 16, 3)).astype(np.float32)
    d = int8.get_input_details()[0]
    scale, zp = d["quantization"]
    q = np.clip(np.floor(np.abs(x / np.float32(scale)) + 0.5) * np.sign(x) + zp, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(int8.run(x)[0], int8.run(q)[0])
    probs = int8.run(x, dequantize=True)[0]
    assert probs.dtype == np.float32 and probs.shape == (4, 8, 3)
    assert np.all(np.abs(probs.sum(axis=-1) - 1) <= 3 / 256)  # three outputs, each within a quantum


def test_a_batch_equals_single_windows(int8, rng):
    x = rng.integers(-128, 128, (7, 16, 3)).astype(np.int8)
    batched = int8.run(x)[0]
    for b in range(7):
        np.testing.assert_array_equal(batched[b:b + 1], int8.run(x[b:b + 1])[0])


def test_float_model_gives_probabilities(rng):
    out = Interpreter(TINY_FP32).run(rng.standard_normal((3, 16, 3)).astype(np.float32))[0]
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("value, match", [
    (np.zeros((1, 16, 2), np.int8), r"must have shape \(1, 16, 3\)"),
    (np.zeros((1, 16, 3), np.float32), "must be int8, got float32"),
])
def test_set_tensor_rejects_bad_inputs(int8, value, match):
    with pytest.raises(DataError, match=match):
        int8.set_tensor(int8.get_input_details()[0]["index"], value)


def test_lifecycle_errors():
    it = Interpreter(TINY_INT8)
    with pytest.raises(ConfigError, match="set_tensor was not called"):
        it.invoke()
    with pytest.raises(ConfigError, match="no result yet"):
        it.get_tensor(it.get_output_details()[0]["index"])
    with pytest.raises(ConfigError, match="is not an input"):
        it.set_tensor(999, np.zeros(3))


def test_run_rejects_bad_windows(int8):
    with pytest.raises(DataError, match=r"windows of shape \(B,\) \+ \(16, 3\)"):
        int8.run(np.zeros((2, 15, 3), np.float32))
    x = np.zeros((2, 16, 3), np.float32)
    x[1, 4, 0] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        int8.run(x)


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "gpu"}, "unknown backend 'gpu'; choose one of: numpy, litert, tflite, onnx"),
    ({"num_threads": 0}, "num_threads must be an integer >= 1, got 0"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Interpreter(TINY_INT8, **kwargs)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot read model file .*nope.tflite"):
        Interpreter(str(tmp_path / "nope.tflite"))


def test_a_missing_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(BackendError, match=r"needs the package ai-edge-litert \(pip install ai-edge-litert\)"):
        Interpreter(TINY_INT8, backend="litert")


@pytest.mark.parametrize("backend, module", [("litert", "ai_edge_litert"), ("tflite", "tflite_runtime")])
def test_optional_backends_share_the_interface(backend, module, rng):
    pytest.importorskip(module)
    ours = Interpreter(TINY_INT8)
    other = Interpreter(TINY_INT8, backend=backend)
    for a, b in zip(ours.get_input_details() + ours.get_output_details(),
                    other.get_input_details() + other.get_output_details()):
        assert (a["index"], tuple(a["shape"]), a["dtype"], a["quantization"][1]) == \
            (b["index"], tuple(b["shape"]), b["dtype"], b["quantization"][1])
    x = rng.standard_normal((5, 16, 3)).astype(np.float32)
    # Their optimised kernels (XNNPACK's softmax, ruy) round differently from TFLite's
    # reference kernels, which ours match: measured up to 3 quanta on the zoo, on few outputs.
    diff = np.abs(ours.run(x)[0].astype(int) - other.run(x)[0].astype(int))
    assert diff.max() <= 3
    assert np.mean(diff == 0) >= 0.8


def test_op_times_and_quantize_input(int8, rng):
    x = rng.standard_normal((2, 16, 3)).astype(np.float32)
    q = int8.quantize_input(x)
    assert q.dtype == np.int8 and q.shape == (2, 16, 3)
    times = int8.op_times(x, runs=2)
    assert [name for _, name, _ in times] == ["RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "RESHAPE", "SOFTMAX"]
    assert all(t >= 0 for _, _, t in times)


def test_interpreters_in_threads_keep_their_own_scratch(rng):
    # The int8 kernels keep float scratch in a per-thread arena and cache views of it per
    # (batch size, thread): interpreters run at the same time in two threads, and one
    # interpreter handed from thread to thread, must give the single-thread answers.
    import threading

    xs = [rng.integers(-128, 128, (b, 16, 3)).astype(np.int8) for b in (1, 3, 1, 2) * 5]
    want = [Interpreter(TINY_INT8).run(x)[0] for x in xs]
    shared = Interpreter(TINY_INT8)
    errors = []

    def worker(it, order):
        for k in order:
            got = it.run(xs[k])[0]
            if not np.array_equal(got, want[k]):
                errors.append(k)

    order = list(range(len(xs)))
    threads = [threading.Thread(target=worker, args=(Interpreter(TINY_INT8), order * 5)),
               threading.Thread(target=worker, args=(Interpreter(TINY_INT8), order[::-1] * 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(3):  # the same interpreter, one thread after another
        t = threading.Thread(target=worker, args=(shared, order[k::3]))
        t.start()
        t.join()
    worker(shared, order)
    assert errors == []
