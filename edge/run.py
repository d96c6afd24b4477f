"""``fieldpick run --config station.json``: sources -> station pipeline -> picks out (and telemetry)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from .config import StationConfig
from .errors import ConfigError
from .picks import CSV_HEADER, format_pick
from .pipeline import StationSet
from .runners import load_runner
from .sources.merge import join_seconds, open_sources

__all__ = ["main", "POLL_S"]

log = logging.getLogger(__name__)

POLL_S = 1.0  # seconds of wall clock between uplink polls in the run loop


def _uplink(cfg):
    """The telemetry uplink of the config's ``telemetry`` block (None when absent)."""
    if not cfg.telemetry:
        return None
    from .telemetry.uplink import from_config

    return from_config(cfg.telemetry)


def main(argv):
    """``fieldpick run --config station.json``: sources -> picks -> output (and telemetry)."""
    parser = argparse.ArgumentParser(prog="fieldpick run", allow_abbrev=False,
                                     description="Run a station from a JSON config (live sources, telemetry).")
    parser.add_argument("--config", required=True, help="station config JSON (see docs/station.md)")
    parser.add_argument("--check", action="store_true", help="validate the config and the model, then exit")
    ns = parser.parse_args(argv)
    cfg = StationConfig.load(ns.config)
    if not cfg.sources:
        raise ConfigError("sources is empty; list at least one source spec (a miniSEED path or seedlink://...)")
    runner = load_runner(cfg.model, cfg.backend)
    if ns.check:
        sys.stdout.write("config %s: ok (model %s, mode %s)\n" % (ns.config, runner.card.name, cfg.mode))
        return 0
    uplink = _uplink(cfg)
    stations = StationSet(runner, cfg)
    path = cfg.output.path
    out = None if path == "" else sys.stdout if path == "-" else open(path, "a", encoding="utf-8")
    n = 0
    records = 0

    def emit(picks):
        if out is not None:
            for p in picks:
                out.write(format_pick(p, cfg.output.format))
        if uplink is not None and picks:
            uplink.submit(picks)  # journaled (fsync) before it returns

    try:
        if out is not None and cfg.output.format == "csv" and (out is sys.stdout or out.tell() == 0):
            out.write(CSV_HEADER)
        polled = time.monotonic()
        for src in open_sources(cfg.sources, join_seconds(cfg)):
            for rec in src:
                picks = stations.feed_record(rec)
                n += len(picks)
                emit(picks)
                records += 1
                # acks, late partial packets, retransmissions: at least every POLL_S of wall
                # clock, not only when a pick arrives
                if uplink is not None and (records % 100 == 0 or time.monotonic() - polled >= POLL_S):
                    uplink.poll(0.0)
                    polled = time.monotonic()
            if hasattr(src, "close"):
                src.close()
        picks = stations.flush()
        n += len(picks)
        emit(picks)
        if out is not None:
            out.flush()
        if uplink is not None:
            # end of a finite stream: pack what waits for a fuller packet and send it now
            # (what stays unacknowledged is journaled for the next start)
            uplink.flush()
            uplink.poll(0.0)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
        if uplink is not None:
            uplink.close()
    log.info("%d picks from %d station(s)", n, len(stations.stations))
    return 0
