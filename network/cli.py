"""The network side's verbs: ``fieldpick picks``, ``fieldpick stations``, ``fieldpick associate``.

Each takes ``--db URL`` (``sqlite:///PATH``, a path, or ``postgresql://...``;
default: the FIELDPICK_DB environment variable).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import datetime
import os
import re
import sys
from typing import Optional

from fieldpick.edge.errors import ConfigError

from .store import open_store

__all__ = ["picks_main", "stations_main", "associate_main", "parse_time"]

_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?Z?$")


def parse_time(text: Optional[str]) -> Optional[int]:
    """ISO 8601 UTC ('2019-07-04T17:33:49.5Z', '2019-07-04') -> ns since the epoch."""
    if text is None:
        return None
    m = _ISO.match(text.strip())
    if not m:
        raise ConfigError("time %r; expected ISO 8601 UTC like 2019-07-04T17:33:49Z or 2019-07-04" % text)
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError as exc:
        raise ConfigError("time %r: %s" % (text, exc)) from None
    ns = calendar.timegm(dt.timetuple()) * 10 ** 9
    if frac:
        ns += int(frac.ljust(9, "0"))
    return ns


def _db_arg(p):
    p.add_argument("--db", default=os.environ.get("FIELDPICK_DB"), metavar="URL",
                   help="sqlite:///PATH, a file path, or postgresql://USER@HOST:PORT/DB (default: $FIELDPICK_DB)")


def _store(args, create=False):
    if not args.db:
        raise ConfigError("no database given; pass --db URL or set FIELDPICK_DB")
    return open_store(args.db, create=create)


@contextlib.contextmanager
def _out(path):
    """The output file ``path`` (closed after), or standard output for none or '-'."""
    if not path or path == "-":
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        yield f


def _write_catalog(store, events, loose, path, fmt):
    from .quakeml import build_catalog, write_catalog

    stations = {s["code"]: s for s in store.stations()}
    cat = build_catalog(events, stations, loose)
    if path and path != "-":
        write_catalog(cat, path, fmt)
    else:
        import io

        buf = io.BytesIO()
        write_catalog(cat, buf, fmt)
        sys.stdout.write(buf.getvalue().decode("utf-8"))


# ---------------------------------------------------------------- picks


def picks_main(argv) -> int:
    p = argparse.ArgumentParser(prog="fieldpick picks", allow_abbrev=False,
                                description="Query the pick store (or load picks into it with --ingest).")
    _db_arg(p)
    p.add_argument("--station", help="NET.STA.LOC, NET.STA or STA")
    p.add_argument("--phase", choices=["P", "S"])
    p.add_argument("--since", help="ISO 8601 UTC, inclusive")
    p.add_argument("--until", help="ISO 8601 UTC, exclusive")
    p.add_argument("--limit", type=int)
    p.add_argument("--format", default="csv", choices=["csv", "json", "quakeml", "scml", "earthworm"],
                   help="csv (default), json (one object a line), quakeml, scml, earthworm (TYPE_PICK_SCNL)")
    p.add_argument("--out", metavar="PATH", help="write here instead of standard output")
    p.add_argument("--module-id", type=int, default=0, help="Earthworm module id (default 0)")
    p.add_argument("--installation-id", type=int, default=255, help="Earthworm installation id (default 255)")
    p.add_argument("--ingest", metavar="JSONL", action="append", default=[],
                   help="load picks from JSON lines (fieldpick replay --format jsonl) first; duplicates skipped")
    p.add_argument("--model", help="with --ingest: the model card the picks came from (or 'default')")
    args = p.parse_args(argv)
    store = _store(args, create=bool(args.ingest))
    try:
        if args.ingest:
            from .ingest import model_identity, read_pick_lines

            model = model_identity(args.model)
            for path in args.ingest:
                picks = read_pick_lines(path)
                new = store.insert_picks(picks, model=model)
                sys.stderr.write("%s: %d picks, %d new\n" % (path, len(picks), new))
        rows = store.picks(args.station, args.phase, parse_time(args.since), parse_time(args.until), args.limit)
        if args.format in ("quakeml", "scml"):
            _write_catalog(store, [], rows, args.out, args.format.upper())
            return 0
        with _out(args.out) as f:
            if args.format == "earthworm":
                from .earthworm import format_lines

                for line in format_lines(store, rows, args.module_id, args.installation_id):
                    f.write(line + "\n")
            else:
                from .csvout import pick_records, write_picks

                stations = {s["code"]: s for s in store.stations()}
                write_picks(pick_records(rows, stations), f, args.format)
    finally:
        store.close()
    return 0


# ---------------------------------------------------------------- stations


def stations_main(argv) -> int:
    p = argparse.ArgumentParser(prog="fieldpick stations", allow_abbrev=False,
                                description="List stations: coordinates, last seen, latency, last SOH; "
                                            "--import loads a station CSV or StationXML.")
    _db_arg(p)
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="PATH",
                   help="station table: .csv (network,station,location,latitude,longitude[,elevation_m,"
                        "vertical,horizontals,gain]) or StationXML (.xml)")
    p.add_argument("--format", default="table", choices=["table", "csv", "json"])
    args = p.parse_args(argv)
    store = _store(args, create=bool(args.imports))
    try:
        from .stations import import_stations, read_station_csv, read_stationxml

        for path in args.imports:
            rows = read_station_csv(path) if path.lower().endswith(".csv") else read_stationxml(path)
            sys.stderr.write("%s: %d stations\n" % (path, import_stations(store, rows)))
        _print_stations(store, args.format)
    finally:
        store.close()
    return 0


def _print_stations(store, fmt):
    import json

    from .csvout import iso

    soh = store.last_soh()
    counts = dict(store.query("SELECT station, COUNT(*) FROM picks GROUP BY station"))
    rows = []
    for s in store.stations():
        latency = (s["last_seen_ns"] - s["last_pick_ns"]) / 1e9 if s["last_seen_ns"] and s["last_pick_ns"] else None
        rows.append({"station": s["code"], "latitude": s["latitude"], "longitude": s["longitude"],
                     "picks": int(counts.get(s["code"], 0)),
                     "last_seen": iso(s["last_seen_ns"]) if s["last_seen_ns"] else None,
                     "latency_s": None if latency is None else round(latency, 3),
                     "last_soh": soh.get(s["code"])})
    if fmt == "json":
        for r in rows:
            sys.stdout.write(json.dumps(r, sort_keys=True) + "\n")
        return
    cols = ("station", "latitude", "longitude", "picks", "last_seen", "latency_s", "last_soh")
    if fmt == "csv":
        sys.stdout.write(",".join(cols) + "\n")
    for r in rows:
        vals = ["" if r[c] is None else (json.dumps(r[c], sort_keys=True) if c == "last_soh" else str(r[c]))
                for c in cols]
        if fmt == "csv":
            sys.stdout.write(",".join('"%s"' % v.replace('"', '""') if "," in v else v for v in vals) + "\n")
        else:
            sys.stdout.write("  ".join(vals) + "\n")


# ---------------------------------------------------------------- associate


def associate_main(argv) -> int:
    p = argparse.ArgumentParser(prog="fieldpick associate", allow_abbrev=False,
                                description="Associate and locate the stored picks into events (written back to "
                                            "the database: events, origins, arrivals); optionally export them.")
    _db_arg(p)
    p.add_argument("--since", help="ISO 8601 UTC, inclusive")
    p.add_argument("--until", help="ISO 8601 UTC, exclusive")
    p.add_argument("--velocity", metavar="JSON", help="1-D model: {name, tops_km, vp, vs or vp_vs}")
    p.add_argument("--min-picks", type=int, default=6, help="picks an event needs (default 6)")
    p.add_argument("--min-stations", type=int, default=4, help="stations an event needs (default 4)")
    p.add_argument("--format", default="csv", choices=["csv", "json", "quakeml", "scml"],
                   help="how to write the events in the span (default csv)")
    p.add_argument("--out", metavar="PATH", help="write the events here (default: standard output)")
    args = p.parse_args(argv)
    from .associate import AssociatorConfig
    from .events import associate_store, load_events
    from .velocity import LayeredModel

    model = LayeredModel.load(args.velocity) if args.velocity else None
    cfg = AssociatorConfig(min_picks=args.min_picks, min_stations=args.min_stations)
    since, until = parse_time(args.since), parse_time(args.until)
    store = _store(args)
    try:
        new = associate_store(store, since, until, model, cfg)
        sys.stderr.write("associate: %d new events\n" % len(new))
        events = load_events(store, since, until)
        if args.format in ("quakeml", "scml"):
            _write_catalog(store, events, None, args.out, args.format.upper())
        else:
            from .csvout import write_events

            with _out(args.out) as f:
                write_events(events, f, args.format)
    finally:
        store.close()
    return 0
