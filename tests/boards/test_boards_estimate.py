"""The cost estimator and the board profiles: hand-checked numbers and strict profile loading."""

import copy
import json
import os

import pytest

from fieldpick.boards.estimate import (
    LayerWork,
    Operation,
    Workload,
    efficiency_of,
    estimate,
    host_profile,
    list_profiles,
    load_profile,
    table,
    validate_profile,
)
from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec
from fieldpick.edge.errors import ConfigError

BOARDS = ["jetson_nano", "jetson_orin_nano", "rpi4b", "rpi5", "rpizero2w"]


def toy_profile():
    """1 GHz x 2 FLOPs/cycle x 0.5 = 1 GFLOP/s; 1 GB/s; 1 ms per op; 4 cores, 2 W idle, 6 W busy."""
    return validate_profile({
        "format": "fieldpick-board-profile", "version": 1, "name": "toy", "title": "toy board",
        "cpu": {"model": "toy", "arch": "aarch64", "cores": 4, "clock_hz": 1e9, "fp32_flops_per_cycle": 2,
                "int8_ops_per_cycle": 4, "int8_dot_product": False},
        "memory": {"ram_bytes": 1 << 30, "sustained_bandwidth_bytes_per_s": 2e9},
        "power": {"idle_w": 2.0, "all_cores_busy_w": 6.0},
        "software": {"os": "toy", "python": "3.11", "glibc": "2.36"},
        "efficiency": {"numpy": {"fraction_of_fp32_peak": 0.5, "fraction_of_bandwidth": 0.5,
                                 "overhead_s_per_op": 1e-3, "baseline_rss_bytes": 1000000, "estimate": True}},
        "measured": None,
    })


def toy_workload(arena=5000):
    # 30 s windows at 100 Hz, 3 channels; one op of 1 MFLOP / 1 MB, one op of no work
    return Workload("toy", [LayerWork("CONV_2D", 10**6, 10**6), LayerWork("RESHAPE", 0, 0)],
                    model_bytes=20000, window_samples=3000, sampling_rate_hz=100.0, channels=3, arena_bytes=arena)


def test_latency_duty_and_energy_by_hand():
    e = estimate(toy_workload(), toy_profile(), Operation(overlap=0.5, gate_open_fraction=0.1, ring_seconds=10))
    # 2 ops x 1 ms + 1e6 FLOP / 1e9 FLOP/s + 1e6 B / 1e9 B/s = 4 ms
    assert e.latency_s == pytest.approx(4e-3)
    assert (e.compute_s, e.memory_s, e.overhead_s) == pytest.approx((1e-3, 1e-3, 2e-3))
    assert e.windows_per_s == pytest.approx(1 / 15.0)  # a window every 15 s
    assert e.duty_continuous == pytest.approx(4e-3 / 15)
    assert e.cpu_fraction_continuous == pytest.approx(4e-3 / 15 / 4)
    # gated: a tenth of the windows plus the STA/LTA gate, 2e-7 s x 100 Hz x 3 channels
    assert e.duty_gated == pytest.approx(4e-3 / 15 * 0.1 + 6e-5)
    # one busy core costs (6 - 2) / 4 = 1 W over idle
    assert e.picker_wh_per_day_continuous == pytest.approx(24 * 4e-3 / 15)
    assert e.energy_wh_per_day_continuous == pytest.approx(48 + 24 * 4e-3 / 15)
    assert e.energy_wh_per_day_gated == pytest.approx(48 + 24 * (4e-3 / 15 * 0.1 + 6e-5))
    # memory: baseline + model + arena + ring of 10 s x 100 Hz x 3 channels x 4 bytes
    assert e.memory_bytes == 1000000 + 20000 + 5000 + 12000
    assert e.basis == "estimate"


def test_unknown_arena_is_a_stated_assumption():
    e = estimate(toy_workload(arena=0), toy_profile(), Operation(ring_seconds=0))
    assert e.memory_bytes == 1000000 + 20000 + 3000 * 16 * 4 * 2
    assert any("activation memory unknown" in n for n in e.notes)


def test_a_board_that_cannot_keep_up_says_so():
    wl = Workload("big", [LayerWork("CONV_2D", 20 * 10**9, 0)], 0, 3000, 100.0)
    e = estimate(wl, toy_profile(), Operation(overlap=0.5))
    assert e.duty_continuous == pytest.approx((20.0 + 1e-3) / 15)
    assert any("cannot keep up" in n for n in e.notes)


def test_no_power_figures_means_no_energy():
    p = toy_profile()
    p["power"] = {"idle_w": None, "all_cores_busy_w": None}
    e = estimate(toy_workload(), p)
    assert e.energy_wh_per_day_continuous is None and e.picker_wh_per_day_gated is None
    assert "n/a" in table([e])


