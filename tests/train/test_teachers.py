"""Teachers: the registry, their errors, fixed-window scanning, PNSN row mapping, the ensemble, real weights."""

import json
import os

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.train.teachers import (
    ENV,
    EXTRA_TEACHERS,
    TEACHER_FACTS,
    TEACHER_NAMES,
    Ensemble,
    FixedWindowTeacher,
    Teacher,
    load_teacher,
    teachers_dir,
)
from fieldpick.train.teachers.base import scan_windows, window_starts
from fieldpick.train.teachers.pnsn import rows_to_samples

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEACHERS = os.environ.get(ENV) or os.path.join(REPO, "..", "shared", "data", "teachers")
NCEDC = os.environ.get("FIELDPICK_NCEDC", os.path.join(REPO, "..", "shared", "data", "ncedc"))


# ---- registry and errors -------------------------------------------------------------------------

def test_registry_names_and_facts():
    for name in ("phasenetlight", "lppnt", "lppnm", "lppnl", "rnn", "eqt", "unet"):
        assert name in TEACHER_NAMES
    assert "gpd" in EXTRA_TEACHERS and "gpd" not in TEACHER_NAMES
    for name in TEACHER_NAMES + EXTRA_TEACHERS:
        family, trained_on, licence = TEACHER_FACTS[name]
        assert family and trained_on and licence in ("MIT", "GPL-3.0")
    assert TEACHER_FACTS["lppnm"][1] == "China national network 2009-2019"


def test_unknown_teacher_lists_the_allowed_names():
    with pytest.raises(ConfigError, match="'picknet'; allowed: ") as err:
        load_teacher("picknet")
    for name in TEACHER_NAMES + EXTRA_TEACHERS:
        assert name in str(err.value)


def test_missing_folder_and_missing_file_are_named(tmp_path):
    gone = str(tmp_path / "nowhere")
    for name in TEACHER_NAMES + EXTRA_TEACHERS:
        with pytest.raises(DataError, match="nowhere.*FIELDPICK_TEACHERS"):
            load_teacher(name, root=gone)
    with pytest.raises(DataError, match=r"pnsn.lppnm\.onnx not found.*FIELDPICK_TEACHERS"):
        load_teacher("lppnm", root=str(tmp_path))
    with pytest.raises(DataError, match=r"ethz\.pt\.v2 not found"):
        load_teacher("phasenetlight", root=str(tmp_path))


def test_teachers_dir_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, str(tmp_path))
    assert teachers_dir() == str(tmp_path)
    assert teachers_dir("/elsewhere") == "/elsewhere"
    monkeypatch.delenv(ENV)
    assert teachers_dir().endswith(os.path.join("shared", "data", "teachers"))


# ---- fixed-window scanning -----------------------------------------------------------------------

