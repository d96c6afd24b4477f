"""Pseudo-labels from real continuous data: where several teachers agree, and where none sees anything.

Selective distillation (the student learns from teachers where they are
trustworthy) needs real waveforms the teachers can label.  This module runs
a teacher ensemble (:mod:`fieldpick.train.teachers`) over an SDS archive,
station by station, and keeps:

- **events**: a P peak and an S peak of the ensemble's mean probability
  (each at least ``pick_threshold``; the mean is high only where most
  members agree) with S between ``0.3`` and ``max_sp_s`` seconds after P;
  each becomes a ``segment_s`` trace (a little longer than the model window)
  with P at a random offset, kept only when no other arrival (mean above
  ``quiet_threshold``) lies inside it, so that no real event is taught as
  noise;
- **noise**: ``segment_s`` stretches where no member's P or S probability
  reaches ``quiet_threshold``.

The result is written in the labelled-window format
(:func:`fieldpick.train.data.corpus.load_labeled` reads it) with a JSON
manifest beside it (format version, teachers, thresholds, sources, counts),
so ``fieldpick train --data corpus --datasets ...,PATH.npz`` trains on it.
It also reports, per station, the hours scanned, the ensemble's picks and the
peaks of any member above 0.3 (times in ns): the reference for agreement
with the teachers, and for false picks where no teacher picks anything.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.train.score import trace_peaks

__all__ = ["PseudoConfig", "sds_stations", "read_station", "label_station", "pseudo_label", "main",
           "FORMAT", "DEFAULT_TEACHERS"]

log = logging.getLogger(__name__)

#: manifest format tag and version
FORMAT, VERSION = "fieldpick-pseudo-labels", 1

#: the members whose mean labels the data: the strongest teachers on the held-out sets that were not
#: trained on any of the project's labelled regions' data alone
DEFAULT_TEACHERS = ("rnn", "eqt", "lppnl", "phasenet")

_ROW = {"Z": 0, "N": 1, "E": 2, "1": 1, "2": 2, "3": 0}


@dataclass
class PseudoConfig:
    """Selection rules; thresholds are ensemble-mean probabilities, times in seconds."""

    pick_threshold: float = 0.5
    quiet_threshold: float = 0.1
    max_sp_s: float = 20.0
    segment_s: float = 32.0
    noise_per_hour: int = 12
    chunk_s: float = 3600.0
    seed: int = 0

    def validate(self):
        if not 0 < self.quiet_threshold < self.pick_threshold < 1:
            raise ConfigError("thresholds quiet %r, pick %r; need 0 < quiet < pick < 1"
                              % (self.quiet_threshold, self.pick_threshold))
        for name in ("max_sp_s", "segment_s", "chunk_s"):
            if not getattr(self, name) > 0:
                raise ConfigError("%s is %r; it must be > 0 seconds" % (name, getattr(self, name)))
        if self.segment_s < self.max_sp_s + 4:
            raise ConfigError("segment_s %r must exceed max_sp_s %r by 4 s (1 s before P, 3 s after S)"
                              % (self.segment_s, self.max_sp_s))
        return self


def sds_stations(root) -> Dict[str, List[str]]:
    """{'NET.STA.LOC.BAND': [files]} of an SDS archive (``YEAR/NET/STA/CHAN.D/NET.STA.LOC.CHAN.D.YEAR.DOY``)."""
    files = sorted(glob.glob(os.path.join(root, "*", "*", "*", "*.D", "*.D.*")))
    if not files:
        raise DataError("no SDS day files under %s (expected YEAR/NET/STA/CHAN.D/NET.STA.LOC.CHAN.D.YEAR.DOY)"
                        % root)
    out: Dict[str, List[str]] = {}
    for f in files:
        net, sta, loc, cha = os.path.basename(f).split(".")[:4]
        out.setdefault("%s.%s.%s.%s" % (net, sta, loc, cha[:2]), []).append(f)
    return out


def read_station(files, fs=100.0) -> List[Tuple[int, np.ndarray]]:
    """Continuous 3-C pieces of one station: [(start_ns, (3, N) float32 Z, N, E)], gaps split pieces.

    Components '1'/'2' stand for N/E; a station without horizontals keeps
    them zero.  Traces at another rate are resampled (ObsPy).
    """
    import obspy

    st = obspy.Stream()
    for f in files:
        st += obspy.read(f)
    for tr in st:
        if abs(tr.stats.sampling_rate - fs) > 1e-6:
            tr.resample(fs)
    st.merge(method=1, fill_value=None)
    spans = []
    pieces = st.split() if any(np.ma.isMaskedArray(tr.data) for tr in st) else st
    comps = {}
    for tr in pieces:
        comps.setdefault(tr.stats.channel[-1].upper(), []).append(tr)
    z = comps.get("Z") or comps.get("3") or []
    for tz in z:
        t0, t1 = tz.stats.starttime, tz.stats.endtime
        x = np.zeros((3, tz.stats.npts), np.float32)
        x[0] = tz.data
        for c, trs in comps.items():
            row = _ROW.get(c)
            if row in (1, 2):
                for tr in trs:
                    if tr.stats.starttime <= t0 + 0.5 / fs and tr.stats.endtime >= t1 - 0.5 / fs:
                        seg = tr.slice(t0, t1).data[: x.shape[1]]
                        x[row, : len(seg)] = seg
                        break
        spans.append((int(round(t0.timestamp * 1e9)), x))
    return spans


def _quiet(curves, fs, threshold):
    """(N,) True where no member's P or S reaches ``threshold`` (curves: members x (2, N))."""
    loud = np.zeros(curves[0].shape[-1], bool)
    for c in curves:
        loud |= c.max(axis=0) >= threshold
    return ~loud


