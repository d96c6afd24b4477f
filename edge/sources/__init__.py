"""Station sources: where records come from.  One factory, :func:`open_source`.

Every source is a :class:`~fieldpick.edge.sources.base.Source`: iterate it to get
:class:`~fieldpick.edge.sources.base.Record` objects (network, station, location,
channel, start_ns, sampling_rate, samples), one channel each, in arrival order;
``close()`` (or ``with``) releases files and sockets; ``stats`` counts what was
decoded and what was skipped (corrupt records are skipped with a logged reason,
never raised).

``open_source(spec, **options)`` accepts:

=============================================  =====================================
spec                                           source
=============================================  =====================================
``"day.mseed"`` (a file)                       :class:`~.mseed.MseedFileSource`
``"/data/event/"`` (a directory)               every file under it, sorted by path
``"/archive"`` (a directory holding an SDS     :class:`~.sds.SdsSource`, selected by the
tree: ``YEAR/NET/STA/CHA.D/``)                 options network, station, location,
                                               channel (wildcards), start, end
``"sds:///archive?net=XX&sta=*&cha=HH?&        the same, options in the query
start=2026-11-22T00:00:00&end=..."``
``"-"``                                        miniSEED from standard input (a pipe)
``"seedlink://host:18000?streams=XX_STA:HH?    :class:`~.seedlink.SeedLinkClient`;
,YY_B&mode=DATA"``                             query keys: streams (required), mode
                                               (DATA, FETCH, TIME), start, end,
                                               keepalive (s), timeout (s), state
                                               (a file keeping sequence numbers)
a binary file object (has ``read``)            :class:`~.mseed.MseedFileSource`
=============================================  =====================================

Keyword options override query keys; for ``seedlink://`` they may also be
max_reconnects, backoff_s, connect_timeout_s, state_every_s, seqnums, sleep
(see :class:`~.seedlink.SeedLinkClient`).

Times (``start``, ``end``) are ISO 8601 UTC strings (``2026-11-22T03:00:00.5``,
optional ``Z``) or integer ns since the epoch; they become ``start_ns`` /
``end_ns``.  Unknown options or query keys raise
:class:`~fieldpick.edge.errors.ConfigError`.

Example (what ``fieldpick replay`` needs)::

    from fieldpick.edge.sources import open_source
    with open_source(path) as src:
        for rec in src:
            pipeline.feed(rec)
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Dict, Optional
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigError
from .base import Record, Source

__all__ = ["Record", "Source", "open_source", "parse_time_ns", "is_sds_root"]

_SDS_KEYS = {"net": "network", "network": "network", "sta": "station", "station": "station",
             "loc": "location", "location": "location", "cha": "channel", "channel": "channel",
             "start": "start_ns", "end": "end_ns", "type": "data_type"}
_SL_KEYS = {"streams": "streams", "mode": "mode", "start": "start_ns", "end": "end_ns",
            "keepalive": "keepalive_s", "timeout": "timeout_s", "state": "state_path"}
# keyword options of open_source for seedlink:// beyond the query keys
_SL_KWARGS = ("max_reconnects", "backoff_s", "connect_timeout_s", "state_every_s", "seqnums", "sleep")


def parse_time_ns(value) -> Optional[int]:
    """ISO 8601 UTC text or integer ns -> ns since the epoch (None stays None)."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    iso = text[:-1] if text.endswith("Z") else text
    frac = 0
    if "." in iso:
        iso, digits = iso.split(".", 1)
        if not digits.isdigit() or len(digits) > 9:
            raise ConfigError("time %r: expected YYYY-MM-DDTHH:MM:SS[.fraction][Z]" % text)
        frac = int(digits.ljust(9, "0"))
    try:
        dt = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S" if "T" in iso else "%Y-%m-%d")
    except ValueError:
        raise ConfigError("time %r: expected YYYY-MM-DDTHH:MM:SS[.fraction][Z] or ns" % text) from None
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1_000_000_000 + frac


def is_sds_root(path: str) -> bool:
    try:
        years = [d for d in os.listdir(path) if len(d) == 4 and d.isdigit()]
    except OSError:
        return False
    return any(os.path.isdir(os.path.join(path, y)) for y in years)


def _options(pairs, keys: Dict[str, str], what: str) -> dict:
    out = {}
    for key, value in pairs:
        if key not in keys:
            raise ConfigError("unknown %s option %r; allowed: %s" % (what, key, ", ".join(sorted(keys))))
        name = keys[key]
        if name in ("start_ns", "end_ns"):
            value = parse_time_ns(value)
        elif name in ("keepalive_s", "timeout_s"):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError("%s option %r must be a number of seconds, got %r" % (what, key, value)) from None
        out[name] = value
    return out


def open_source(spec, **options) -> Source:
    """Open a file, directory, SDS root, ``-`` (stdin) or ``seedlink://`` URL as a Source.

    See the module documentation for the accepted forms and options.
    """
    from .mseed import MseedFileSource

    if hasattr(spec, "read"):
        _no_options(options, "a stream")
        return MseedFileSource(stream=spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError("source %r: expected a path, '-', an sds:// or seedlink:// URL, or a binary "
                          "file object" % (spec,))
    spec = os.fspath(spec)
    if spec == "-":
        _no_options(options, "'-'")
        return MseedFileSource(stream=sys.stdin.buffer)
    if spec.startswith("seedlink://"):
        from .seedlink import SeedLinkClient

        url = urlsplit(spec)
        if not url.hostname:
            raise ConfigError("SeedLink URL %r has no host; expected seedlink://HOST:PORT?streams=..." % spec)
        opts = _options(parse_qsl(url.query, keep_blank_values=True), _SL_KEYS, "seedlink")
        allowed = {v: v for v in _SL_KEYS.values()}
        allowed.update((k, k) for k in _SL_KWARGS)
        opts.update(_options(options.items(), allowed, "seedlink"))
        if "streams" not in opts:
            raise ConfigError("SeedLink URL %r needs ?streams=NET_STA[:SELECTORS],..." % spec)
        return SeedLinkClient(url.hostname, url.port or 18000, opts.pop("streams"), **opts)
    if spec.startswith("sds://"):
        from .sds import SdsSource

        url = urlsplit(spec)
        opts = _options(parse_qsl(url.query, keep_blank_values=True), _SDS_KEYS, "SDS")
        opts.update(_options(options.items(), {v: v for v in _SDS_KEYS.values()}, "SDS"))
        return SdsSource((url.netloc or "") + url.path, **opts)
    if "://" in spec:
        raise ConfigError("source %r: unknown scheme %r; use a path, '-', sds:// or seedlink://"
                          % (spec, spec.split("://")[0]))
    if os.path.isdir(spec) and is_sds_root(spec):
        from .sds import SdsSource

        return SdsSource(spec, **_options(options.items(), {v: v for v in _SDS_KEYS.values()}, "SDS"))
    _no_options(options, repr(spec))
    return MseedFileSource(spec)


def _no_options(options: dict, what: str) -> None:
    if options:
        raise ConfigError("options %s are not used with %s (they select SDS or SeedLink data)"
                          % (", ".join(sorted(options)), what))