def brute_force(run, x, window, hop, combine):
    """What scan_windows should return, one window and one sample at a time."""
    n, c, length = x.shape
    x = x - x.mean(axis=-1, keepdims=True)
    padded = max(length, window)
    x = np.concatenate([x, np.zeros((n, c, padded - length), np.float32)], axis=-1)
    starts = list(range(0, padded - window + 1, hop))
    if starts[-1] != padded - window:
        starts.append(padded - window)
    outs = [[[] for _ in range(padded)] for _ in range(n)]
    for i in range(n):
        for s in starts:
            y = run(x[i:i + 1, :, s:s + window])[0]
            for j in range(window):
                edge = min(j, window - 1 - j)                 # taper: 1/ramp at the edge, 1 from ramp-1 in
                w = max(1e-3, min(1.0, (edge + 1) / (window // 4))) if combine == "taper" else 1.0
                outs[i][s + j].append((y[:, j], w))

    def reduce(v):
        if combine == "max":
            return np.max([y for y, _ in v], axis=0)
        return sum(y * w for y, w in v) / sum(w for _, w in v)

    return np.array([[reduce(v) for v in row[:length]] for row in outs]).transpose(0, 2, 1)


def position_model(segs):
    """Output depends on where a sample sits in its window (and on its value): overlaps must be combined."""
    b, _, w = segs.shape
    pos = np.linspace(0.0, 1.0, w, dtype=np.float32)
    p = 1.0 / (1.0 + np.exp(-segs[:, 0]))
    return np.stack([p * pos, (1 - pos) * np.ones((b, w), np.float32)], axis=1)


@pytest.mark.parametrize("length", [1, 7, 50, 64, 65, 100, 333])
@pytest.mark.parametrize("combine", ["taper", "mean", "max"])
def test_scan_windows_matches_brute_force_for_any_length(rng, length, combine):
    x = rng.standard_normal((2, 3, length)).astype(np.float32) * 5 + 3
    got = scan_windows(position_model, x, 64, 32, combine, batch=5)
    want = brute_force(position_model, x, 64, 32, combine)
    assert got.shape == (2, 2, length)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_window_starts_cover_every_sample():
    for length in (64, 65, 95, 96, 97, 1000):
        starts = window_starts(length, 64, 32)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + 64] = True
        assert covered.all() and starts[0] == 0 and starts[-1] == length - 64
    with pytest.raises(ConfigError, match="hop 0"):
        window_starts(100, 64, 0)
    with pytest.raises(ConfigError, match="combine 'sum'; allowed: taper, mean, max"):
        scan_windows(position_model, np.zeros((1, 3, 10), np.float32), 8, 4, "sum")


class Pointwise(FixedWindowTeacher):
    """A fake fixed-window model: P = sigmoid(Z), S = sigmoid(-Z), sample by sample."""

    name, window, overlap = "pointwise", 40, 0.5

    def _run(self, segs):
        z = segs[:, 0]
        return np.stack([1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z))], axis=1)


@pytest.mark.parametrize("length", [1, 10, 40, 41, 99])
def test_fixed_window_teacher_any_length(rng, length):
    x = rng.standard_normal((3, 3, length)).astype(np.float32)
    p = Pointwise().predict(x)
    scale = x.astype(np.float64).std(axis=-1).max(axis=-1)[:, None]      # one factor per trace
    z = (x[:, 0] - x[:, 0].mean(axis=-1, keepdims=True)) / np.where(scale > 0, scale, 1)
    assert p.shape == (3, 2, length) and p.dtype == np.float32
    np.testing.assert_allclose(p[:, 0], 1 / (1 + np.exp(-z)), atol=1e-5)


class PeakNormalised(Pointwise):
    """Like PhaseNetLight: each window divided by its peak + 1e-10, then P = sigmoid(4 Z)."""

    def _run(self, segs):
        segs = segs / (np.abs(segs).max(axis=-1, keepdims=True) + 1e-10)
        return super()._run(segs * 4)


def test_units_do_not_matter(rng):
    x = rng.standard_normal((2, 3, 90)).astype(np.float32)
    want = PeakNormalised().predict(x)
    for factor in (1e-13, 1e-6, 1e6):          # m/s peaking near 1e-13 .. counts
        np.testing.assert_allclose(PeakNormalised().predict(x * np.float32(factor)), want, atol=1e-4)


def test_predict_resamples_and_maps_back(rng):
    x = np.zeros((1, 3, 500), np.float32)
    x[0, 0, 200:210] = 50.0                       # a burst at 50 Hz samples 200..209
    p = Pointwise().predict(x, fs=50.0)
    assert p.shape == (1, 2, 500)
    assert 200 <= int(np.argmax(p[0, 0])) <= 209
    p2 = Pointwise().predict(np.repeat(x, 2, axis=-1), fs=200.0)
    assert p2.shape == (1, 2, 1000) and 400 <= int(np.argmax(p2[0, 0])) <= 419


def test_bad_input_is_named():
    t = Pointwise()
    with pytest.raises(DataError, match=r"\(2, 100\)"):
        t.predict(np.zeros((2, 100)))
    with pytest.raises(DataError, match="1 NaN"):
        x = np.zeros((2, 3, 100), np.float32)
        x[1, 2, 5] = np.nan
        t.predict(x)
    with pytest.raises(ConfigError, match="fs -1"):
        t.predict(np.zeros((1, 3, 10)), fs=-1)
    with pytest.raises(ConfigError, match="threads 0"):
        Pointwise(threads=0)
    assert t.predict(np.zeros((0, 3, 10))).shape == (0, 2, 10)