def label_station(x, fs, curves, cfg: PseudoConfig, rng):
    """Event and noise segments of one continuous piece (3, N) from the members' curves (each (2, N)).

    Returns (events [(start, p, s)], noise [start], counts) in samples of ``x``.
    """
    mean = np.mean(curves, axis=0)
    peaks = {ph: [pos for pos, _ in trace_peaks(mean[k], cfg.pick_threshold)] for k, ph in enumerate("PS")}
    active = [pos for k in range(2) for pos, _ in trace_peaks(mean[k], cfg.quiet_threshold)]
    n, seg = x.shape[1], int(cfg.segment_s * fs)
    events = []
    for p in peaks["P"]:
        s_after = [s for s in peaks["S"] if 0.3 * fs <= s - p <= cfg.max_sp_s * fs]
        if len(s_after) != 1:
            continue
        s = s_after[0]
        room = seg - (s - p) - 4 * fs  # P at least 1 s in, S at least 3 s before the end
        start = int(p - fs - rng.uniform(0.0, 1.0) * max(room, 0.0))
        if start < 0 or start + seg > n or not np.abs(x[0, start:start + seg]).max() > 0:
            continue
        inside = [a for a in active if start <= a < start + seg and abs(a - p) > 0.5 * fs and abs(a - s) > 0.5 * fs]
        if inside:
            continue
        events.append((start, float(p - start), float(s - start)))
    quiet = _quiet(curves, fs, cfg.quiet_threshold)
    # a stretch qualifies when every sample in it is quiet: cumulative count of loud samples
    loud = np.concatenate([[0], np.cumsum(~quiet)])
    starts = np.arange(0, n - seg + 1, seg)
    ok = starts[(loud[starts + seg] - loud[starts]) == 0]
    ok = ok[[np.abs(x[0, a:a + seg]).max() > 0 for a in ok]]
    want = int(round(cfg.noise_per_hour * n / fs / 3600.0))
    noise = sorted(rng.choice(ok, min(len(ok), want), replace=False).tolist()) if len(ok) else []
    counts = {"P_picks": len(peaks["P"]), "S_picks": len(peaks["S"]), "events_kept": len(events),
              "quiet_fraction": float(quiet.mean()), "hours": n / fs / 3600.0}
    return events, noise, counts


#: a member's peak at least this high counts as "a teacher picked something here"
ANY_MEMBER_THRESHOLD = 0.3


