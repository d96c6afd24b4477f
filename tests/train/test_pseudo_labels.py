"""Pseudo-labels from continuous data and label completion, with a fake teacher whose answer is known."""

import json

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.train.data.corpus import load_labeled
from fieldpick.train.pseudo import PseudoConfig, complete_labels, label_station, main, sds_stations

FS = 100.0


class Spikes:
    """A teacher that answers Gaussian bumps at fixed samples (P at ``p``, S at ``s``), the same for every trace."""

    name = "spikes"

    def __init__(self, p=(), s=(), height=0.9):
        self.p, self.s, self.height = list(p), list(s), height

    def predict(self, waves, fs=100.0):
        n = waves.shape[-1]
        t = np.arange(n)
        out = np.zeros((len(waves), 2, n), np.float32)
        for row, where in ((0, self.p), (1, self.s)):
            for c in where:
                out[:, row] = np.maximum(out[:, row], self.height * np.exp(-0.5 * ((t - c) / 10.0) ** 2))
        return out


def curves(n, p=(), s=(), height=0.9):
    return [Spikes(p, s, height).predict(np.zeros((1, 3, n)))[0]]


def test_label_station_keeps_isolated_events_and_quiet_noise(rng):
    n = int(600 * FS)
    x = rng.normal(0, 1, (3, n)).astype(np.float32)
    # event A isolated; event B has a third arrival inside its segment; a lone P without S
    c = curves(n, p=[10000, 30000, 50000], s=[10500, 30600])
    c[0][0] = np.maximum(c[0][0], Spikes(p=[31500]).predict(np.zeros((1, 3, n)))[0][0] * 0.3 / 0.9)
    events, noise, counts = label_station(x, FS, c, PseudoConfig(), np.random.default_rng(0))
    assert [(round(p + a), round(s + a)) for a, p, s in events] == [(10000, 10500)]
    a, p, s = events[0]
    assert 100 <= p and s <= 3200 - 300  # inside the 32 s segment with margins
    seg = 3200
    for start in noise:  # far from every bump
        assert all(abs(start + seg / 2 - q) > seg / 2 + 30 for q in (10000, 10500, 30000, 30600, 31500, 50000))
    assert counts["P_picks"] == 3 and counts["S_picks"] == 2 and len(noise) == 2  # 12 per hour of 10 min


def test_label_station_needs_agreement_above_the_pick_threshold(rng):
    x = rng.normal(0, 1, (3, 20000)).astype(np.float32)
    events, _, counts = label_station(x, FS, curves(20000, p=[5000], s=[5600], height=0.4), PseudoConfig(),
                                      np.random.default_rng(0))
    assert events == [] and counts["P_picks"] == 0


def test_pseudo_config_is_checked():
    with pytest.raises(ConfigError, match="quiet < pick"):
        PseudoConfig(pick_threshold=0.05).validate()
    with pytest.raises(ConfigError, match="must exceed max_sp_s"):
        PseudoConfig(segment_s=20.0).validate()


def _set(tmp_path):
    x = np.zeros((3, 3, 4000), np.float32)
    np.savez(tmp_path / "s.npz", X=x, p_idx=np.array([1000, 1000, -1]), s_idx=np.array([1500, -1, 1050]),
             ids=np.array(["XX.A.x", "XX.B.x", "XX.C.x"]), fs=100.0, noise=np.zeros(3, bool))
    return load_labeled(str(tmp_path / "s.npz"), window_samples=1024)


def test_complete_labels_fills_only_what_is_missing_and_plausible(tmp_path):
    ls = _set(tmp_path)
    done, report = complete_labels(ls, Spikes(p=[1100], s=[1800, 3900]), cache_dir=str(tmp_path / "cache"))
    assert done.events.s_idx[0] == 1500 and done.events.p_idx[0] == 1000  # analyst labels untouched
    assert done.events.s_idx[1] == 1800      # S after the P, within 25 s: the stronger peak that fits
    assert np.isnan(done.events.p_idx[2])    # a P after its S is no P
    assert report["S_filled"] == 1 and report["P_filled"] == 0 and report["traces_missing"] == 2
    assert np.isnan(ls.events.s_idx[1])      # the input set is not changed
    again, _ = complete_labels(ls, Spikes(), cache_dir=str(tmp_path / "cache"))  # from the cache
    assert again.events.s_idx[1] == 1800