# ---- PNSN rows -> samples ------------------------------------------------------------------------

def test_rows_to_samples_strided_rows_two_chunks_and_padding():
    # chunk 0 covers samples 0..63 with rows every 8 samples at offset 3.5; chunk 1 covers 48..111;
    # the input has 100 samples, so the rows of chunk 1 past sample 99 stand for padding
    t0 = np.arange(8) * 8 + 3.5
    t1 = 48 + np.arange(8) * 8 + 3.5
    p0 = np.zeros((8, 2), np.float32)
    p0[2, 0] = 1.0                                 # P at 19.5
    p1 = np.zeros((8, 2), np.float32)
    p1[6, 1] = 1.0                                 # S at 99.5: padding, dropped
    p1[4, 1] = 0.8                                 # S at 83.5
    out = rows_to_samples(np.r_[p0, p1], np.r_[t0, t1], 100, ramp=1)
    assert out.shape == (2, 100)
    assert int(np.argmax(out[0])) in (19, 20) and out[0].max() == pytest.approx(1 - 0.5 / 8, abs=1e-6)
    assert int(np.argmax(out[1])) in (83, 84) and out[1, 99] == pytest.approx(0.0, abs=1e-6)
    # ramp 1: a sample in both chunks gets the plain mean of the two curves
    both = rows_to_samples(np.r_[np.ones((8, 2)), np.zeros((8, 2))], np.r_[t0, t1], 100, ramp=1)
    assert both[0, 55] == pytest.approx(0.5) and both[0, 10] == pytest.approx(1.0) and both[0, 80] == 0
    # ramp 16: a crossfade; chunk 0 spans samples -0.5..63.5, chunk 1 47.5..111.5 (padding included)
    fade = rows_to_samples(np.r_[np.ones((8, 2)), np.zeros((8, 2))], np.r_[t0, t1], 100, ramp=16)
    w0, w1 = (63.5 - 50 + 1) / 16, (50 - 47.5 + 1) / 16
    assert fade[0, 50] == pytest.approx(w0 / (w0 + w1), rel=1e-5)
    assert fade[0, 55] == pytest.approx(9.5 / (9.5 + 8.5), rel=1e-5)   # 8.5 and 7.5 samples from the edges
    assert fade[0, 40] == 1.0 and fade[0, 70] == 0