def _record_picks(rep, curves, cfg, t0_ns, fs, own):
    """Append the ensemble's picks and every member's peaks (ns) within the first ``own`` samples."""
    mean = np.mean(curves, axis=0)
    for k, ph in enumerate("PS"):
        rep["picks"][ph] += [t0_ns + int(round(pos * 1e9 / fs)) for pos, _ in trace_peaks(mean[k], cfg.pick_threshold)
                             if pos < own]
    top = np.max([c.max(axis=0) for c in curves], axis=0)
    rep["any_member"] += [t0_ns + int(round(pos * 1e9 / fs)) for pos, _ in trace_peaks(top, ANY_MEMBER_THRESHOLD)
                          if pos < own]


def pseudo_label(sds_root, teacher, cfg: PseudoConfig, fs=100.0, stations=None):
    """Label every station of an SDS archive; returns (arrays for the labelled format, per-station report)."""
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    groups = sds_stations(sds_root)
    if stations:
        groups = {k: v for k, v in groups.items() if k.rsplit(".", 2)[0] in stations or k in stations}
    X, P, S, ids, noise_flag, report = [], [], [], [], [], {}
    seg, chunk = int(cfg.segment_s * fs), int(cfg.chunk_s * fs)
    members = getattr(teacher, "members", [teacher])
    for key, files in sorted(groups.items()):
        net_sta = ".".join(key.split(".")[:2])
        rep = report.setdefault(net_sta, {"hours": 0.0, "P_picks": 0, "S_picks": 0, "events_kept": 0,
                                          "noise_kept": 0, "picks": {"P": [], "S": []}, "any_member": []})
        for t0, x in read_station(files, fs):
            for a in range(0, x.shape[1], chunk):
                piece = x[:, a:a + chunk + seg]  # chunks overlap by a segment: events on a border survive
                if piece.shape[1] < seg:
                    continue
                curves = [m.predict(piece[None], fs=fs)[0] for m in members]
                ev, nz, counts = label_station(piece, fs, curves, cfg, rng)
                own = chunk if a + chunk < x.shape[1] else piece.shape[1]  # the overlap belongs to the next
                counts["hours"] = own / fs / 3600.0
                for k in ("hours", "events_kept"):
                    rep[k] += counts[k]
                _record_picks(rep, curves, cfg, t0 + int(round(a * 1e9 / fs)), fs, own)
                rep["noise_kept"] += len(nz)
                for start, p, s in ev:
                    X.append(piece[:, start:start + seg])
                    P.append(p)
                    S.append(s)
                    ids.append("%s.%d" % (net_sta, (t0 + int((a + start) * 1e9 / fs)) // 10**9))
                    noise_flag.append(False)
                for start in nz:
                    X.append(piece[:, start:start + seg])
                    P.append(-1)
                    S.append(-1)
                    ids.append("%s.%d" % (net_sta, (t0 + int((a + start) * 1e9 / fs)) // 10**9))
                    noise_flag.append(True)
        rep["P_picks"], rep["S_picks"] = len(rep["picks"]["P"]), len(rep["picks"]["S"])
        log.info("%s: %.2f h, %d P / %d S picks, %d events and %d noise stretches kept", net_sta, rep["hours"],
                 rep["P_picks"], rep["S_picks"], rep["events_kept"], rep["noise_kept"])
    if not X:
        raise DataError("no segment of %s met the selection rules" % sds_root)
    arrays = {"X": np.stack(X).astype(np.float32), "p_idx": np.round(P).astype(np.int64),
              "s_idx": np.round(S).astype(np.int64), "ids": np.array(ids), "fs": np.float64(fs),
              "noise": np.array(noise_flag)}
    return arrays, report


def _adapter_version():
    from fieldpick.train.teachers import ADAPTER_VERSION

    return ADAPTER_VERSION


def main(argv) -> int:
    """``fieldpick pseudo``: pseudo-label an SDS archive with a teacher ensemble."""
    p = argparse.ArgumentParser(prog="fieldpick pseudo", allow_abbrev=False,
                                description="Label real continuous data (an SDS archive) where a teacher ensemble "
                                            "agrees, and cut quiet stretches as noise; writes a labelled-format "
                                            ".npz and a JSON manifest for fieldpick train --data corpus.")
    p.add_argument("--sds", required=True, help="SDS archive root")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="output (a .json manifest is written beside)")
    p.add_argument("--teachers", default=",".join(DEFAULT_TEACHERS),
                   help="comma list of teachers whose mean labels the data (default %(default)s)")
    p.add_argument("--teachers-dir", default=None, help="teacher weights folder (default $FIELDPICK_TEACHERS)")
    p.add_argument("--stations", default="", help="comma list of NET.STA to label (default: all)")
    p.add_argument("--threads", type=int, default=1)
    for f, default in asdict(PseudoConfig()).items():
        p.add_argument("--" + f.replace("_", "-"), type=type(default), default=default)
    args = p.parse_args(argv)
    from fieldpick.train.teachers import Ensemble

    cfg = PseudoConfig(**{f: getattr(args, f) for f in asdict(PseudoConfig())}).validate()
    names = [t.strip() for t in args.teachers.split(",") if t.strip()]
    teacher = Ensemble(names, root=args.teachers_dir, threads=args.threads)
    stations = [s.strip() for s in args.stations.split(",") if s.strip()]
    arrays, report = pseudo_label(args.sds, teacher, cfg, stations=stations or None)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, **arrays)
    manifest = {"format": FORMAT, "version": VERSION, "created": datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "sds": os.path.abspath(args.sds),
        "teachers": names, "adapter_version": _adapter_version(), "selection": asdict(cfg), "events": int((~arrays["noise"]).sum()),
        "noise": int(arrays["noise"].sum()), "stations": report,
        "command": "fieldpick pseudo " + " ".join(argv)}
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(manifest, f, indent=1)
    sys.stdout.write(json.dumps({k: manifest[k] for k in ("events", "noise", "teachers")}) + "\n")
    return 0


def _cache_key(ls, names, threshold):
    import hashlib

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ls.events.waveforms[:, :, ::97]).tobytes())
    from fieldpick.train.teachers import ADAPTER_VERSION

    h.update(("|".join(names) + "|%g|adapters %d" % (threshold, ADAPTER_VERSION)).encode())
    return h.hexdigest()[:16]


