"""Classic baselines: picks on signals with known onsets, the ar_pick guard, tuning, station halves, the eval verb."""

import json

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.train import baselines as B
from fieldpick.train import evaluate as E
from fieldpick.train.data.synthetic import synthetic_set

CLEAN = dict(spike_prob=0.0, gap_prob=0.0, clip_prob=0.0, dead_channel_prob=0.0, vertical_only_prob=0.0,
             dc_offset_prob=0.0, second_event_prob=0.0, burst_prob=0.0)


def _step(rng, onset=2000, T=3000, ratio=20.0):
    """White noise whose standard deviation jumps from 1 to ``ratio`` at ``onset`` on every channel."""
    x = rng.normal(0.0, 1.0, (3, T))
    x[:, onset:] *= ratio
    return x


@pytest.mark.parametrize("name", ["stalta", "pkbaer", "arpick"])
def test_p_on_a_noise_step_is_found_within_a_quarter_second(rng, name):
    got = B.make(name).pick(_step(rng), 100.0)
    assert len(got["P"]) >= 1
    assert min(abs(p - 2000) for p in got["P"]) <= 25


@pytest.mark.parametrize("name", ["stalta", "pkbaer", "arpick"])
def test_clean_synthetic_events_are_picked(name):
    ws = synthetic_set(8, 5, "test", noise_fraction=0.0, snr_db_min=30, snr_db_max=30, impulsive_fraction=1.0, **CLEAN)
    # the LTA needs warming up: obspy's recursive STA/LTA is zero for the first lta_s seconds
    s = B.score(B.make(name, lta_s=2.0) if name == "stalta" else B.make(name), ws)
    assert s["P"].recall >= 0.75 and s["P"].residual_mae_s < 0.15


def test_arpick_skips_s_when_p_is_earlier_than_lta_s(rng):
    x = _step(rng, onset=150)  # P at 1.5 s, lta_s_s = 4 s
    got = B.make("arpick", lta_s_s=4.0).pick(x, 100.0)
    assert got["P"] and got["S"] == []
    vertical = _step(rng, onset=1500)
    vertical[1:] = 0.0
    assert B.make("arpick").pick(vertical, 100.0)["S"] == []


def test_pkbaer_and_arpick_give_no_pick_on_silence():
    zeros = np.zeros((3, 3000))
    zeros[:, ::7] = 1e-3  # not exactly flat, or the filters have nothing to divide by
    assert B.make("pkbaer").pick(zeros, 100.0)["P"] == []


def test_tune_walks_the_grid_and_removes_the_stalta_delay():
    ws = synthetic_set(6, 2, "val", noise_fraction=0.0, snr_db_min=25, snr_db_max=25, **CLEAN)
    grid = {"on": [3.0, 6.0], "sta_s": [0.5]}
    picker, obj, table = B.tune("stalta", ws, grid)
    assert len(table) == 2 and {t[0]["on"] for t in table} == {3.0, 6.0}
    assert picker.params.on in (3.0, 6.0) and 0.0 <= obj <= 1.0
    raw = B.score(B.make("stalta", on=picker.params.on, sta_s=0.5), ws)["P"]
    assert picker.params.shift_s == pytest.approx(float(np.median(raw.residuals_s)))


def test_station_halves_are_disjoint_and_deterministic():
    st = np.array(["A.1", "A.2", "A.1", "B.3", "C.4", "B.3"])
    v, t = B.station_halves(st, 0)
    assert not (set(st[v]) & set(st[t])) and (v | t).all()
    v2, _ = B.station_halves(st, 0)
    np.testing.assert_array_equal(v, v2)


def test_run_stream_finds_each_onset_once_in_ns(rng):
    x = rng.normal(0.0, 1.0, (3, 12000))
    x[:, 5000:5600] *= 30.0  # one burst at 50 s: seen by several overlapping windows, reported once
    picks = B.run_stream(B.make("stalta", lta_s=5.0), x, 100.0, start_ns=10 ** 18, window_s=30.0, hop_s=10.0)
    assert len(picks["P"]) == 1 and len(picks["S"]) == 0
    assert abs(picks["P"][0] - (10 ** 18 + 50 * 10 ** 9)) <= 250_000_000
    with pytest.raises(ConfigError, match="hop_s=40 and window_s=30"):
        B.run_stream(B.make("stalta"), x, 100.0, hop_s=40, window_s=30)


def test_eval_verb_on_a_synthetic_stream(capsys):
    assert E.main(["stalta", "--data", "stream", "--minutes", "10", "--param", "lta_s=2"]) == 0
    text = capsys.readouterr().out
    assert "on a 10-minute synthetic stream" in text and "noise/h" in text
    with pytest.raises(ConfigError, match="--data stream scores the baselines"):
        E.evaluate(E.EvalConfig(picker="model.pt", data="stream"))


def test_unknown_baseline_and_parameter():
    with pytest.raises(ConfigError, match="baseline 'aic'; allowed: stalta, pkbaer, arpick"):
        B.make("aic")
    with pytest.raises(ConfigError, match=r"pkbaer has no parameter\(s\) sta_s; allowed: tdownmax_s"):
        B.make("pkbaer", sta_s=1)


def test_eval_verb_on_synthetic_writes_json(tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert E.main(["pkbaer", "--data", "synthetic", "--n", "8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("pkbaer(") and "noise/h" in text
    blob = json.loads(out.read_text())
    assert blob["format"] == "fieldpick-eval" and blob["scores"]["phases"]["P"]["labels"] == 8


def test_eval_verb_on_ncedc_halves(ncedc_dir, capsys):
    assert E.main(["pkbaer", "--data", "ncedc", "--path", ncedc_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    p_row = next(line for line in lines if line.startswith("P "))
    labels = int(p_row.split()[1])
    assert 50 < labels < 104  # one station half of the 154 windows
    assert float(p_row.split()[6]) > 0.5  # pk_baer's P F1 on real data


def test_eval_config_errors():
    with pytest.raises(ConfigError, match="--data stead needs --path"):
        E.evaluate(E.EvalConfig(picker="stalta", data="stead"))
    with pytest.raises(ConfigError, match="picker 'nofile.pt' is neither a baseline"):
        E.evaluate(E.EvalConfig(picker="nofile.pt", data="synthetic", n=2, noise=False))


@pytest.mark.slow
def test_eval_runs_a_zoo_checkpoint(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from fieldpick.train.checkpoint import save_checkpoint
    from fieldpick.train.models import build

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build("lppn").eval()
    path = tmp_path / "lppn.pt"
    save_checkpoint(str(path), model)
    out = tmp_path / "lppn.json"
    assert E.main([str(path), "--data", "synthetic", "--n", "4", "--no-noise", "--json", str(out)]) == 0
    assert capsys.readouterr().out.startswith("lppn.pt on synthetic")
    phases = json.loads(out.read_text())["scores"]["phases"]
    assert phases["P"]["labels"] == 4 and phases["S"]["labels"] == 4