def tiny_pnsn_onnx(path):
    """An ONNX graph with the PNSN signature: wave (L, 3) E, N, Z -> prob (ceil(L / 8), 3), time.

    prob is the softmax over (E, N, Z) of every 8th sample, so a burst on N is 'P' and on Z is 'S';
    time = 8 * row + 3.5 (an in-stride offset, as the LPPN family)."""
    import onnx
    from onnx import TensorProto, helper

    def const(name, value, dtype=np.int64):
        return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(value, dtype)))

    nodes = [
        const("zero", [0]), const("big", [2 ** 40]), const("axis0", [0]), const("eight", [8]),
        helper.make_node("Slice", ["wave", "zero", "big", "axis0", "eight"], ["rows"]),
        helper.make_node("Softmax", ["rows"], ["prob"], axis=1),
        helper.make_node("Shape", ["rows"], ["shape"]),
        const("i0", 0), helper.make_node("Gather", ["shape", "i0"], ["m"], axis=0),
        const("s0", 0), const("s1", 1),
        helper.make_node("Range", ["s0", "m", "s1"], ["idx"]),
        helper.make_node("Cast", ["idx"], ["idxf"], to=TensorProto.FLOAT),
        const("f8", 8.0, np.float32), const("off", 3.5, np.float32),
        helper.make_node("Mul", ["idxf", "f8"], ["t8"]),
        helper.make_node("Add", ["t8", "off"], ["time"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_pnsn",
        [helper.make_tensor_value_info("wave", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["rows", 3]),
         helper.make_tensor_value_info("time", TensorProto.FLOAT, ["rows"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.fixture
def tiny_root(tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "pnsn").mkdir()
    tiny_pnsn_onnx(str(tmp_path / "pnsn" / "lppnt.onnx"))
    return str(tmp_path)


def test_pnsn_adapter_orders_channels_maps_rows_and_drops_padding(tiny_root):
    t = load_teacher("lppnt", root=tiny_root)
    assert t.family.startswith("LPPN") and t.licence == "GPL-3.0"
    x = np.zeros((2, 3, 600), np.float32)
    x[:, 1, 80] = 30.0                             # N burst at a row sample -> P at row time 83.5
    x[:, 0, 400] = 30.0                            # Z burst -> S at 403.5
    p = t.predict(x)
    assert p.shape == (2, 2, 600) and np.isfinite(p).all()
    assert int(np.argmax(p[0, 0])) in (83, 84) and int(np.argmax(p[0, 1])) in (403, 404)
    assert p[0, 0, 83] > 0.9 and p[0, 0, 75] < 0.5
    short = t.predict(x[:, :, :100])               # far shorter than a chunk: padded, rows past 99 dropped
    assert short.shape == (2, 2, 100) and int(np.argmax(short[0, 0])) in (83, 84)
    edge = t.predict(x[:, :, :90])                 # the last real row (83.5) holds to the end
    assert edge.shape == (2, 2, 90) and edge[0, 0, 89] == pytest.approx(edge[0, 0, 84], abs=1e-3)
    assert t.predict(x[:1, :, :1]).shape == (1, 2, 1)


def test_pnsn_adapter_vertical_only_and_tiny_units(tiny_root, rng):
    t = load_teacher("lppnt", root=tiny_root)
    x = np.zeros((1, 3, 300), np.float32)
    x[0, 0] = rng.standard_normal(300)
    p = t.predict(x)
    assert np.isfinite(p).all() and p[0, 1].max() > 0.8
    # m/s peaking near 1e-8: the graph's own +1e-6 must not swamp the signal
    np.testing.assert_allclose(t.predict(x * 1e-8), p, atol=1e-5)


def test_fixed_window_vertical_only_no_nan():
    x = np.zeros((1, 3, 100), np.float32)
    x[0, 0, 50] = 1.0
    assert np.isfinite(Pointwise().predict(x)).all()
    assert np.isfinite(Pointwise().predict(np.zeros((1, 3, 100), np.float32))).all()


# ---- the scoring table, on the tiny graph -------------------------------------------------------

def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_teachers", os.path.join(REPO, "benchmarks", "teachers.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scoring_table_on_a_tiny_set(tiny_root, tmp_path, capsys):
    x = np.zeros((4, 3, 600), np.float32)
    for i in range(3):
        x[i, 1, 80 + 8 * i] = 30.0                 # N burst -> P at 83.5 + 8 i (the tiny graph's rows)
        x[i, 0, 400] = 30.0                        # Z burst -> S at 403.5
    p_idx = np.array([83, 91, -1, -1])             # window 2: P not labelled (not scored), window 3: noise
    s_idx = np.array([403, 403, 403, -1])
    labeled = tmp_path / "labeled"
    labeled.mkdir()
    np.savez(labeled / "tiny_set.npz", X=x, p_idx=p_idx, s_idx=s_idx, fs=np.float32(100.0),
             noise=np.array([False, False, False, True]), ids=np.array(["a", "b", "c", "d"]))
    bench = _bench()
    out = str(tmp_path / "out")
    rc = bench.main(["--teachers", "lppnt", "--root", tiny_root, "--labeled", str(labeled), "--ncedc",
                     str(tmp_path / "none.npz"), "--threshold", "0.5", "--out", out, "--name", "t"])
    assert rc == 0
    r = json.load(open(os.path.join(out, "t.json")))
    (row,) = r["rows"]
    assert row["dataset"] == "tiny_set" and row["P_labels"] == 2 and row["S_labels"] == 3
    assert row["P_f1"] == 1.0 and row["S_f1"] == 1.0 and row["S_as_P"] == 0
    assert row["false_picks_per_hour"] == 0.0 and row["P_best"][1] == 1.0
    assert r["timing"]["lppnt"]["cpu_s_per_station_hour"] > 0
    md = open(os.path.join(out, "t.md")).read()
    assert "| lppnt | tiny_set (4) | 1.000 |" in md and "tuned-on-test" in md
    assert "tiny_set: P lppnt 1.000, S lppnt 1.000" in md
    os.remove(os.path.join(out, "t.md"))
    assert bench.main(["--render", "--out", out, "--name", "t"]) == 0
    assert open(os.path.join(out, "t.md")).read() == md
    assert bench.main(["--root", str(tmp_path / "absent"), "--out", out]) == bench.SKIPPED_RC
    assert "SKIPPED: teachers folder" in capsys.readouterr().out


# ---- GPD: Keras weights into the PyTorch module ---------------------------------------------------

def keras_gpd_reference(x, w):
    """GPD's Keras Sequential in numpy, channels last: x (B, 400, 3) -> (B, 3)."""
    def bn(h, name):
        return (h - w[name]["moving_mean"]) / np.sqrt(w[name]["moving_variance"] + 1e-3) * w[name]["gamma"] \
            + w[name]["beta"]

    h = x
    for i in range(1, 5):
        kernel, bias = w["conv1d_%d" % i]["kernel"], w["conv1d_%d" % i]["bias"]
        k = kernel.shape[0]
        padded = np.pad(h, ((0, 0), (k // 2, k // 2), (0, 0)))
        h = sum(np.einsum("bti,io->bto", padded[:, j:j + h.shape[1]], kernel[j]) for j in range(k)) + bias
        h = np.maximum(bn(h, "batch_normalization_%d" % i), 0)
        h = h.reshape(h.shape[0], h.shape[1] // 2, 2, h.shape[2]).max(axis=2)
    h = h.reshape(h.shape[0], -1)
    for i in (1, 2):
        h = np.maximum(bn(h @ w["dense_%d" % i]["kernel"] + w["dense_%d" % i]["bias"],
                          "batch_normalization_%d" % (i + 4)), 0)
    z = h @ w["dense_3"]["kernel"] + w["dense_3"]["bias"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_gpd_keras_weights_map_onto_the_module(tmp_path, rng):
    torch = pytest.importorskip("torch")
    h5py = pytest.importorskip("h5py")
    from fieldpick.train.teachers.gpd import build_gpd, load_keras_weights

    shapes = {"conv1d_1": (21, 3, 32), "conv1d_2": (15, 32, 64), "conv1d_3": (11, 64, 128),
              "conv1d_4": (9, 128, 256), "dense_1": (6400, 200), "dense_2": (200, 200), "dense_3": (200, 3)}
    w = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[:-1]))
        w[name] = {"kernel": rng.standard_normal(shape) / np.sqrt(fan_in), "bias": rng.standard_normal(shape[-1]) * 0.1}
    for i, n in enumerate([32, 64, 128, 256, 200, 200], start=1):
        w["batch_normalization_%d" % i] = {"gamma": 1 + 0.1 * rng.standard_normal(n), "beta": 0.1 * rng.standard_normal(n),
                                           "moving_mean": 0.1 * rng.standard_normal(n),
                                           "moving_variance": rng.uniform(0.5, 2.0, n)}
    path = str(tmp_path / "model_pol_best.hdf5")
    with h5py.File(path, "w") as f:
        seq = f.create_group("model_weights").create_group("sequential_1")
        for layer, arrays in w.items():
            g = seq.create_group(layer + "_1")
            for what, value in arrays.items():
                g.create_dataset(what + ":0", data=value.astype(np.float32))
        f["model_weights"].create_group("lambda_1")
    model = load_keras_weights(build_gpd(), path).eval()
    x = rng.standard_normal((2, 400, 3)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))).numpy()
    np.testing.assert_allclose(got, keras_gpd_reference(x.astype(np.float64), w), atol=1e-4)


# ---- ensemble ------------------------------------------------------------------------------------

class Constant(Teacher):
    def __init__(self, p, s):
        super().__init__()
        self.name, self.trained_on, self.p, self.s = "c%g" % p, "nowhere", p, s

    def _predict100(self, x):
        out = np.empty((x.shape[0], 2, x.shape[2]), np.float32)
        out[:, 0], out[:, 1] = self.p, self.s
        return out


def test_ensemble_weighted_mean_and_errors():
    x = np.zeros((2, 3, 17), np.float32)
    e = Ensemble([Constant(0.2, 0.4), Constant(0.8, 0.0)])
    np.testing.assert_allclose(e.predict(x)[:, 0], 0.5, atol=1e-6)
    np.testing.assert_allclose(e.predict(x)[:, 1], 0.2, atol=1e-6)
    w = Ensemble([Constant(0.2, 0.4), Constant(0.8, 0.0)], weights=[3, 1]).predict(x, fs=50.0)
    assert w.shape == (2, 2, 17)
    np.testing.assert_allclose(w[:, 0], 0.35, atol=1e-6)
    assert "c0.2+c0.8" in e.name
    with pytest.raises(ConfigError, match="1 weights for 2"):
        Ensemble([Constant(0, 0), Constant(1, 1)], weights=[1])
    with pytest.raises(ConfigError, match="weights"):
        Ensemble([Constant(0, 0)], weights=[-1])
    with pytest.raises(ConfigError, match="no teachers"):
        Ensemble([])
    with pytest.raises(ConfigError, match="'nope'"):
        Ensemble(["nope"])


# ---- real weights --------------------------------------------------------------------------------

def real_root():
    if not os.path.isdir(TEACHERS):
        pytest.skip("teacher weights not found at %s (set %s); they are never committed" % (TEACHERS, ENV))
    return TEACHERS


def ncedc_three():
    path = os.path.join(NCEDC, "phasenet_ncedc_90s.npz")
    if not os.path.exists(path):
        pytest.skip("real NCEDC windows not found at %s (set FIELDPICK_NCEDC)" % NCEDC)
    d = np.load(path)
    # three three-component traces, cut to 60 s with P at 20 s
    three = np.flatnonzero(d["n_components"] == 3)[:3]
    return d["waveforms"][three, :, 1000:7000], d["p_idx"][three] - 1000


@pytest.mark.slow
@pytest.mark.parametrize("name", TEACHER_NAMES + EXTRA_TEACHERS)
def test_real_teacher_finds_p_on_ncedc(name):
    t = load_teacher(name, root=real_root())
    x, p_idx = ncedc_three()
    p = t.predict(x)
    assert p.shape == (3, 2, x.shape[-1]) and np.isfinite(p).all()
    near = np.abs(np.argmax(p[:, 0], axis=-1) - p_idx) <= 50
    assert near.sum() >= 2, (name, np.argmax(p[:, 0], axis=-1), p_idx)
    vertical = x.copy()
    vertical[:, 1:] = 0
    assert np.isfinite(t.predict(vertical[:1, :, :700])).all()


def test_phasenetlight_equals_seisbench():
    torch = pytest.importorskip("torch")
    sbm = pytest.importorskip("seisbench.models")
    t = load_teacher("phasenetlight", root=real_root())
    x, _ = ncedc_three()
    x = x[:, :, :3001].astype(np.float32)
    ref = sbm.PhaseNetLight(phases="PSN", norm="peak")
    ref.load_state_dict(torch.load(t.path, map_location="cpu", weights_only=True))
    ref.eval()
    with torch.no_grad():
        want = ref(ref.annotate_batch_pre(torch.from_numpy(x), {})).numpy()[:, :2]
    got = t._run(x - x.mean(axis=-1, keepdims=True))
    np.testing.assert_allclose(got, want, atol=1e-4)
    # one window, 3001 samples: predict sees exactly the window seisbench sees
    np.testing.assert_allclose(t.predict(x), want, atol=1e-4)