def complete_labels(ls, teacher, threshold=0.5, max_sp_s=25.0, cache_dir=None):
    """Fill the arrivals a labelled set lacks where the teacher is sure: (new LabeledSet, report).

    Several published sets label only P (or only some S): their S arrivals
    would otherwise be taught as noise.  For each event trace without a P
    (or S) label, the teacher's strongest peak of that phase above
    ``threshold`` becomes the label, if it lies before the S (after the P,
    by 0.3 to ``max_sp_s`` seconds).  Analyst labels are never changed.
    ``cache_dir``: keep the teacher's curves there (keyed by data and teacher).
    """
    import dataclasses

    from fieldpick.train.data.datasets import WindowSet

    names = [getattr(m, "name", str(m)) for m in getattr(teacher, "members", [teacher])]
    ev, fs = ls.events, ls.events.fs
    need = np.flatnonzero(np.isnan(ev.p_idx) | np.isnan(ev.s_idx))
    p, s = ev.p_idx.copy(), ev.s_idx.copy()
    report = {"set": ls.name, "teachers": names, "threshold": threshold, "traces_missing": int(len(need)),
              "P_filled": 0, "S_filled": 0}
    if not len(need):
        return ls, report
    path = None
    if cache_dir:
        path = os.path.join(cache_dir, "curves-%s-%s.npy" % (ls.name, _cache_key(ls, names, threshold)))
    if path and os.path.exists(path):
        curves = np.load(path)
    else:
        curves = np.concatenate([teacher.predict(ev.waveforms[need[a:a + 16]], fs=fs)
                                 for a in range(0, len(need), 16)])
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            np.save(path, curves.astype(np.float16))
    for k, i in enumerate(need):
        for col, ph in enumerate("PS"):
            cur = p if ph == "P" else s
            if np.isfinite(cur[i]):
                continue
            other = s[i] if ph == "P" else p[i]
            best = None
            for pos, prob in trace_peaks(curves[k, col].astype(np.float32), threshold):
                if np.isfinite(other):
                    gap = (other - pos) if ph == "P" else (pos - other)
                    if not 0.3 * fs <= gap <= max_sp_s * fs:
                        continue
                if best is None or prob > best[1]:
                    best = (pos, prob)
            if best is not None:
                cur[i] = best[0]
                report[ph + "_filled"] += 1
    events = WindowSet(ev.waveforms, p, s, ev.station, fs, dict(ev.meta))
    return dataclasses.replace(ls, events=events), report
