"""QuakeML 1.2 (and SeisComP XML, SCML) from the store, built with ObsPy's event classes.

Each event carries its preferred origin (time, latitude, longitude, depth
with their one-sigma uncertainties, quality: RMS, azimuthal gap, phase and
station counts), its arrivals (phase, residual, distance, azimuth, weight)
and their picks; an event-less document (``fieldpick picks --format
quakeml``) holds the picks in one event of type 'not existing'.

Every pick names the channel its phase is read on (S on a horizontal where
the station table lists one), its onset (impulsive, emergent or
questionable from the calibrated sigma: <= 0.05 s, <= 0.2 s, more), its
polarity, the calibrated time uncertainty, ``methodID``
``smi:local/fieldpick/model/<sha256>`` and creation info whose author is
the model name and whose version is the model's sha256.
"""

from __future__ import annotations

import datetime
from typing import Dict, List, Optional

from fieldpick.edge.errors import ConfigError

from .calibration import Calibration
from .stations import pick_channel

__all__ = ["build_catalog", "write_catalog", "validate_quakeml"]

PREFIX = "smi:local/fieldpick"


def _utc(obspy, ns: int):
    return obspy.UTCDateTime(ns=int(ns))


def _obspy():
    try:
        import obspy
        from obspy.core import event as ev
    except ImportError:
        raise ConfigError("QuakeML and SeisComP XML output need ObsPy: pip install 'fieldpick[network]'") from None
    return obspy, ev


def _pick(obspy, ev, row: dict, stations: Dict[str, dict], agency: str):
    net, sta, loc = row["station"].split(".")
    sigma = Calibration.for_model(row.get("model_sha256")).sigma(row["uncertainty_s"], row["phase"])
    cha = pick_channel(row["phase"], row["channel"], stations.get(row["station"]))
    onset = "impulsive" if sigma <= 0.05 else "emergent" if sigma <= 0.2 else "questionable"
    polarity = {"U": "positive", "D": "negative"}.get(row["polarity"], "undecidable")
    sha = row.get("model_sha256") or "unknown"
    info = ev.CreationInfo(agency_id=agency, author="fieldpick/%s" % (row.get("model_name") or "model"),
                           version=sha, creation_time=_utc(obspy, row["received_ns"]))
    p = ev.Pick(resource_id=ev.ResourceIdentifier("%s/pick/%d" % (PREFIX, row["id"])),
                time=_utc(obspy, row["time_ns"]), time_errors=ev.QuantityError(uncertainty=sigma),
                waveform_id=ev.WaveformStreamID(net, sta, loc, cha), onset=onset, phase_hint=row["phase"],
                polarity=polarity, evaluation_mode="automatic", evaluation_status="preliminary",
                method_id=ev.ResourceIdentifier("%s/model/%s" % (PREFIX, sha)), creation_info=info)
    p.comments.append(ev.Comment(text="probability=%.4f snr_db=%.1f reported_uncertainty_s=%.4f amplitude=%.6g"
                                 % (row["probability"], row["snr_db"], row["uncertainty_s"], row["amplitude"])))
    return p