def test_sds_stations_groups_files_and_names_the_layout(tmp_path):
    with pytest.raises(DataError, match="no SDS day files"):
        sds_stations(str(tmp_path))
    d = tmp_path / "2020" / "XX" / "AB" / "HHZ.D"
    d.mkdir(parents=True)
    (d / "XX.AB..HHZ.D.2020.001").write_bytes(b"")
    assert list(sds_stations(str(tmp_path))) == ["XX.AB..HH"]


def test_pseudo_cli_end_to_end_on_an_obspy_sds(tmp_path, monkeypatch, capsys):
    obspy = pytest.importorskip("obspy")
    rng = np.random.default_rng(1)
    t0 = obspy.UTCDateTime(2020, 1, 1)
    n = int(900 * FS)
    t = np.arange(n) / FS
    for comp in "ZNE":
        d = tmp_path / "sds" / "2020" / "XX" / "AB" / ("HH%s.D" % comp)
        d.mkdir(parents=True)
        onset = 200.0 if comp == "Z" else 208.0  # an event where the fake ensemble says P and S
        wave = 20000 * np.where(t >= onset, np.exp(-(t - onset) / 2.0), 0.0) * np.sin(2 * np.pi * 5 * t)
        tr = obspy.Trace((rng.integers(-500, 500, n) + wave).astype(np.int32),
                         {"network": "XX", "station": "AB", "channel": "HH" + comp, "sampling_rate": FS,
                          "starttime": t0})
        tr.write(str(d / ("XX.AB..HH%s.D.2020.001" % comp)), format="MSEED", encoding="STEIM2")

    import fieldpick.train.teachers as teachers

    monkeypatch.setattr(teachers, "Ensemble", lambda names, root=None, threads=1: Spikes(p=[20000], s=[20800]))
    out = tmp_path / "pl.npz"
    assert main(["--sds", str(tmp_path / "sds"), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 1 and summary["noise"] >= 1
    manifest = json.loads((tmp_path / "pl.json").read_text())
    station = manifest["stations"]["XX.AB"]
    assert manifest["format"] == "fieldpick-pseudo-labels" and station["P_picks"] == 1
    t0_ns = 1577836800 * 10**9
    assert station["picks"]["P"] == [t0_ns + 200 * 10**9] and station["picks"]["S"] == [t0_ns + 208 * 10**9]
    assert station["any_member"] == [t0_ns + 200 * 10**9, t0_ns + 208 * 10**9]
    assert abs(station["hours"] - 0.25) < 1e-6
    ls = load_labeled(str(out), window_samples=3072)
    assert len(ls.events) == 1 and ls.events.s_idx[0] - ls.events.p_idx[0] == 800

    # a model over the same archive against the ensemble's picks: it finds the event the ensemble found
    from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec
    from fieldpick.edge.station import EnergyRatioRunner
    from fieldpick.train.heldout import score_continuous

    card = ModelCard(name="er", architecture="energy-ratio", input=InputSpec(100.0, 3001),
                     output=OutputSpec("probabilities", ["N", "P", "S"]), thresholds={"P": 0.3, "S": 0.3}).validate()
    row = score_continuous(EnergyRatioRunner(card), str(tmp_path / "sds"), manifest, mode="continuous")["XX.AB"]
    assert row["P_ensemble"] == 1 and row["P_agree"] == 1 and row["P_found"] == 1
    assert row["lone_picks"] == row["picks"] - row["P_agree"] - row["S_agree"]
    assert row["lone_per_hour"] == row["lone_picks"] / 0.25
