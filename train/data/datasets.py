"""Labeled window sets and the readers that fill them.

A :class:`WindowSet` is what every trainer, evaluator and benchmark takes:
fixed-length 3-component windows in ZNE order with P and S sample indices
(NaN where a phase is absent) and the station of each window, so that
cross-validation can be split by station.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict

import numpy as np

from fieldpick.edge.errors import DataError

__all__ = ["WindowSet", "NCEDC_DIR", "load_ncedc", "load_ncedc_noise"]

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
