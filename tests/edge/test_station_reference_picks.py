"""The shipped default's picks through the Station, compared exactly with recorded ones.

The recorded picks (``data/reference_picks.json``) are those of the default
model on the demo's synthetic stream (seed 7, fed in 1 s packets as
``fieldpick demo`` feeds it) and on the NCEDC event traces (each 90 s trace
offline through its own Station), gated and continuous.  Any change to the
station runtime that changes a pick time, a phase or a probability fails here.
Regenerate only for an intended change of the picks:
``python tests/edge/test_station_reference_picks.py --write``.
"""

import io
import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "data", "reference_picks.json")
NCEDC = os.environ.get("FIELDPICK_NCEDC", os.path.join(HERE, "..", "..", "..", "shared", "data", "ncedc"))
T0 = 1_700_000_000 * 10 ** 9
DEMO_MINUTES = 60.0  # the demo's default hour
NCEDC_EVERY = 1  # every trace of the 154


def _rows(picks, t0_ns, trace=None):
    """Picks as [time ns after t0, phase, probability] (with the trace index first when given)."""
    rows = [[int(p.time_ns - t0_ns), p.phase, float(p.probability)] for p in picks]
    return rows if trace is None else [[trace] + r for r in rows]


def demo_picks(mode):
    from fieldpick.edge.demo import run_demo

    picks, _, _ = run_demo(minutes=DEMO_MINUTES, seed=7, mode=mode, out=io.StringIO())
    return _rows(picks, T0)


def ncedc_picks(mode, folder):
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import Station, load_runner

    with np.load(os.path.join(folder, "phasenet_ncedc_90s.npz")) as z:
        waves, fs, nets, stas = z["waveforms"], float(z["fs"]), z["network"], z["station"]
    runner = load_runner("default")
    cfg = StationConfig.from_dict({"mode": mode})
    out = []
    for i in range(0, len(waves), NCEDC_EVERY):
        st = Station(runner, cfg, station="%s.%s..HHZ" % (nets[i], stas[i]))
        out += _rows(st.feed_array(waves[i].astype(np.float64), T0, fs), T0, i)
    return out


@pytest.fixture(scope="module")
def reference():
    with open(FIXTURE, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["gated", "continuous"])
def test_demo_picks_are_the_recorded_ones(reference, mode):
    want = reference["demo"][mode]
    assert len(want) > 10
    assert demo_picks(mode) == want


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["gated", "continuous"])
def test_ncedc_picks_are_the_recorded_ones(reference, ncedc_dir, mode):
    want = reference["ncedc"][mode]
    assert len(want) > 20
    assert ncedc_picks(mode, ncedc_dir) == want


def _write():
    ref = {"about": "the shipped default's picks: [time ns after the stream start, phase, probability]; "
                    "ncedc rows start with the trace index in phasenet_ncedc_90s.npz",
           "demo_minutes": DEMO_MINUTES, "ncedc_every": NCEDC_EVERY,
           "demo": {m: demo_picks(m) for m in ("gated", "continuous")},
           "ncedc": {m: ncedc_picks(m, NCEDC) for m in ("gated", "continuous")}}
    with open(FIXTURE, "w", encoding="utf-8") as f:
        f.write("{\n")
        keys = list(ref)
        for k in keys:
            v = ref[k]
            if isinstance(v, dict):
                f.write(" %s: {\n" % json.dumps(k))
                for j, (m, rows) in enumerate(v.items()):
                    f.write("  %s: [\n" % json.dumps(m))
                    f.write(",\n".join("   " + json.dumps(r) for r in rows))
                    f.write("\n  ]%s\n" % ("," if j < len(v) - 1 else ""))
                f.write(" }")
            else:
                f.write(" %s: %s" % (json.dumps(k), json.dumps(v)))
            f.write(",\n" if k != keys[-1] else "\n")
        f.write("}\n")
    print("wrote", FIXTURE, {k: {m: len(r) for m, r in ref[k].items()} for k in ("demo", "ncedc")})


if __name__ == "__main__":
    if "--write" in sys.argv:
        _write()
