"""Labeled window sets and the readers that fill them.

A :class:`WindowSet` is what every trainer, evaluator and benchmark takes:
fixed-length 3-component windows in ZNE order with P and S sample indices
(NaN where a phase is absent) and the station of each window, so that
cross-validation can be split by station.

Readers for the formats users already have:

- :func:`load_ncedc`, :func:`load_ncedc_noise`: the team's NCEDC npz files;
- :func:`load_stead`: STEAD as published (one HDF5 with ``data/<trace_name>``
  arrays of shape (6000, 3) in E, N, Z order, and its metadata CSV);
- :func:`load_seisbench`: the SeisBench format (``metadata.csv`` +
  ``waveforms.hdf5`` with a ``data_format`` group), with or without trace
  blocks (``bucket$3,:3,:3001`` trace names);
- :func:`load_obspy`, :func:`read_stream`: miniSEED, SAC or anything else
  ObsPy reads (workstation side).

h5py and ObsPy are imported inside the functions that need them.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from fieldpick.edge.errors import DataError

__all__ = [
    "WindowSet", "NCEDC_DIR", "load_ncedc", "load_ncedc_noise", "load_stead", "load_seisbench",
    "load_obspy", "read_stream", "concat",
]

log = logging.getLogger(__name__)

#: where the team's real NCEDC windows live (never committed into the project)
NCEDC_DIR = os.environ.get(
    "FIELDPICK_NCEDC", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared", "data", "ncedc")
)


@dataclass
class WindowSet:
    """Windows and their labels.

    waveforms: (N, 3, T) float32, channel order Z, N, E.
    p_idx, s_idx: (N,) float64 sample indices of the arrivals, NaN when absent.
    station: (N,) str 'NET.STA' of each window (for splits by station).
    fs: sampling rate, Hz.  meta: extra per-window arrays (same length N).
    """

    waveforms: np.ndarray
    p_idx: np.ndarray
    s_idx: np.ndarray
    station: np.ndarray
    fs: float = 100.0
    meta: Dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        w = self.waveforms
        if w.ndim != 3 or w.shape[1] != 3:
            raise DataError("waveforms has shape %s; expected (N, 3, T)" % (w.shape,))
        n = len(w)
        for name in ("p_idx", "s_idx", "station"):
            if len(getattr(self, name)) != n:
                raise DataError("%s has %d entries for %d windows" % (name, len(getattr(self, name)), n))
        for k, v in self.meta.items():
            if len(v) != n:
                raise DataError("meta[%r] has %d entries for %d windows" % (k, len(v), n))

    def __len__(self):
        return len(self.waveforms)

    @property
    def window_samples(self):
        return self.waveforms.shape[-1]

    def subset(self, index) -> "WindowSet":
        """A new WindowSet of the windows selected by ``index`` (mask or indices)."""
        index = np.asarray(index)
        return WindowSet(
            self.waveforms[index], self.p_idx[index], self.s_idx[index], self.station[index],
            self.fs, {k: v[index] for k, v in self.meta.items()},
        )


def _npz(path):
    if not os.path.exists(path):
        raise DataError(
            "NCEDC file %s is missing; point FIELDPICK_NCEDC at the folder holding the "
            "phasenet_ncedc_*.npz files" % path
        )
    return np.load(path, allow_pickle=False)


def load_ncedc(root=None, length="30s") -> WindowSet:
    """The 154 labeled NCEDC windows.

    length: '30s' (3000-sample crops with P at varying offsets) or '90s'
    (9001 samples, every P at sample 3000: crop before use).
    """
    if length not in ("30s", "90s"):
        raise DataError("length %r; allowed: '30s', '90s'" % (length,))
    root = root or NCEDC_DIR
    z = _npz(os.path.join(root, "phasenet_ncedc_%s.npz" % length))
    station = np.array(["%s.%s" % (n, s) for n, s in zip(z["network"], z["station"])])
    meta = {"trace_name": z["trace_name"], "n_components": z["n_components"]}
    if "snr_db_z_derived" in z.files:
        meta["snr_db"] = z["snr_db_z_derived"]
    return WindowSet(
        z["waveforms"].astype(np.float32), z["p_idx"].astype(np.float64), z["s_idx"].astype(np.float64),
        station, float(z["fs"]), meta,
    )


def load_ncedc_noise(root=None) -> WindowSet:
    """The 154 pre-P noise windows (29 s each; may hold small unlabeled events)."""
    root = root or NCEDC_DIR
    z = _npz(os.path.join(root, "phasenet_ncedc_preP_noise.npz"))
    n = len(z["waveforms"])
    # trace names are NET_STA_YYYYMMDDhhmmss..., the same traces as the event windows
    station = np.array([".".join(str(t).split("_")[:2]) for t in z["trace_name"]])
    nan = np.full(n, np.nan)
    return WindowSet(z["waveforms"].astype(np.float32), nan, nan.copy(), station, float(z["fs"]),
                     {"trace_name": z["trace_name"], "n_components": z["n_components"]})


def concat(sets: List[WindowSet]) -> WindowSet:
    """One WindowSet from several with the same fs and window length (meta keys they all share)."""
    if not sets:
        raise DataError("concat needs at least one WindowSet")
    fs, T = sets[0].fs, sets[0].window_samples
    for k, w in enumerate(sets):
        if w.fs != fs or w.window_samples != T:
            raise DataError("set %d has fs=%g Hz and %d samples; set 0 has fs=%g Hz and %d samples"
                            % (k, w.fs, w.window_samples, fs, T))
    keys = set(sets[0].meta)
    for w in sets[1:]:
        keys &= set(w.meta)
    return WindowSet(
        np.concatenate([w.waveforms for w in sets]), np.concatenate([w.p_idx for w in sets]),
        np.concatenate([w.s_idx for w in sets]), np.concatenate([w.station for w in sets]), fs,
        {k: np.concatenate([w.meta[k] for w in sets]) for k in sorted(keys)},
    )


# ------------------------------------------------------------------ shared helpers

#: component letters and the ZNE row they go to ('1'/'2' are the usual unoriented horizontals)
_COMPONENT_ROW = {"Z": 0, "N": 1, "E": 2, "1": 1, "2": 2, "3": 0}


def _to_zne(trace, order, where):
    """(C, W) in component ``order`` -> (3, W) ZNE; missing components stay zero."""
    out = np.zeros((3, trace.shape[1]), dtype=np.float32)
    for k, c in enumerate(order):
        row = _COMPONENT_ROW.get(c.upper())
        if row is None:
            raise DataError("%s: component %r in order %r; allowed: %s" % (where, c, order, ", ".join(_COMPONENT_ROW)))
        if k < trace.shape[0]:
            out[row] = trace[k]
    return out


def _fit_length(x, window_samples):
    """Crop or zero-pad (3, W) at the end to ``window_samples``."""
    if window_samples is None or x.shape[1] == window_samples:
        return x
    if x.shape[1] > window_samples:
        return x[:, :window_samples]
    out = np.zeros((3, window_samples), dtype=x.dtype)
    out[:, : x.shape[1]] = x
    return out


def _label(value, T):
    """A CSV cell as a sample index inside [0, T) or NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v if math.isfinite(v) and 0 <= v < T else float("nan")


