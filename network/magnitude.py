"""Local magnitude from the picks' peak amplitudes, where a station's gain is known.

A pick carries the peak absolute amplitude after it, in counts of the
channel it was made on.  With the gain G (counts per m/s) the peak ground
velocity is ``A / G``; the Wood-Anderson amplitude is approximated as that
velocity times ``T / (2 pi)`` (displacement at the dominant period T,
default 0.2 s for local events) times the Wood-Anderson magnification 2080,
in mm.  The distance correction is Hutton & Boore (1987) for southern
California: ``ML = log10(A_mm) + 1.11 log10(r / 100) + 0.00189 (r - 100) + 3.0``
with r the hypocentral distance in km.  The event's ML is the median over
stations of each station's largest (P or S) estimate.  This is a quick
automatic magnitude, not a substitute for one from simulated Wood-Anderson
records.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["station_ml", "event_ml"]

WOOD_ANDERSON_GAIN = 2080.0


def station_ml(amplitude_counts: float, gain: float, hypo_km: float, period_s: float = 0.2) -> Optional[float]:
    if not gain or gain <= 0 or amplitude_counts <= 0 or hypo_km <= 0:
        return None
    velocity = amplitude_counts / gain
    a_mm = velocity * period_s / (2.0 * math.pi) * WOOD_ANDERSON_GAIN * 1000.0
    return math.log10(a_mm) + 1.11 * math.log10(hypo_km / 100.0) + 0.00189 * (hypo_km - 100.0) + 3.0


def event_ml(stations: Sequence[str], amplitudes: Sequence[float], gains: Sequence[Optional[float]],
             hypo_km: Sequence[float], period_s: float = 0.2) -> Tuple[Optional[float], int]:
    """(ML, number of stations) over picks; None when no station has a gain."""
    best = {}
    for s, a, g, r in zip(stations, amplitudes, gains, hypo_km):
        m = station_ml(a, g, r, period_s) if g else None
        if m is not None and (s not in best or m > best[s]):
            best[s] = m
    if not best:
        return None, 0
    return float(np.median(list(best.values()))), len(best)
