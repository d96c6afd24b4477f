"""``fieldpick replay PATH...``: miniSEED through the station pipeline as fast as possible.

Records of every file are read, put in time order (a file may hold one
channel after another), grouped into stations by 'NET.STA.LOC' and band
code, and fed to one :class:`~fieldpick.edge.pipeline.Station` each.  Picks
go to standard output as CSV (with a header) or JSON lines; a summary goes
to standard error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from .card import InputSpec, ModelCard, OutputSpec
from .config import BACKENDS, MODES, OUTPUT_FORMATS, StationConfig
from .errors import DataError
from .picks import CSV_HEADER, format_pick
from .pipeline import StationSet
from .runners import EnergyRatioRunner, load_runner
from .sources.merge import join_seconds, records_in_time_order

__all__ = ["RUNNERS", "energy_ratio_card", "make_runner", "read_sorted", "main"]

log = logging.getLogger(__name__)

RUNNERS = ("model", "energy-ratio")


def energy_ratio_card(fs=100.0, window_samples=3001):
    """The card the classic energy-ratio runner works under (no model file)."""
    return ModelCard(
        name="energy-ratio", architecture="energy-ratio (classic, untrained)",
        input=InputSpec(float(fs), int(window_samples)),
        output=OutputSpec("probabilities", ["N", "P", "S"]),
        thresholds={"P": 0.5, "S": 0.5},
        description="classic energy-ratio picker behind the runner seam; not a trained network",
    ).validate()


def make_runner(cfg, runner="model"):
    """The runner for a config: its model (card + interpreter) or the classic stand-in."""
    if runner == "energy-ratio":
        return EnergyRatioRunner(energy_ratio_card())
    return load_runner(cfg.model, cfg.backend)


def read_sorted(paths, join_s=0.0):
    """Records of ``paths`` (miniSEED files or folders), lazily, in start-time order.

    Returns ``(records, stats)``: ``records`` is an iterator (bounded memory:
    each file is scanned once for its channels now, then read per channel as
    the merge goes, see :func:`~fieldpick.edge.sources.merge.records_in_time_order`);
    ``stats`` is a :class:`~fieldpick.edge.sources.mseed.DecodeStats`, complete
    on return.  Records of one channel keep their order.  join_s: contiguous
    records joined into records of at least that many seconds (0: as stored).
    """
    from .sources.mseed import DecodeStats

    stats = DecodeStats()
    return records_in_time_order(paths, stats=stats, join_s=join_s), stats


def main(argv):
    parser = argparse.ArgumentParser(
        prog="fieldpick replay", allow_abbrev=False,
        description="Stream miniSEED files through the picker as fast as possible; picks to stdout.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="miniSEED files or folders")
    parser.add_argument("--config", help="station config JSON (model, mode, trigger...); sources are ignored")
    parser.add_argument("--model", help="model card path, or 'default' (overrides the config)")
    parser.add_argument("--backend", choices=BACKENDS, help="interpreter back end (overrides the config)")
    parser.add_argument("--mode", choices=MODES, help="gated or continuous (overrides the config)")
    parser.add_argument("--runner", choices=RUNNERS, default="model",
                        help="'model' (default) or 'energy-ratio': the classic untrained stand-in")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="csv", help="pick lines: csv or jsonl")
    ns = parser.parse_args(argv)
    cfg = StationConfig.load(ns.config) if ns.config else StationConfig()
    if ns.model:
        cfg.model = ns.model
    if ns.backend:
        cfg.backend = ns.backend
    if ns.mode:
        cfg.mode = ns.mode
    cfg.validate()
    runner = make_runner(cfg, ns.runner)
    t0 = time.perf_counter()
    records, stats = read_sorted(ns.paths, join_seconds(cfg))
    t_read = time.perf_counter() - t0
    stations = StationSet(runner, cfg)
    out = sys.stdout
    if ns.format == "csv":
        out.write(CSV_HEADER)
    n = 0
    seconds = 0.0
    try:
        for rec in records:
            seconds += len(rec.samples) / rec.sampling_rate / 3.0
            for p in stations.feed_record(rec):
                out.write(format_pick(p, ns.format))
                n += 1
        for p in stations.flush():
            out.write(format_pick(p, ns.format))
            n += 1
        out.flush()
    except BrokenPipeError:  # the reader (e.g. `head`) has gone: stop quietly, as Unix tools do
        sys.stdout = None
        return 0
    if stats.records == 0:
        raise DataError("no miniSEED records in %s (%d bytes read, none decoded%s)" % (
            ", ".join(ns.paths), stats.bytes_skipped,
            ": " + ", ".join("%s %d" % kv for kv in sorted(stats.skipped.items())) if stats.skipped else ""))
    dt = time.perf_counter() - t0
    runs = sum(s.stats["windows_run"] for s in stations.stations.values())
    total = sum(s.stats["windows_total"] for s in stations.stations.values())
    sys.stderr.write(
        "fieldpick replay: %d records (%d skipped), %d station(s), %.0f s of 3-component data, %d picks; "
        "%.2f s (%.2f s scanning), %.0fx real time; network ran on %d of %d windows (%s, model %s)\n"
        % (stats.records, getattr(stats, "n_skipped", 0), len(stations.stations), seconds, n,
           dt, t_read, seconds / dt if dt > 0 else 0.0, runs, total, cfg.mode, runner.card.name))
    return 0