def _read_csv(path):
    if not os.path.exists(path):
        raise DataError("metadata file %s does not exist" % path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "trace_name" not in rows[0]:
        raise DataError("%s has no 'trace_name' column (columns: %s)" % (path, ", ".join(rows[0])))
    return rows


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DataError("reading HDF5 datasets needs h5py: pip install 'fieldpick[train]'") from None
    return h5py


def _finish(waves, p, s, stations, fs, meta, where):
    if not waves:
        raise DataError("%s: no traces selected" % where)
    T = max(w.shape[1] for w in waves)
    arr = np.stack([_fit_length(w, T) for w in waves]).astype(np.float32)
    p = np.array([_label(v, T) for v in p])
    s = np.array([_label(v, T) for v in s])
    return WindowSet(arr, p, s, np.array(stations), float(fs), {k: np.asarray(v) for k, v in meta.items()})


# ------------------------------------------------------------------ STEAD

def load_stead(hdf5_path, csv_path, categories=("earthquake_local", "noise"), window_samples=None,
               limit=None) -> WindowSet:
    """STEAD (Mousavi et al. 2019) as published: ``data/<trace_name>`` arrays of (6000, 3), E N Z.

    csv_path: the metadata CSV (columns trace_name, network_code,
    receiver_code, p_arrival_sample, s_arrival_sample, trace_category, and
    optionally source_magnitude, source_distance_km, snr_db).
    categories: trace_category values to keep.  window_samples: crop or
    zero-pad at the end (default: keep 6000).  limit: read at most this many.
    Labels come from the CSV; outside the window they are NaN.
    """
    h5py = _h5py()
    rows = [r for r in _read_csv(csv_path) if categories is None or r.get("trace_category") in categories]
    if limit is not None:
        rows = rows[: int(limit)]
    waves, p, s, stations = [], [], [], []
    meta = {"trace_name": [], "magnitude": [], "distance_km": [], "category": []}
    with h5py.File(hdf5_path, "r") as f:
        if "data" not in f:
            raise DataError("%s has no 'data' group; is it a STEAD waveform file?" % hdf5_path)
        grp = f["data"]
        for r in rows:
            name = r["trace_name"]
            if name not in grp:
                raise DataError("%s: trace %r of %s is not in data/" % (hdf5_path, name, csv_path))
            x = np.asarray(grp[name], dtype=np.float32)
            if x.ndim != 2 or 3 not in x.shape:
                raise DataError("%s: data/%s has shape %s; expected (samples, 3)" % (hdf5_path, name, x.shape))
            x = x.T if x.shape[1] == 3 else x
            waves.append(_fit_length(_to_zne(x, "ENZ", hdf5_path), window_samples))
            p.append(r.get("p_arrival_sample"))
            s.append(r.get("s_arrival_sample"))
            stations.append("%s.%s" % (r.get("network_code", ""), r.get("receiver_code", "")))
            meta["trace_name"].append(name)
            meta["category"].append(r.get("trace_category", ""))
            for key, col in (("magnitude", "source_magnitude"), ("distance_km", "source_distance_km")):
                try:
                    meta[key].append(float(r.get(col) or "nan"))
                except ValueError:
                    meta[key].append(float("nan"))
    return _finish(waves, p, s, stations, 100.0, meta, hdf5_path)


# ------------------------------------------------------------------ SeisBench

_SLICE_PART = re.compile(r"^\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?$")


def _parse_slice(text, where):
    """'3,:3,:3001' -> (3, slice(None, 3), slice(None, 3001)); no eval."""
    out = []
    for part in text.split(","):
        m = _SLICE_PART.match(part)
        if not m or (part.strip() == ""):
            raise DataError("%s: trace block slice %r is not of the form 'i,:c,:w'" % (where, text))
        a, b = m.group(1), m.group(2)
        if ":" not in part:
            out.append(int(a))
        else:
            out.append(slice(int(a) if a else None, int(b) if b else None))
    return tuple(out)


def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        v = v.tolist()
        return "".join(x.decode() if isinstance(x, bytes) else str(x) for x in v) if isinstance(v, list) else str(v)
    return str(v)


def _phase_columns(columns):
    """Metadata columns ``trace_<phase>_arrival_sample`` grouped into P-like and S-like."""
    groups = {"P": [], "S": []}
    for c in columns:
        m = re.match(r"^trace_(\w+?)_arrival_sample$", c)
        if m and m.group(1)[:1].upper() in groups:
            groups[m.group(1)[:1].upper()].append(c)
    return groups


def load_seisbench(folder, split=None, window_samples=None, limit=None, chunk="") -> WindowSet:
    """A SeisBench-format dataset: ``metadata<chunk>.csv`` + ``waveforms<chunk>.hdf5`` in ``folder``.

    The HDF5 ``data_format`` group gives ``dimension_order`` ('CW' or 'WC')
    and ``component_order`` (e.g. 'ZNE', 'ENZ', 'Z12'); the sampling rate
    comes from ``data_format/sampling_rate`` or the ``trace_sampling_rate_hz``
    column (all traces must share it).  Traces are ``data/<trace_name>`` or,
    with trace blocks, ``data/<block>`` sliced by ``<block>$<slice>``.
    P is the earliest of the ``trace_P*_arrival_sample`` columns (P, Pg, Pn,
    P1...), S likewise.  split: keep rows whose ``split`` column equals it.
    window_samples: crop or zero-pad at the end (default: the longest trace).
    """
    h5py = _h5py()
    meta_path = os.path.join(folder, "metadata%s.csv" % chunk)
    wave_path = os.path.join(folder, "waveforms%s.hdf5" % chunk)
    rows = _read_csv(meta_path)
    if split is not None:
        if rows and "split" not in rows[0]:
            raise DataError("%s has no 'split' column; cannot select split %r" % (meta_path, split))
        rows = [r for r in rows if r["split"] == split]
    if limit is not None:
        rows = rows[: int(limit)]
    groups = _phase_columns(rows[0].keys() if rows else [])
    waves, p, s, stations, names = [], [], [], [], []
    rates = set()
    with h5py.File(wave_path, "r") as f:
        if "data" not in f or "data_format" not in f:
            raise DataError("%s needs the groups 'data' and 'data_format' (SeisBench format)" % wave_path)
        fmt = f["data_format"]
        for key in ("dimension_order", "component_order"):
            if key not in fmt:
                raise DataError("%s: data_format/%s is missing; it is required by the SeisBench format" % (wave_path, key))
        dims = _attr_str(fmt["dimension_order"][()])
        order = _attr_str(fmt["component_order"][()])
        if sorted(dims.replace("N", "")) != ["C", "W"]:
            raise DataError("%s: dimension_order %r; allowed: 'CW', 'WC' (optionally with N)" % (wave_path, dims))
        dims = dims.replace("N", "")
        if "sampling_rate" in fmt:
            rates.add(float(fmt["sampling_rate"][()]))
        blocks = {}
        for r in rows:
            name = r["trace_name"]
            if "$" in name:
                block, sl = name.split("$", 1)
                if block not in blocks:
                    if block not in f["data"]:
                        raise DataError("%s: trace block data/%s (of %s) does not exist" % (wave_path, block, name))
                    blocks[block] = f["data"][block][()]
                x = np.asarray(blocks[block][_parse_slice(sl, wave_path)], dtype=np.float32)
            else:
                if name not in f["data"]:
                    raise DataError("%s: trace data/%s does not exist" % (wave_path, name))
                x = np.asarray(f["data"][name], dtype=np.float32)
            if x.ndim != 2:
                raise DataError("%s: trace %s has shape %s; expected 2 dimensions (%s)" % (wave_path, name, x.shape, dims))
            if dims == "WC":
                x = x.T
            waves.append(_fit_length(_to_zne(x, order, wave_path), window_samples))
            if r.get("trace_sampling_rate_hz"):
                rates.add(float(r["trace_sampling_rate_hz"]))
            p.append(_earliest(r, groups["P"]))
            s.append(_earliest(r, groups["S"]))
            stations.append("%s.%s" % (r.get("station_network_code", ""), r.get("station_code", "")))
            names.append(name)
    if len(rates) != 1:
        raise DataError("%s: sampling rate %s; give exactly one (data_format/sampling_rate or the "
                        "trace_sampling_rate_hz column), resample mixed-rate datasets first" % (wave_path, sorted(rates) or "missing"))
    return _finish(waves, p, s, stations, rates.pop(), {"trace_name": names}, wave_path)


def _earliest(row, columns):
    vals = []
    for c in columns:
        try:
            v = float(row.get(c) or "nan")
        except ValueError:
            continue
        if math.isfinite(v):
            vals.append(v)
    return min(vals) if vals else float("nan")


# ------------------------------------------------------------------ ObsPy (miniSEED, SAC, ...)

def _station_groups(stream):
    groups = {}
    for tr in stream:
        st = tr.stats
        key = (st.network, st.station, st.location, st.channel[:2])
        groups.setdefault(key, []).append(tr)
    return groups


def _three(traces, where, fs=None):
    """(3, N) ZNE float32, start time (ns) and fs from the traces of one station."""
    from obspy import Stream

    st = Stream(traces).copy()
    st.merge(method=1, fill_value=0)
    rates = {float(tr.stats.sampling_rate) for tr in st}
    if len(rates) != 1:
        raise DataError("%s: channels sampled at %s Hz; they must share one rate" % (where, sorted(rates)))
    rate = rates.pop()
    if fs is not None and abs(rate - fs) > 1e-9:
        st.resample(fs)
        rate = fs
    start = max(tr.stats.starttime for tr in st)
    end = min(tr.stats.endtime for tr in st)
    if end <= start:
        raise DataError("%s: the components do not overlap in time" % where)
    st.trim(start, end)
    n = min(len(tr.data) for tr in st)
    out = np.zeros((3, n), dtype=np.float32)
    for tr in st:
        row = _COMPONENT_ROW.get(tr.stats.channel[-1:].upper())
        if row is None:
            log.warning("%s: channel %s is not Z/N/E/1/2; ignored", where, tr.id)
            continue
        out[row] = tr.data[:n].astype(np.float32)
    start_ns = int(start.ns) if hasattr(start, "ns") else int(round(float(start.timestamp) * 1e9))
    return out, start_ns, rate, st


def _read(paths):
    try:
        from obspy import Stream, read
    except ImportError:
        raise DataError("reading miniSEED/SAC needs ObsPy: pip install obspy") from None
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    st = Stream()
    for p in paths:
        if not os.path.exists(p):
            raise DataError("waveform file %s does not exist" % p)
        try:
            st += read(str(p))
        except Exception as exc:  # ObsPy raises many kinds on a bad file
            raise DataError("%s cannot be read by ObsPy (%s)" % (p, exc)) from None
    return st


def read_stream(paths, station=None, fs=None) -> Tuple[np.ndarray, int, float, str]:
    """One station's continuous 3-component record from miniSEED/SAC files.

    station: 'NET.STA' to choose one when the files hold several.
    fs: resample to this rate (Hz) when given.  Gaps are filled with zeros.
    Returns ``(data (3, N) float32 ZNE, start_ns, fs, 'NET.STA')``.
    """
    groups = _station_groups(_read(paths))
    keys = [k for k in groups if station is None or "%s.%s" % k[:2] == station]
    if len(keys) != 1:
        names = sorted({"%s.%s" % k[:2] for k in groups})
        raise DataError("station %r matches %d channel groups; choose one with station=: %s"
                        % (station, len(keys), ", ".join(names) or "none"))
    data, start_ns, rate, _ = _three(groups[keys[0]], "%s.%s" % keys[0][:2], fs)
    return data, start_ns, rate, "%s.%s" % keys[0][:2]


def _sac_pick(traces, key):
    for tr in traces:
        sac = getattr(tr.stats, "sac", None)
        if sac is not None and key in sac and float(sac[key]) != -12345.0:
            ref = tr.stats.starttime - float(sac.get("b", 0.0))
            return ref + float(sac[key])
    return None


def load_obspy(paths, picks: Optional[Dict[str, Dict[str, int]]] = None, window_samples=None,
               fs=100.0, p_key="a", s_key="t0") -> WindowSet:
    """One window per station from miniSEED/SAC/... files read by ObsPy.

    Each station's channels (same band code) are merged (gaps filled with
    zeros), trimmed to their common span, resampled to ``fs`` Hz and put in
    ZNE order ('1'/'2' count as N/E; a missing component stays zero).
    Labels: ``picks`` maps 'NET.STA' to ``{"P": time_ns, "S": time_ns}``;
    otherwise SAC headers ``p_key`` ('a') and ``s_key`` ('t0') are used when set.
    window_samples: crop or zero-pad at the end (default: the longest record).
    """
    groups = _station_groups(_read(paths))
    waves, p, s, stations, starts = [], [], [], [], []
    for key in sorted(groups):
        name = "%s.%s" % key[:2]
        data, start_ns, rate, st = _three(groups[key], name, fs)
        waves.append(_fit_length(data, window_samples))
        stations.append(name)
        starts.append(start_ns)
        for phase, sac_key, out in (("P", p_key, p), ("S", s_key, s)):
            t_ns = None
            if picks is not None and name in picks and phase in picks[name]:
                t_ns = int(picks[name][phase])
            elif picks is None:
                t = _sac_pick(groups[key], sac_key)
                if t is not None:
                    t_ns = int(t.ns) if hasattr(t, "ns") else int(round(float(t.timestamp) * 1e9))
            out.append(float("nan") if t_ns is None else (t_ns - start_ns) * rate / 1e9)
    return _finish(waves, p, s, stations, fs, {"start_ns": np.array(starts, dtype=np.int64)}, "ObsPy files")
