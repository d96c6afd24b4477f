"""Readers: tiny STEAD, SeisBench (flat and trace blocks), miniSEED and SAC files built here."""

import csv

import h5py
import numpy as np
import pytest

from fieldpick.edge.errors import DataError
from fieldpick.lab.synthetic import event_windows
from fieldpick.train.data import datasets as ds
from fieldpick.train.data.synthetic import synthetic_set, to_windowset


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _ramp(k, n=6000):
    """A trace whose channels are distinguishable: channel c of trace k holds k*10 + c everywhere."""
    return np.stack([np.full(n, k * 10 + c, dtype=np.float32) for c in range(3)])  # (3, n)


def test_stead_layout(tmp_path):
    h5, meta = tmp_path / "stead.hdf5", tmp_path / "stead.csv"
    rows = []
    with h5py.File(h5, "w") as f:
        g = f.create_group("data")
        for k, (cat, p, s) in enumerate([("earthquake_local", 1000.0, 1500.0), ("noise", "", ""), ("earthquake_local", 5900, 6500)]):
            name = "ST%d.XX_2019_EV" % k
            g.create_dataset(name, data=_ramp(k).T)  # STEAD stores (6000, 3) in E, N, Z
            rows.append({"trace_name": name, "network_code": "XX", "receiver_code": "ST%d" % k, "trace_category": cat,
                         "p_arrival_sample": p, "s_arrival_sample": s, "source_magnitude": "2.5" if p else "",
                         "source_distance_km": "12" if p else ""})
    _write_csv(meta, rows)
    w = ds.load_stead(h5, meta)
    assert w.waveforms.shape == (3, 3, 6000) and w.fs == 100.0
    # E N Z on disk -> Z N E here: trace 0 stored columns (0, 1, 2) = (E, N, Z)
    assert w.waveforms[0, :, 0].tolist() == [2.0, 1.0, 0.0]
    np.testing.assert_array_equal(w.p_idx, [1000.0, np.nan, 5900.0])
    np.testing.assert_array_equal(w.s_idx, [1500.0, np.nan, np.nan])  # 6500 is outside the window
    assert w.station.tolist() == ["XX.ST0", "XX.ST1", "XX.ST2"]
    assert w.meta["magnitude"][0] == 2.5 and np.isnan(w.meta["magnitude"][1])
    only_noise = ds.load_stead(h5, meta, categories=("noise",), window_samples=3000)
    assert len(only_noise) == 1 and only_noise.window_samples == 3000


def _seisbench(folder, blocks, dims="CW", order="ZNE", rate=100.0):
    rows = []
    with h5py.File(folder / "waveforms.hdf5", "w") as f:
        fmt = f.create_group("data_format")
        fmt.create_dataset("dimension_order", data=dims)
        fmt.create_dataset("component_order", data=order)
        if rate:
            fmt.create_dataset("sampling_rate", data=rate)
        g = f.create_group("data")
        if blocks:
            block = np.zeros((2, 3, 4000), dtype=np.float32)
            block[0, :, :3001] = _ramp(0, 3001)
            block[1] = _ramp(1, 4000)
            g.create_dataset("bucket0", data=block if dims == "CW" else block.transpose(0, 2, 1))
            names = ["bucket0$0,:3,:3001", "bucket0$1,:3,:4000"] if dims == "CW" else ["bucket0$0,:3001,:3", "bucket0$1,:4000,:3"]
        else:
            for k, n in enumerate((3001, 4000)):
                g.create_dataset("tr%d" % k, data=_ramp(k, n) if dims == "CW" else _ramp(k, n).T)
            names = ["tr0", "tr1"]
    for k, name in enumerate(names):
        rows.append({"trace_name": name, "station_network_code": "SB", "station_code": "S%d" % k,
                     "trace_P_arrival_sample": 500 + k, "trace_Pg_arrival_sample": 450 if k == 0 else "",
                     "trace_S_arrival_sample": 900 if k == 0 else "", "split": "train" if k == 0 else "test"})
    _write_csv(folder / "metadata.csv", rows)


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("dims", ["CW", "WC"])
def test_seisbench_layouts(tmp_path, blocks, dims):
    _seisbench(tmp_path, blocks, dims)
    w = ds.load_seisbench(tmp_path)
    assert w.waveforms.shape == (2, 3, 4000)
    assert w.waveforms[0, :, 0].tolist() == [0.0, 1.0, 2.0]
    assert np.all(w.waveforms[0, :, 3001:] == 0)  # shorter trace zero-padded
    assert w.waveforms[1, :, 3999].tolist() == [10.0, 11.0, 12.0]
    np.testing.assert_array_equal(w.p_idx, [450.0, 501.0])  # earliest P-like column
    np.testing.assert_array_equal(w.s_idx, [900.0, np.nan])
    assert w.station.tolist() == ["SB.S0", "SB.S1"]
    assert len(ds.load_seisbench(tmp_path, split="test")) == 1