def test_measured_block_wins_over_the_estimate():
    p = toy_profile()
    p["measured"] = {"date": "2026-11-22T00:00:00Z", "runtimes": {"numpy": {
        "fraction_of_fp32_peak": 1.0, "fraction_of_bandwidth": 1.0, "overhead_s_per_op": 0.0}}}
    validate_profile(p)
    e = estimate(toy_workload(), p)
    assert e.latency_s == pytest.approx(0.5e-3 + 0.5e-3)  # 2 GFLOP/s and 2 GB/s, no per-op cost
    assert e.basis.startswith("measured 2026-11-22")


def test_fixed_cost_by_op_kind_and_per_window():
    p = toy_profile()
    p["efficiency"]["numpy"]["overhead_s_by_op"] = {"RESHAPE": 0.0, "CONV_2D": 2e-3}
    p["efficiency"]["numpy"]["overhead_s_per_window"] = 5e-3
    e = estimate(toy_workload(), p)
    # window 5 ms + CONV_2D 2 ms + RESHAPE 0 + 1 ms compute + 1 ms memory
    assert e.latency_s == pytest.approx(9e-3)
    assert e.overhead_s == pytest.approx(7e-3)
    wl = Workload("other", [LayerWork("SOFTMAX", 0, 0)], 0, 3000, 100.0)
    assert estimate(wl, p).latency_s == pytest.approx(5e-3 + 1e-3)  # an unlisted kind costs overhead_s_per_op


def test_runtime_without_figures_is_an_error():
    with pytest.raises(ConfigError, match="no efficiency figures for runtime 'xnnpack_int8'; it has: numpy"):
        estimate(toy_workload(), toy_profile(), Operation(runtime="xnnpack_int8"))


@pytest.mark.parametrize("field, value, match", [
    ("overlap", 1.0, r"overlap is 1.0; it must lie in \[0, 1\)"),
    ("gate_open_fraction", -0.1, r"gate_open_fraction is -0.1; it must lie in \[0, 1\]"),
    ("ring_seconds", -1, "ring_seconds is -1"),
    ("runtime", "tvm", "runtime is 'tvm'; allowed: 'numpy', 'xnnpack_int8'"),
])
def test_bad_operation(field, value, match):
    op = Operation()
    setattr(op, field, value)
    with pytest.raises(ConfigError, match=match):
        op.validate()


def _bad(path, value):
    p = copy.deepcopy(toy_profile())
    node = p
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return p


@pytest.mark.parametrize("path, value, match", [
    (("format",), "x", "has format 'x'; expected 'fieldpick-board-profile'"),
    (("version",), 2, "is profile version 2; this fieldpick reads version 1"),
    (("colour",), "red", "unknown key\\(s\\) colour"),
    (("cpu", "cores"), 0, r"cpu.cores is 0; it must be a number > 0"),
    (("cpu", "clock_hz"), KeyError, "cpu has no 'clock_hz'; it is required"),
    (("power", "all_cores_busy_w"), 1.0, "all_cores_busy_w 1.0 is below idle_w 2.0"),
    (("efficiency", "tflite"), {}, "efficiency has runtime 'tflite'; allowed: numpy, xnnpack_int8"),
    (("efficiency", "numpy", "fraction_of_fp32_peak"), 1.5, r"fraction_of_fp32_peak is 1.5; it must lie in \(0, 1\]"),
    (("efficiency", "numpy", "overhead_s_per_op"), -1, "overhead_s_per_op is -1; it must be a number >= 0"),
])
def test_bad_profiles_name_the_value(path, value, match):
    with pytest.raises(ConfigError, match=match):
        validate_profile(_bad(path, value))


def test_unknown_board_lists_the_boards():
    with pytest.raises(ConfigError, match="unknown board 'rpi9'; choose one of: jetson_nano, .*rpizero2w"):
        load_profile("rpi9")


def test_bad_json_profile_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="x.json is not valid JSON"):
        load_profile(str(path))


def test_the_five_boards_ship_with_sources_and_estimates_marked():
    assert list_profiles() == BOARDS
    for name in BOARDS:
        p = load_profile(name)
        assert p["name"] == name
        for block in ("cpu", "memory", "power", "software"):
            assert p[block].get("source"), "%s.%s has no source" % (name, block)
        assert p["power"]["estimate"] is True  # nobody has put a meter on our boards yet
        numpy_eff = p["efficiency"]["numpy"]
        assert numpy_eff["estimate"] is True and "fieldpick bench --write-profile" in numpy_eff["note"]
        assert p["written"] == "2026-11-22"
    # the facts TOOLCHAIN.md states
    assert load_profile("rpi4b")["cpu"]["int8_dot_product"] is False
    assert load_profile("rpizero2w")["cpu"]["int8_dot_product"] is False
    assert load_profile("rpi5")["cpu"]["int8_dot_product"] is True
    assert load_profile("jetson_orin_nano")["cpu"]["int8_dot_product"] is True
    assert load_profile("jetson_orin_nano")["software"]["python"].startswith("3.10")
    assert load_profile("rpi4b")["software"]["glibc"] == "2.36"


