"""Smoke tests of the standalone benchmark scripts: they run on tiny budgets and write what they say."""

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name):
    spec = importlib.util.spec_from_file_location("bench_" + name, os.path.join(ROOT, "benchmarks", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_interpreter_floor_times_the_blas_calls_inside_real_runs(tmp_path):
    pytest.importorskip("ai_edge_litert")
    mod = _script("interpreter_floor")
    import fieldpick.edge.tflite.kernels.conv as conv

    before = conv.np
    assert mod.main(["--rounds", "3", "--out", str(tmp_path / "floor")]) == 0
    assert conv.np is before  # numpy is given back to the kernels
    r = json.loads((tmp_path / "floor.json").read_text())
    from fieldpick.edge.tflite.reader import read_model

    with open(os.path.join(ROOT, "edge", "models", "fieldpick-default.tflite"), "rb") as f:
        ops = [op.name for op in read_model(f.read()).subgraphs[0].operators]
    assert r["calls_per_window"] == sum(n in ("CONV_2D", "DEPTHWISE_CONV_2D") for n in ops)  # one per conv
    assert 0 < r["floor_ms"] < r["numpy_ms"] and r["litert_ms"] > 0
    assert "calls alone / litert" in (tmp_path / "floor.md").read_text()


def test_synthetic_realism_counts_what_a_model_picks(tmp_path):
    mod = _script("synthetic_realism")
    assert mod.main(["--windows", "6", "--checkpoint", os.path.join(ROOT, "train", "artifacts", "default.pt"),
                     "--out", str(tmp_path / "real")]) == 0
    r = json.loads((tmp_path / "real.json").read_text())
    assert {"now", "legacy"} <= set(r["shapes"])
    (rows,) = r["models"].values()
    for g in ("now", "legacy"):
        c = rows[g]
        assert c["P_labels"] == c["S_labels"] == 6 and 0 <= c["S_as_P"] <= 6 and 0 <= c["S"] <= 6
    assert np.isfinite(r["shapes"]["now"]["s_over_coda"][1])


def test_falsepicks_finds_padded_gaps_seconds_picks_and_reads_the_trigger():
    mod = _script("pareto").stage_module("falsepicks")
    fs = 100.0
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((3, 3, 3000)).astype(np.float32)
    waves[0, :, :700] = 0.0            # a trace that began 7 s into the window, zero-padded
    waves[1, 1:, :] = 0.0              # vertical-only: the empty horizontals are no gap
    waves[1, 0, 2000:2040] = waves[1, 0, 2000]  # 0.4 s held: shorter than a gap
    waves[2, 2, 100:200] = 5.0         # 1 s held mid-trace
    assert mod.flat_runs(waves, fs) == [[(0, 699)], [], [(100, 199)]]
    assert mod.seconded([("P", 1000, 0.9), ("S", 2000, 0.7)], [("S", 1040, 0.6)], fs) == [True, False]
    assert mod.seconded([("P", 1000, 0.9)], [], fs) == [False]
    quake = rng.standard_normal((1, 3, 3000)) * 0.1
    quake[0, :, 1500:1700] += 5.0 * rng.standard_normal((3, 200))
    cft = mod.stalta_traces(quake, fs)[0]
    assert mod.stalta_near(cft, 1500, fs) > 5.0 > mod.stalta_near(cft, 2600, fs)
    assert np.isnan(mod.stalta_near(cft, 300, fs))  # inside the LTA's warm-up: no reading