def test_seisbench_component_order_and_errors(tmp_path):
    _seisbench(tmp_path, False, order="ENZ")
    w = ds.load_seisbench(tmp_path)
    assert w.waveforms[0, :, 0].tolist() == [2.0, 1.0, 0.0]
    _seisbench(tmp_path, False, rate=None)
    with pytest.raises(DataError, match="sampling rate missing"):
        ds.load_seisbench(tmp_path)
    _seisbench(tmp_path, False, order="ZQE")
    with pytest.raises(DataError, match="component 'Q' in order 'ZQE'"):
        ds.load_seisbench(tmp_path)
    with pytest.raises(DataError, match="slice '1;2'"):
        ds._parse_slice("1;2", "x")


def _obspy_stream(fmt_channels, start="2024-05-01T00:00:00", n=3000, fs=100.0):
    from obspy import Stream, Trace, UTCDateTime

    st = Stream()
    for k, cha in enumerate(fmt_channels):
        tr = Trace(data=np.full(n, k + 1, dtype=np.int32))
        tr.stats.update(dict(network="XX", station="ABC", location="", channel=cha, sampling_rate=fs,
                             starttime=UTCDateTime(start)))
        st.append(tr)
    return st


def test_mseed_with_picks_and_read_stream(tmp_path):
    from obspy import UTCDateTime

    st = _obspy_stream(["HHE", "HHN", "HHZ"])
    path = tmp_path / "x.mseed"
    st.write(str(path), format="MSEED")
    t0 = UTCDateTime("2024-05-01T00:00:00").ns
    w = ds.load_obspy([path], picks={"XX.ABC": {"P": t0 + 5_000_000_000, "S": t0 + 12_340_000_000}})
    assert w.waveforms[0, :, 0].tolist() == [3.0, 2.0, 1.0]  # Z, N, E
    assert w.p_idx.tolist() == [500.0] and w.s_idx[0] == pytest.approx(1234.0)
    data, start_ns, fs, name = ds.read_stream(path)
    assert data.shape == (3, 3000) and start_ns == t0 and fs == 100.0 and name == "XX.ABC"


def test_sac_headers_and_resampling(tmp_path):
    st = _obspy_stream(["BH1", "BH2", "BHZ"], fs=50.0, n=1500)
    paths = []
    for tr in st:
        tr.stats.sac = {"a": 4.0, "t0": 9.5, "b": 0.0}
        p = tmp_path / ("%s.sac" % tr.stats.channel)
        tr.write(str(p), format="SAC")
        paths.append(p)
    w = ds.load_obspy(paths)  # resampled 50 -> 100 Hz
    assert w.fs == 100.0 and w.window_samples == 3000
    assert w.p_idx[0] == pytest.approx(400.0) and w.s_idx[0] == pytest.approx(950.0)
    assert np.allclose(w.waveforms[0, :, 100:2900].mean(axis=1), [3.0, 1.0, 2.0], atol=0.05)


def test_obspy_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ds.load_obspy([tmp_path / "nope.mseed"])
    bad = tmp_path / "bad.mseed"
    bad.write_bytes(b"not a seismogram")
    with pytest.raises(DataError, match="cannot be read by ObsPy"):
        ds.read_stream(bad)


def test_synthetic_windowset_and_splits():
    a = synthetic_set(20, 3, "train", noise_fraction=0.25)
    b = synthetic_set(20, 3, "test", noise_fraction=0.25)
    assert len(a) == 20 and np.isnan(a.p_idx).sum() == 5 and a.fs == 100.0
    assert not np.array_equal(a.waveforms, b.waveforms)
    assert set(a.station) <= {"SY.S%02d" % k for k in range(20)}
    assert np.isnan(a.meta["magnitude"]).sum() == 5  # noise windows have no magnitude
    only_events = synthetic_set(4, 3, "val", noise_fraction=0.0)
    assert np.all(np.isfinite(only_events.meta["distance_km"]))
    w = to_windowset(event_windows(2, 1))
    assert "magnitude" in w.meta and w.station.tolist() == ["SYN", "SYN"]
    both = ds.concat([w, w])
    assert len(both) == 4 and both.meta["snr_db"].shape == (4,)


def test_ncedc_reader(ncedc_dir):
    w = ds.load_ncedc(ncedc_dir)
    assert w.waveforms.shape == (154, 3, 3000) and np.all(w.p_idx < w.s_idx)