def _origin(obspy, ev, row: dict, picks: List, agency: str):
    o = ev.Origin(resource_id=ev.ResourceIdentifier("%s/origin/%d" % (PREFIX, row["id"])),
                  time=_utc(obspy, row["time_ns"]), latitude=row["latitude"], longitude=row["longitude"],
                  depth=row["depth_km"] * 1000.0, depth_type="from location", evaluation_mode="automatic",
                  evaluation_status="preliminary",
                  method_id=ev.ResourceIdentifier("%s/locator/grid-search-least-squares" % PREFIX),
                  earth_model_id=ev.ResourceIdentifier("%s/velocity/%s" % (PREFIX, _slug(row["velocity_model"]))),
                  creation_info=ev.CreationInfo(agency_id=agency, author="fieldpick associate",
                                                creation_time=_utc(obspy, row["created_ns"])))
    if row["time_err_s"] is not None:
        o.time_errors = ev.QuantityError(uncertainty=row["time_err_s"])
    if row["lat_err_km"] is not None:
        o.latitude_errors = ev.QuantityError(uncertainty=row["lat_err_km"] / 111.19)
    if row["lon_err_km"] is not None:
        import math

        o.longitude_errors = ev.QuantityError(
            uncertainty=row["lon_err_km"] / (111.19 * max(0.01, math.cos(math.radians(row["latitude"])))))
    if row["depth_err_km"] is not None:
        o.depth_errors = ev.QuantityError(uncertainty=row["depth_err_km"] * 1000.0)
    n = len(row["arrivals"])
    o.quality = ev.OriginQuality(associated_phase_count=n, used_phase_count=n,
                                 associated_station_count=row["n_stations"], used_station_count=row["n_stations"],
                                 standard_error=row["rms_s"], azimuthal_gap=row["gap_deg"])
    for a, p in zip(row["arrivals"], picks):
        o.arrivals.append(ev.Arrival(pick_id=p.resource_id, phase=a["arrival_phase"], time_residual=a["residual_s"],
                                     distance=a["distance_km"] / 111.19, azimuth=a["azimuth_deg"],
                                     time_weight=a["weight"]))
    return o


def _slug(text: Optional[str]) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in (text or "default"))


def build_catalog(events: List[dict], stations: Dict[str, dict], loose_picks: Optional[List[dict]] = None,
                  agency: str = "fieldpick"):
    """An ObsPy Catalog from :func:`~fieldpick.network.events.load_events` rows (and/or loose picks)."""
    obspy, ev = _obspy()
    cat = ev.Catalog(resource_id=ev.ResourceIdentifier("%s/catalog/%s" % (
        PREFIX, datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%S"))))
    cat.creation_info = ev.CreationInfo(agency_id=agency, creation_time=obspy.UTCDateTime())
    for row in events:
        picks = [_pick(obspy, ev, a, stations, agency) for a in row["arrivals"]]
        origin = _origin(obspy, ev, row, picks, agency)
        e = ev.Event(resource_id=ev.ResourceIdentifier(row["public_id"]), event_type="earthquake",
                     event_type_certainty="suspected", creation_info=origin.creation_info)
        e.picks = picks
        e.origins = [origin]
        e.preferred_origin_id = origin.resource_id
        if row.get("magnitude") is not None:
            m = ev.Magnitude(resource_id=ev.ResourceIdentifier("%s/magnitude/%d" % (PREFIX, row["id"])),
                             mag=row["magnitude"], magnitude_type="ML", origin_id=origin.resource_id,
                             station_count=row["magnitude_n"], evaluation_mode="automatic",
                             method_id=ev.ResourceIdentifier("%s/magnitude/ml-hutton-boore-1987" % PREFIX))
            e.magnitudes = [m]
            e.preferred_magnitude_id = m.resource_id
        cat.events.append(e)
    if loose_picks:
        e = ev.Event(resource_id=ev.ResourceIdentifier("%s/picks/unassociated" % PREFIX), event_type="not existing",
                     event_type_certainty="known")
        e.event_descriptions.append(ev.EventDescription(text="picks not associated with an event",
                                                        type="region name"))
        e.picks = [_pick(obspy, ev, p, stations, agency) for p in loose_picks]
        cat.events.append(e)
    return cat


def write_catalog(cat, path_or_file, fmt: str = "QUAKEML") -> None:
    """Write QUAKEML or SCML (SeisComP XML; ObsPy's writers)."""
    if fmt not in ("QUAKEML", "SCML"):
        raise ConfigError("event format %r; allowed: QUAKEML, SCML" % fmt)
    cat.write(path_or_file, format=fmt, validate=False)


def validate_quakeml(path) -> bool:
    """True when the file validates against the QuakeML 1.2 schema that ObsPy ships."""
    from obspy.io.quakeml.core import _validate

    return bool(_validate(path))
