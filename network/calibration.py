"""Pick-uncertainty calibration: the sigma a model reports, mapped to the scatter measured.

A station reports a one-sigma uncertainty per pick from the width of the
probability peak.  Measured against analyst picks that the model never
trained on, that number can be too large or too small by a factor that
differs between P and S.  The calibration table holds, per model sha256 and
phase, ``scale`` and ``floor_s``: the calibrated sigma is
``sqrt((scale * reported)^2 + floor_s^2)``, fitted so that the residuals
divided by it have unit robust spread (1.4826 x the median absolute value).

Tables live in ``network/calibration/<model name>.json`` (written by
``benchmarks/network.py calibrate``); a model with no table keeps its
reported sigma.  Weights (Earthworm, HYPO71 0-4) and the locator use the
calibrated sigma.
"""

from __future__ import annotations

import glob
import json
import math
import os
from typing import Dict, Optional

import numpy as np

from fieldpick.edge.errors import ConfigError

__all__ = ["Calibration", "load_tables", "calibrated_sigma", "onset_weight", "fit_phase"]

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calibration")
_TABLES: Optional[Dict[str, dict]] = None


def load_tables(folder: str = HERE) -> Dict[str, dict]:
    """sha256 -> table, from every JSON file in ``folder``."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                t = json.load(f)
            out[t["model_sha256"]] = t
            for ph in ("P", "S"):
                float(t["phases"][ph]["scale"]), float(t["phases"][ph]["floor_s"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError("calibration table %s is not readable (%s); expected model_sha256 and "
                              "phases.P/S.scale/floor_s" % (path, exc)) from None
    return out


class Calibration(object):
    """Per-phase (scale, floor) for one model; identity when none is known."""

    def __init__(self, table: Optional[dict] = None):
        self.table = table
        self.phases = {ph: (1.0, 0.0) for ph in ("P", "S")}
        if table:
            for ph in ("P", "S"):
                d = table["phases"][ph]
                self.phases[ph] = (float(d["scale"]), float(d["floor_s"]))

    @classmethod
    def for_model(cls, sha256: Optional[str]) -> "Calibration":
        global _TABLES
        if _TABLES is None:
            _TABLES = load_tables()
        return cls(_TABLES.get(sha256 or ""))

    def sigma(self, reported_s: float, phase: str) -> float:
        scale, floor = self.phases.get(phase, (1.0, 0.0))
        return math.sqrt((scale * float(reported_s)) ** 2 + floor ** 2)


def calibrated_sigma(reported_s: float, phase: str, model_sha256: Optional[str]) -> float:
    return Calibration.for_model(model_sha256).sigma(reported_s, phase)


def onset_weight(sigma_s: float) -> int:
    """HYPO71 weight 0 (best) .. 4 from a one-sigma timing uncertainty (0.05/0.1/0.2/0.4 s bounds)."""
    for w, bound in enumerate((0.05, 0.1, 0.2, 0.4)):
        if sigma_s <= bound:
            return w
    return 4


def robust_spread(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else float("nan")


def fit_phase(reported, residual, floors=(0.0,)) -> dict:
    """(scale, floor_s) so that residual / sigma has unit robust spread; among ``floors`` the one that
    flattens that spread across the reported-sigma quartiles.  The default fits the scale alone: on
    the held-out NCEDC picks a floor took over the whole fit and threw away the ordering that the
    reported sigma carries (|residual| correlates with it, r = 0.38 for P)."""
    u = np.asarray(reported, dtype=np.float64)
    r = np.asarray(residual, dtype=np.float64)
    r = r - np.median(r)
    best = None
    edges = np.quantile(u, [0.0, 0.25, 0.5, 0.75, 1.0])
    for floor in floors:
        lo, hi = 1e-3, 100.0
        for _ in range(60):  # bisection on the scale: robust spread of r / sigma = 1
            mid = math.sqrt(lo * hi)
            z = r / np.sqrt((mid * u) ** 2 + floor ** 2)
            if robust_spread(z) > 1.0:
                lo = mid
            else:
                hi = mid
        scale = math.sqrt(lo * hi)
        z = r / np.sqrt((scale * u) ** 2 + floor ** 2)
        spreads = [robust_spread(z[(u >= a) & (u <= b)]) for a, b in zip(edges[:-1], edges[1:])]
        bad = float(np.nanmax(np.abs(np.log(np.asarray(spreads)))))
        if best is None or bad < best[0]:
            best = (bad, scale, float(floor), spreads)
    return {"scale": round(best[1], 4), "floor_s": round(best[2], 4), "n": int(u.size),
            "quartile_spread_after": [round(float(s), 3) for s in best[3]]}
