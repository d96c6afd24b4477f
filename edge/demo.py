"""``fieldpick demo``: the bundled model on a synthetic hour, scored against the truth.

Everything it uses is in ``fieldpick.edge`` (numpy and the standard library
only), so it runs on the station itself.  When no model is bundled in
``edge/models/`` yet, it says so and runs the classic energy-ratio stand-in
through the same pipeline instead (``--runner energy-ratio`` asks for it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from .config import BACKENDS, MODES, StationConfig
from .errors import ConfigError

log = logging.getLogger(__name__)

PLAN = """\
fieldpick demo will:
  1. synthesise %(minutes)g minutes of 3-component 100 Hz data with earthquakes at known times;
  2. load the bundled default int8 model (edge/models/<default>.tflite and its card);
  3. stream it through the station pipeline (resampling, ring buffer, STA/LTA gate,
     numpy TFLite interpreter, picker) in %(packet)g s packets, as a digitizer would;
  4. compare the picks with the truth (precision, recall, F1, residuals) and
     report the speed against real time.
"""


def _runner(choice, backend):
    from .replay import energy_ratio_card
    from .runners import EnergyRatioRunner, default_card_path, load_runner

    if choice == "model":
        if default_card_path() is None:
            sys.stdout.write("\nno model is bundled in edge/models/ yet: using the classic energy-ratio "
                             "stand-in (untrained) through the same pipeline instead.\n")
        else:
            return load_runner("default", backend), "bundled model"
    return EnergyRatioRunner(energy_ratio_card()), "energy-ratio stand-in (classic, untrained)"


def run_demo(minutes=60.0, seed=7, mode="gated", runner="model", backend="numpy", packet_s=1.0,
             events_per_hour=20.0, out=None):
    """Run the demo; returns (picks, scores, stats dict).  Writes its report to ``out``."""
    from ..lab import synthetic
    from ..lab.scoring import evaluate_stream
    from .pipeline import Station

    out = out or sys.stdout
    if not (0 < minutes <= 24 * 60):
        raise ConfigError("--minutes %r; allowed: 0 < minutes <= 1440" % (minutes,))
    if not (0 < packet_s <= 60):
        raise ConfigError("--packet-s %r; allowed: 0 < seconds <= 60" % (packet_s,))
    duration = minutes * 60.0
    t0_ns = 1_700_000_000 * 10 ** 9
    t = time.perf_counter()
    data, truth = synthetic.continuous(duration, seed=seed, start_ns=t0_ns, event_rate_per_hour=events_per_hour)
    t_synth = time.perf_counter() - t
    run, label = _runner(runner, backend)
    fs = run.card.input.sampling_rate_hz
    if fs != 100.0:
        log.info("model runs at %g Hz; the pipeline resamples the 100 Hz demo data", fs)
    cfg = StationConfig.from_dict({"mode": mode, "backend": backend})
    st = Station(run, cfg, station="DM.DEMO..HHZ")
    n = int(round(packet_s * 100.0))
    picks = []
    t = time.perf_counter()
    for a in range(0, data.shape[1], n):
        t_ns = t0_ns + a * 10 ** 7
        for c, comp in enumerate("ZNE"):
            picks += st.feed(comp, t_ns, data[c, a:a + n], 100.0)
    picks += st.flush()
    t_run = time.perf_counter() - t
    scores = evaluate_stream(truth, picks, duration)
    out.write("\nmodel: %s (%s, %s)\n" % (run.card.name, label, run.card.output.kind))
    out.write("data: %g min synthetic, %d events, %d arrivals (seed %d); synthesis %.1f s\n"
              % (minutes, len(np.unique(truth["event_id"])) if len(truth) else 0, len(truth), seed, t_synth))
    out.write("pipeline: mode %s, %d of %d windows run (duty cycle %.1f %%), %d picks\n"
              % (mode, st.stats["windows_run"], st.stats["windows_total"], 100 * st.duty_cycle, len(picks)))
    out.write("speed: %.2f s for %g min of data = %.0fx real time (one core, %g s packets)\n\n"
              % (t_run, minutes, duration / t_run if t_run > 0 else float("inf"), packet_s))
    out.write(scores.table() + "\n")
    stats = dict(st.stats, duty_cycle=st.duty_cycle, seconds=t_run, synth_seconds=t_synth, model=run.card.name)
    return picks, scores, stats


def main(argv):
    parser = argparse.ArgumentParser(prog="fieldpick demo", allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the synthetic stream (minutes)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic stream")
    parser.add_argument("--mode", choices=MODES, default="gated", help="gated (STA/LTA) or continuous")
    parser.add_argument("--runner", choices=("model", "energy-ratio"), default="model",
                        help="the bundled model (default) or the classic energy-ratio stand-in")
    parser.add_argument("--backend", choices=BACKENDS, default="numpy", help="interpreter back end")
    parser.add_argument("--packet-s", type=float, default=1.0, help="seconds per packet fed to the station")
    ns = parser.parse_args(argv)
    sys.stdout.write(PLAN % {"minutes": ns.minutes, "packet": ns.packet_s})
    run_demo(ns.minutes, ns.seed, ns.mode, ns.runner, ns.backend, ns.packet_s)
    return 0
