"""``fieldpick bench``: the reference int8 conv, the work counts, the fit, and writing a profile."""

import json
import os
import shutil

import numpy as np
import pytest

from fieldpick.boards import bench
from fieldpick.boards.estimate import PROFILE_DIR, estimate, load_profile
from fieldpick.edge.errors import ConfigError


def slow_conv(x, w, bias, scale, stride):
    """Loops and int64: obviously right."""
    T, cin = x.shape
    K, _, cout = w.shape
    t_out = (T - K) // stride + 1
    out = np.zeros((t_out, cout), dtype=np.int64)
    for t in range(t_out):
        for o in range(cout):
            acc = int(bias[o])
            for k in range(K):
                for c in range(cin):
                    acc += int(x[t * stride + k, c]) * int(w[k, c, o])
            out[t, o] = min(127, max(-128, int(np.rint(acc * scale))))
    return out


@pytest.mark.parametrize("T, cin, cout, K, stride", [(20, 3, 4, 3, 1), (31, 2, 5, 4, 2), (9, 1, 1, 1, 3)])
def test_reference_conv_matches_loops(rng, T, cin, cout, K, stride):
    x = rng.integers(-128, 128, size=(T, cin)).astype(np.int8)
    w = rng.integers(-128, 128, size=(K, cin, cout)).astype(np.int8)
    b = rng.integers(-500, 500, size=cout).astype(np.int32)
    scale = 1.0 / 256  # a power of two: float32 and the loops round identically
    got = bench.conv1d_int8(x, w, b, scale, stride)
    assert got.dtype == np.int8 and got.shape == ((T - K) // stride + 1, cout)
    np.testing.assert_array_equal(got, slow_conv(x, w, b, scale, stride))


def test_conv_work_by_hand():
    # T=10, Cin=2, Cout=3, K=3: 8 outputs; im2col n = 8*3*2 = 48, output m = 24
    flops, nbytes = bench.conv_work(10, 2, 3, 3, 1)
    assert flops == 2 * 48 * 3 == 288
    assert nbytes == 11 * 48 + 41 * 24 + 5 * 18 + 20 == 1622
    assert bench.conv_work(10, 2, 3, 3, 2)[0] == 2 * (4 * 3 * 2) * 3  # stride 2: 4 outputs


def test_fit_recovers_known_costs():
    f = np.array([1e3, 1e5, 1e6, 4e6, 1e7, 5e7])
    b = np.array([5e4, 1e4, 3e6, 2e5, 9e6, 1e6])
    t = 2e-5 + f / 4e9 + b / 1e10
    ovh, rate, stream = bench.fit_rate(f, b, t)
    assert ovh == pytest.approx(2e-5, rel=1e-6)
    assert rate == pytest.approx(4e9, rel=1e-6)
    assert stream == pytest.approx(1e10, rel=1e-6)


def test_fit_leaves_out_a_term_that_would_cost_less_than_nothing():
    f = np.array([1e3, 1e5, 1e6, 4e6, 1e7])
    b = np.array([9e6, 1e6, 4e6, 2e5, 3e5])
    t = 1e-5 + f / 2e9 - b / 1e12  # a byte term would need a negative cost
    ovh, rate, stream = bench.fit_rate(f, b, t)
    assert stream == float("inf")
    assert rate == pytest.approx(2e9, rel=0.05)


def test_fit_refuses_timings_that_do_not_grow():
    with pytest.raises(ConfigError, match="too noisy to fit"):
        bench.fit_rate([1e3, 1e4, 1e5, 1e6, 1e7, 1e8], [1e3, 1e4, 1e5, 1e6, 1e7, 1e8],
                       [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])


def test_fit_ops_gives_each_op_kind_its_own_fixed_cost():
    from fieldpick.boards.estimate import LayerWork

    truth = {"CONV_2D": 30e-6, "RESHAPE": 1e-6, "SOFTMAX": 200e-6}
    samples = []
    for op, flops in [("CONV_2D", 1e5), ("CONV_2D", 2e6), ("CONV_2D", 8e6), ("RESHAPE", 0),
                      ("RESHAPE", 0), ("SOFTMAX", 3e3), ("SOFTMAX", 9e3), ("CONV_2D", 5e5)]:
        samples.append((LayerWork(op, int(flops), 0), truth[op] + flops / 1e10))
    fit = bench.fit_ops(samples)
    assert fit["rate_flops_per_s"] == pytest.approx(1e10, rel=1e-6)
    for op, cost in truth.items():
        assert fit["overhead_s_by_op"][op] == pytest.approx(cost, rel=1e-6, abs=1e-12)
    assert fit["overhead_s_per_op"] == pytest.approx(30e-6)  # the median kind, for kinds never seen
    assert fit["rms"] == pytest.approx(0.0, abs=1e-9)


def test_fit_ops_gives_convolutions_and_other_ops_their_own_rates():
    from fieldpick.boards.estimate import LayerWork

    truth = {"CONV_2D": 30e-6, "ADD": 5e-6, "RESHAPE": 1e-6}
    samples = []
    for op, flops in [("CONV_2D", 1e5), ("CONV_2D", 2e6), ("CONV_2D", 8e6), ("ADD", 1e4), ("ADD", 3e5),
                      ("ADD", 1e6), ("RESHAPE", 0), ("CONV_2D", 5e5)]:
        rate = 1e10 if op == "CONV_2D" else 1e9  # an elementwise pass: 10x slower per FLOP
        samples.append((LayerWork(op, int(flops), 0), truth[op] + flops / rate))
    fit = bench.fit_ops(samples)
    assert fit["rate_flops_per_s"] == pytest.approx(1e10, rel=1e-6)
    assert fit["other_ops"]["rate_flops_per_s"] == pytest.approx(1e9, rel=1e-6)
    for op, cost in truth.items():
        assert fit["overhead_s_by_op"][op] == pytest.approx(cost, rel=1e-6, abs=1e-12)
    assert fit["rms"] == pytest.approx(0.0, abs=1e-9)


MEASURED = {
    "date": "2026-11-22T03:00:00Z",
    "machine": {"cpu": "Cortex-A72", "cores": 4, "clock_hz": 1.5e9, "arch": "aarch64", "os": "test"},
    "bandwidth_bytes_per_s": 4e9,
    "runtimes": {"numpy": {"fraction_of_fp32_peak": 0.2, "fraction_of_bandwidth": 0.5,
                           "overhead_s_per_op": 1e-4, "baseline_rss_bytes": 25000000}},
    "models": [],
}


def test_write_profile_fills_the_measured_block(tmp_path):
    path = str(tmp_path / "rpi4b.json")
    shutil.copy(os.path.join(PROFILE_DIR, "rpi4b.json"), path)
    bench.write_profile(path, MEASURED)
    p = load_profile(path)
    assert p["measured"]["date"] == "2026-11-22T03:00:00Z"
    assert not os.path.exists(path + ".tmp")
    from fieldpick.boards.estimate import LayerWork, Workload

    e = estimate(Workload("w", [LayerWork("CONV_2D", 12 * 10**6, 0)], 0, 3000, 100.0), p)
    assert e.basis == "measured 2026-11-22T03:00:00Z"
    # 1.5 GHz x 8 FLOPs x 0.2 = 2.4 GFLOP/s: 5 ms + 0.1 ms per op
    assert e.latency_s == pytest.approx(5e-3 + 1e-4)


def test_write_profile_refuses_a_bad_measurement_and_keeps_the_file(tmp_path):
    path = str(tmp_path / "rpi4b.json")
    shutil.copy(os.path.join(PROFILE_DIR, "rpi4b.json"), path)
    before = open(path).read()
    bad = json.loads(json.dumps(MEASURED))
    bad["runtimes"]["numpy"]["fraction_of_fp32_peak"] = 0
    with pytest.raises(ConfigError, match=r"fraction_of_fp32_peak is 0; it must lie in \(0, 1\]"):
        bench.write_profile(path, bad)
    assert open(path).read() == before


def test_cli_stores_a_measurement_made_on_the_board(tmp_path, capsys):
    path = str(tmp_path / "rpi4b.json")
    shutil.copy(os.path.join(PROFILE_DIR, "rpi4b.json"), path)
    meas = tmp_path / "from-the-pi.json"
    meas.write_text(json.dumps(MEASURED))
    assert bench.main(["--from-json", str(meas), "--write-profile", path]) == 0
    assert "measured 2026-11-22T03:00:00Z on Cortex-A72" in capsys.readouterr().out
    assert load_profile(path)["measured"]["runtimes"]["numpy"]["overhead_s_per_op"] == 1e-4
    with pytest.raises(ConfigError, match="--from-json needs --write-profile"):
        bench.main(["--from-json", str(meas)])


def test_cli_rejects_missing_paths(tmp_path):
    with pytest.raises(ConfigError, match="--model .*nope.tflite does not exist"):
        bench.main(["--model", str(tmp_path / "nope.tflite")])
    with pytest.raises(ConfigError, match="--write-profile .*x.json does not exist"):
        bench.main(["--write-profile", str(tmp_path / "x.json")])


@pytest.mark.slow  # ~5 s: it times 16 layers and a copy
def test_cli_quick_run_writes_json_and_profile(tmp_path, capsys):
    path = str(tmp_path / "rpi5.json")
    shutil.copy(os.path.join(PROFILE_DIR, "rpi5.json"), path)
    out = str(tmp_path / "bench.json")
    assert bench.main(["--quick", "--json", out, "--write-profile", path]) == 0
    text = capsys.readouterr().out
    assert "numpy runtime:" in text and "wrote the 'measured' block" in text
    m = json.load(open(out))
    assert len(m["conv_layers"]) == len(bench.CALIBRATION)
    assert m["bandwidth_bytes_per_s"] > 1e8  # any machine that runs Python copies faster than 100 MB/s
    assert 0 < m["runtimes"]["numpy"]["fraction_of_fp32_peak"] <= 1
    assert load_profile(path)["measured"]["date"] == m["date"]