def test_boards_rank_as_their_cores_do():
    """Same model, estimated numpy latency: Pi 5 < Pi 4 < Zero 2 W."""
    wl = toy_workload()
    lat = {b: estimate(wl, load_profile(b)).latency_s for b in ("rpi5", "rpi4b", "rpizero2w")}
    assert lat["rpi5"] < lat["rpi4b"] < lat["rpizero2w"]


CPUINFO_X86 = """processor\t: 0
model name\t: Test CPU 9000
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse avx avx2 fma avx_vnni

processor\t: 1
model name\t: Test CPU 9000
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse avx avx2 fma avx_vnni

processor\t: 2
model name\t: Test CPU 9000
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse avx avx2 fma avx_vnni
"""


def test_host_profile_reads_cpuinfo(tmp_path, monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    (tmp_path / "cpuinfo").write_text(CPUINFO_X86)
    (tmp_path / "meminfo").write_text("MemTotal:        2048 kB\nMemFree: 1 kB\n")
    p = host_profile(str(tmp_path / "cpuinfo"), str(tmp_path / "meminfo"))
    assert p["cpu"]["model"] == "Test CPU 9000"
    assert p["cpu"]["cores"] == 3
    assert p["cpu"]["clock_hz"] == pytest.approx(2e9)
    assert p["cpu"]["fp32_flops_per_cycle"] == 32  # AVX2 + FMA
    assert p["cpu"]["int8_dot_product"] is True  # avx_vnni
    assert p["memory"]["ram_bytes"] == 2048 * 1024
    assert p["power"]["idle_w"] is None


def test_host_profile_takes_the_bench_measurement(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO_X86)
    measured = {"date": "2026-11-22T01:02:03Z", "bandwidth_bytes_per_s": 3e9,
                "runtimes": {"numpy": {"fraction_of_fp32_peak": 0.25, "fraction_of_bandwidth": 0.5,
                                       "overhead_s_per_op": 1e-5, "baseline_rss_bytes": 4000000}}}
    p = host_profile(str(tmp_path / "cpuinfo"), str(tmp_path / "nope"), measured=measured)
    assert p["memory"]["sustained_bandwidth_bytes_per_s"] == 3e9
    assert efficiency_of(p, "numpy") == (0.25, 0.5, 1e-5, 4000000, "measured 2026-11-22T01:02:03Z")


def _card(flops=2 * 10**6):
    return ModelCard(name="tiny", architecture="lppn", input=InputSpec(100.0, 3000),
                     output=OutputSpec("stride_class_offset", ["N", "P", "S"], stride_samples=10),
                     thresholds={"P": 0.5, "S": 0.5}, model_bytes=30000, flops_per_window=flops)


def test_workload_from_card_totals():
    wl = Workload.from_card(_card(), op_count=5)
    assert len(wl.layers) == 5 and wl.flops == 2 * 10**6
    # weights + the window in and out at one byte per value
    assert wl.layers[0].bytes == 30000 + 3000 * 3 * 2
    assert wl.window_s == pytest.approx(30.0)
    e = estimate(wl, toy_profile(), Operation(ring_seconds=0))
    assert e.latency_s == pytest.approx(5e-3 + 2e-3 + (30000 + 18000) / 1e9)


def test_card_without_flops_is_refused():
    with pytest.raises(ConfigError, match="flops_per_window 0; the estimator needs FLOPs > 0"):
        Workload.from_card(_card(flops=0))


def test_profiles_are_plain_json_files():
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "boards", "profiles")
    for name in BOARDS:
        with open(os.path.join(folder, name + ".json")) as f:
            assert json.load(f)["measured"] is None  # filled on the board by fieldpick bench


def test_other_ops_run_at_their_own_rates():
    p = toy_profile()
    p["efficiency"]["numpy"]["other_ops"] = {"fraction_of_fp32_peak": 0.05, "fraction_of_bandwidth": 0.25}
    validate_profile(p)
    wl = Workload("mixed", [LayerWork("CONV_2D", 10**6, 10**6), LayerWork("ADD", 10**6, 10**6)], 0, 3000, 100.0)
    e = estimate(wl, p)
    # CONV_2D: 1 ms op + 1 ms compute + 1 ms memory; ADD: 1 ms op + 1e6 / 1e8 s + 1e6 / 5e8 s
    assert e.latency_s == pytest.approx(3e-3 + 1e-3 + 10e-3 + 2e-3)
    del p["efficiency"]["numpy"]["other_ops"]
    assert estimate(wl, p).latency_s == pytest.approx(6e-3)  # without the block: the convolutions' rates


@pytest.mark.parametrize("other, match", [
    ({"fraction_of_fp32_peak": 1.5}, r"other_ops.fraction_of_fp32_peak is 1.5; it must lie in \(0, 1\]"),
    ({"rate": 0.5}, "other_ops is {'rate': 0.5}; expected an object with fraction_of_fp32_peak"),
])
def test_bad_other_ops_block(other, match):
    p = toy_profile()
    p["efficiency"]["numpy"]["other_ops"] = other
    with pytest.raises(ConfigError, match=match):
        validate_profile(p)
