"""Seeing what the picker does: waveforms, probabilities and picks as PNG (``fieldpick plot``).

Two kinds of figure:

- :func:`plot_window`: a window or a stretch of stream, the three components
  (Z, N, E), the model's probability traces beneath them, its picks (phase,
  probability and one-sigma uncertainty) and, when given, the reference
  picks; optionally a saliency panel (``fieldpick explain`` uses it).
- :func:`plot_overview`: a helicorder-style page for hours to a day of the
  vertical component, one row per ``row_minutes``, picks marked as coloured
  ticks, rows labelled with their UTC start.

:func:`annotate` runs a zoo model over a record of any length the way the
station does (overlapping windows, mean-stacked cells, the station's own
:class:`~fieldpick.edge.picker.PeakFinder`), so the picks drawn are the picks
the station would send.

Time axes of streams read in UTC; windows read in seconds from their first
sample.  matplotlib (Agg back end) and torch are imported inside functions.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from fieldpick.edge.errors import ConfigError, DataError, FieldpickError
from fieldpick.edge.stream.windows import normalise

__all__ = ["Annotation", "annotate", "load_record", "plot_window", "plot_overview", "main"]

log = logging.getLogger(__name__)

#: colours and styles shared by every figure (colour-blind safe pair for P and S)
COLOURS = {"P": "#0072B2", "S": "#D55E00", "D": "0.55", "ref": "0.1"}
COMPONENTS = ("Z", "N", "E")
#: records longer than this become a helicorder page with ``--overview auto``, seconds
OVERVIEW_AUTO_S = 3600.0


# ---------------------------------------------------------------- running a model
@dataclass
class Annotation:
    """A model's view of one record.

    positions: (L,) sample position (float) of each output cell in the record.
    probs: (L, K) probabilities in card label order ``labels``.
    picks: [(phase, sample (float), probability, sigma (samples))], by time.
    thresholds: the per-phase pick thresholds used.
    """

    labels: List[str]
    positions: np.ndarray
    probs: np.ndarray
    picks: list
    thresholds: Dict[str, float] = field(default_factory=dict)
    name: str = ""

    def trace(self, label):
        """(positions, values) of one label's probability trace."""
        return self.positions, self.probs[:, self.labels.index(label)]


def annotate(model, card, data, hop=None, thresholds=None, batch=16):
    """Probabilities and picks of ``model`` over ``data`` (3, N) raw counts, ZNE, at the card's rate.

    Windows of the card's length start every ``hop`` samples (default half a
    window, on the cell grid) and their cells are averaged, as the station's
    ``Stacker`` does; the tail is zero-padded.  The window classifier (CPIC)
    is slid over the record by its own ``scan``.  thresholds: per-phase
    overrides of the card's.  Returns an :class:`Annotation`.
    """
    import torch

    from fieldpick.edge.picker import PeakFinder

    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] != 3:
        raise DataError("record has shape %s; expected (3, N) in Z, N, E order" % (data.shape,))
    kind = card.output.kind
    labels = list(card.output.labels)
    fs = card.input.sampling_rate_hz
    W = card.input.window_samples
    N = data.shape[1]
    thr = dict(card.thresholds)
    thr.update(thresholds or {})
    model.eval()
    if kind == "window_class":
        from fieldpick.train.score import trace_peaks

        c = model.config
        if N < W:
            data = np.concatenate([data, np.zeros((3, W - N), np.float32)], axis=1)
        with torch.no_grad():
            probs = model.scan(torch.from_numpy(data[None]))[0].numpy().T  # (L, 3)
        positions = np.arange(len(probs)) * float(c.scan_hop) + c.onset_sample
        picks = []
        for phase in ("P", "S"):
            if phase in labels:
                for pos, p in trace_peaks(probs[:, labels.index(phase)], thr[phase], positions):
                    if pos < N:
                        picks.append((phase, pos, p, c.scan_hop / math.sqrt(12.0)))
        picks.sort(key=lambda t: t[1])
        return Annotation(labels, positions, probs, picks, thr, card.name)
    S = card.output.stride_samples
    if hop is None:
        hop = max(S, (W // 2) // S * S)
    if hop < 1 or hop % S or hop > W:
        raise ConfigError("hop %r samples; it must be a multiple of the stride (%d) in 1 .. %d" % (hop, S, W))
    n_win = max(1, int(math.ceil((N - W) / hop)) + 1)
    total = (n_win - 1) * hop + W
    padded = np.zeros((3, total), np.float32)
    padded[:, :N] = data
    L = W // S
    cells = total // S
    width = len(labels) + (1 if kind == "stride_class_offset" else 0)
    sums = np.zeros((cells, width))
    counts = np.zeros(cells)
    for first in range(0, n_win, batch):
        ks = range(first, min(first + batch, n_win))
        x = normalise(np.stack([padded[:, k * hop: k * hop + W] for k in ks]), card.input.normalisation)
        with torch.no_grad():
            out = model(torch.from_numpy(x)).numpy()  # (B, C, L) in PyTorch layout
        for k, o in zip(ks, out):
            c0 = k * hop // S
            sums[c0: c0 + L] += o[:width].T
            counts[c0: c0 + L] += 1
    mean = sums / np.maximum(counts, 1)[:, None]
    probs = mean[:, : len(labels)]
    offsets = mean[:, len(labels)] if kind == "stride_class_offset" else None
    positions = np.arange(cells) * float(S) + ((S - 1) / 2.0 if S > 1 else 0.0)
    picks = []
    for phase in ("P", "S"):
        if phase not in labels:
            continue
        finder = PeakFinder(thr[phase], S, int(round(1.0 * fs / S)))
        for pk in finder.process(0, probs[:, labels.index(phase)], offsets, final=True):
            if pk.position < N:
                picks.append((phase, pk.position, pk.probability, pk.sigma))
    picks.sort(key=lambda t: t[1])
    keep = positions < N
    return Annotation(labels, positions[keep], probs[keep], picks, thr, card.name)


def load_model(path):
    """A checkpoint (``.pt``) -> (model, card), with torch kept to one thread."""
    import torch

    from fieldpick.train.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    model, card, _ = load_checkpoint(path)
    return model, card


# ---------------------------------------------------------------- reading records
@dataclass
class Record:
    """A record to draw: data (3, N) ZNE counts, fs (Hz), start_ns (UTC), reference picks (samples)."""

    data: np.ndarray
    fs: float
    start_ns: int
    reference: Dict[str, List[float]]
    title: str


def _ref(p, s):
    return {ph: [float(v)] for ph, v in (("P", p), ("S", s)) if v is not None and np.isfinite(v)}


def load_record(args) -> Record:
    """The record the command line names (one of --synthetic, --ncedc, --stream, --mseed)."""
    from fieldpick.lab import synthetic

    if args.synthetic is not None:
        ev = synthetic.event_windows(1, args.synthetic, window_samples=int(args.seconds * 100), fs=100.0)
        return Record(ev["waveforms"][0], 100.0, args.start_ns, _ref(ev["p_idx"][0], ev["s_idx"][0]),
                      "synthetic event window (seed %d, M%.1f, %.0f km)"
                      % (args.synthetic, ev["magnitude"][0], ev["distance_km"][0]))
    if args.ncedc is not None:
        from fieldpick.train.data.datasets import load_ncedc

        ws = load_ncedc(args.data_dir or None)
        if not 0 <= args.ncedc < len(ws):
            raise ConfigError("--ncedc %d; allowed: 0 .. %d" % (args.ncedc, len(ws) - 1))
        i = args.ncedc
        return Record(ws.waveforms[i], ws.fs, args.start_ns, _ref(ws.p_idx[i], ws.s_idx[i]),
                      "NCEDC window %d (%s, %s)" % (i, ws.station[i], ws.meta["trace_name"][i]))
    if args.stream is not None:
        data, truth = synthetic.continuous(args.stream, args.seed, fs=100.0, start_ns=args.start_ns,
                                           event_rate_per_hour=args.event_rate)
        ref = {ph: list(truth["sample"][truth["phase"] == ph].astype(float)) for ph in ("P", "S")}
        return Record(data, 100.0, args.start_ns, ref,
                      "synthetic stream (seed %d, %d arrivals)" % (args.seed, len(truth)))
    return _read_mseed(args.mseed, args.channel_prefix)


def _read_mseed(paths, prefix):
    """miniSEED files through ``fieldpick.edge.sources`` -> one (3, N) record of one station, gaps as zeros."""
    from fieldpick.edge.sources import open_source

    pieces = {}
    fs = None
    for path in paths:
        with open_source(path) as src:
            for rec in src:
                if prefix and not rec.channel.startswith(prefix):
                    continue
                comp = rec.channel[-1:].upper()
                row = {"Z": 0, "N": 1, "1": 1, "E": 2, "2": 2}.get(comp)
                if row is None:
                    continue
                if fs is not None and rec.sampling_rate != fs:
                    raise DataError("%s: %s at %g Hz; earlier records are %g Hz (use --channel-prefix)"
                                    % (path, rec.seed_id, rec.sampling_rate, fs))
                fs = rec.sampling_rate
                pieces.setdefault(row, []).append((rec.start_ns, np.asarray(rec.samples, np.float64), rec.seed_id))
    if not pieces:
        raise DataError("no Z/N/E (or Z/1/2) records in %s%s" % (", ".join(paths),
                                                                  " with channel prefix %r" % prefix if prefix else ""))
    t0 = min(p[0] for v in pieces.values() for p in v)
    t1 = max(p[0] + int(round(len(p[1]) * 1e9 / fs)) for v in pieces.values() for p in v)
    n = int(round((t1 - t0) * fs / 1e9))
    data = np.zeros((3, n), np.float32)
    for row, items in pieces.items():
        for start, samples, _ in items:
            i = int(round((start - t0) * fs / 1e9))
            m = min(len(samples), n - i)
            data[row, i: i + m] = samples[:m] - np.median(samples[:m])  # each record's offset removed
    ident = sorted({p[2] for v in pieces.values() for p in v})[0]
    return Record(data, float(fs), int(t0), {}, "%s (%d file%s)" % (ident[:-1] + "?", len(paths),
                                                                    "s" if len(paths) > 1 else ""))


# ---------------------------------------------------------------- drawing
def _utc(start_ns):
    return _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=start_ns // 1000)


def _figure(nrows, heights, width=10.0, height=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = height or (1.1 * sum(heights) + 0.9)
    fig, axes = plt.subplots(nrows, 1, sharex=True, figsize=(width, height),
                             gridspec_kw={"height_ratios": heights, "hspace": 0.2})
    return plt, fig, np.atleast_1d(axes)


def _time_axis(ax, start_ns, fs, n, utc):
    """x is seconds from the first sample; label it in seconds or in UTC clock time."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xlim(0, n / fs)
    if not utc:
        ax.set_xlabel("Time since window start (s)")
        return
    t0 = _utc(start_ns)
    span = n / fs
    fmt = "%H:%M:%S" if span < 3 * 3600 else "%H:%M"
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: (t0 + _dt.timedelta(seconds=x)).strftime(fmt)))
    ax.set_xlabel("Time (UTC) on %s" % t0.strftime("%Y-%m-%d"))


def _envelope(y, bins):
    """Min/max per bin so a long trace draws as its envelope (x in bin units)."""
    n = len(y)
    if n <= 2 * bins:
        return np.arange(n, dtype=float), y
    edges = np.linspace(0, n, bins + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    x = np.repeat(edges[:-1] + np.diff(edges) / 2.0, 2)
    return x, np.column_stack([lo, hi]).ravel()


def plot_window(path, record: Record, annotation: Optional[Annotation] = None, saliency=None,
                utc=None, dpi=110, title=None, saliency_name="Grad-CAM++"):
    """Write a PNG of ``record``: Z, N, E, probabilities, picks, reference picks, saliency.

    annotation: from :func:`annotate` (None: waveforms and reference only).
    saliency: optional {phase: (N,) array in [0, 1]} drawn as a last panel, named
    ``saliency_name`` in the legend.
    utc: time axis in UTC (default: when the record is longer than 2 minutes).
    Returns ``path``.
    """
    data, fs = record.data, record.fs
    n = data.shape[1]
    utc = (n / fs > 120.0) if utc is None else utc
    heights = [1.0, 1.0, 1.0] + ([1.3] if annotation is not None else []) + ([1.3] if saliency else [])
    plt, fig, axes = _figure(len(heights), heights)
    t = np.arange(n) / fs
    bins = 3000
    for row, (ax, comp) in enumerate(zip(axes, COMPONENTS)):
        y = data[row].astype(np.float64)
        y = y - np.median(y)
        x, yy = _envelope(y, bins)
        ax.plot(x / fs if len(x) != n else t, yy, color="0.2", lw=0.5)
        peak = np.abs(y).max()
        ax.set_ylim(-1.1 * peak if peak else -1, 1.1 * peak if peak else 1)
        ax.set_ylabel("%s (counts)" % comp)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.yaxis.get_offset_text().set_fontsize(7)
        ax.tick_params(labelsize=8)
    wave_axes = list(axes[:3])
    handles = {}
    for phase, samples in record.reference.items():
        for s in samples:
            for ax in wave_axes:
                h = ax.axvline(s / fs, color=COLOURS[phase], ls="--", lw=1.0, alpha=0.9)
            handles["reference %s" % phase] = h
    k = 3
    if annotation is not None:
        _probability_panel(axes[k], wave_axes, annotation, fs, bins, handles)
        k += 1
    if saliency:
        _saliency_panel(axes[k], saliency, saliency_name, fs, n, t, bins, handles)
    _time_axis(axes[-1], record.start_ns, fs, n, utc)
    order = sorted(handles, key=lambda s: (s.split()[0] != "pick", s.startswith("reference"), s))
    if order:  # a record without a model or reference picks has nothing to name
        fig.legend([handles[h] for h in order], order, loc="upper center", ncol=min(len(order), 5), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 0.995))
    head = title or record.title
    if annotation is not None:
        head += " \u2014 model %s, %d picks" % (annotation.name or "?", len(annotation.picks))
    figh = fig.get_figheight()  # inches: legend (up to 2 rows), title, then the "1e3" offset text
    fig.suptitle(head, fontsize=10, y=1.0 - 0.5 / figh)
    fig.subplots_adjust(top=1.0 - 0.95 / figh, bottom=0.6 / figh, left=0.09, right=0.98)
    fig.align_ylabels(axes)
    _save(fig, path, dpi)
    plt.close(fig)
    return path


def _probability_panel(ax, wave_axes, annotation, fs, bins, handles):
    """The model's probabilities, thresholds and picks (picks also on the waveform panels)."""
    for lab in annotation.labels:
        if lab == "N":
            continue
        pos, val = annotation.trace(lab)
        x, yy = _envelope(val, bins)
        xs = np.interp(x, np.arange(len(pos)), pos) / fs if len(x) != len(pos) else pos / fs
        style = dict(color=COLOURS.get(lab, "0.5"), lw=1.0)
        if lab == "D":
            style.update(ls=":", lw=0.8)
        h, = ax.plot(xs, yy, **style)
        handles["%s probability" % ("detection" if lab == "D" else lab)] = h
    for phase, thr in sorted(annotation.thresholds.items()):
        if phase in annotation.labels:
            handles["%s threshold" % phase] = ax.axhline(thr, color=COLOURS[phase], lw=0.8, ls=(0, (1, 2)))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Probability")
    ax.tick_params(labelsize=8)
    few = len(annotation.picks) <= 12
    for phase, pos, prob, sigma in annotation.picks:
        for a in wave_axes + [ax]:
            h = a.axvline(pos / fs, color=COLOURS[phase], lw=1.3)
            if few and sigma > 0:
                a.axvspan((pos - sigma) / fs, (pos + sigma) / fs, color=COLOURS[phase], alpha=0.15, lw=0)
        handles["pick %s" % phase] = h
        if few:
            # P labels left of their line and high, S labels right and lower: they never overlap
            left = phase == "P"
            ax.annotate("%s %.2f \u00b1%.2f s" % (phase, prob, sigma / fs), (pos / fs, 0.98 if left else 0.8),
                        xytext=(-4 if left else 4, 0), textcoords="offset points", va="top",
                        ha="right" if left else "left", fontsize=7, color=COLOURS[phase],
                        bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))


def _saliency_panel(ax, saliency, saliency_name, fs, n, t, bins, handles):
    """Each phase's saliency, filled."""
    for phase, sal in saliency.items():
        x, yy = _envelope(np.asarray(sal, float), bins)
        xs = x / fs if len(x) != n else t
        h = ax.fill_between(xs, 0, yy, color=COLOURS[phase], alpha=0.35, lw=0)  # a filled key in the legend
        ax.plot(xs, yy, color=COLOURS[phase], lw=0.8)
        handles["%s of %s" % (saliency_name, phase)] = h
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Saliency\n(norm.)")
    ax.tick_params(labelsize=8)


def plot_overview(path, record: Record, annotation: Optional[Annotation] = None, row_minutes=30.0,
                  dpi=100, title=None):
    """Write a helicorder-style PNG: the Z component in rows of ``row_minutes``, picks as ticks.

    Rows are scaled together (clip at 8 x the median row's 99th percentile, so
    a big event does not flatten the page); P picks are blue, S red,
    reference arrivals drawn as open triangles above the trace.  Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if row_minutes <= 0:
        raise ConfigError("row_minutes %r; it must be > 0 minutes" % (row_minutes,))
    fs = record.fs
    z = record.data[0].astype(np.float64)
    z = z - np.median(z)
    row_n = int(round(row_minutes * 60 * fs))
    rows = max(1, int(math.ceil(len(z) / row_n)))
    level = np.median([np.percentile(np.abs(z[i * row_n:(i + 1) * row_n]), 99) for i in range(rows)])
    scale = 0.45 / (8.0 * level) if level > 0 else 1.0
    height = max(3.0, 0.22 * rows + 1.5)
    fig, ax = plt.subplots(figsize=(10.0, height))
    bins = 1500
    for i in range(rows):
        seg = np.clip(z[i * row_n:(i + 1) * row_n] * scale, -0.48, 0.48)
        x, yy = _envelope(seg, bins)
        ax.plot(x / fs / 60.0, -i + yy, color="0.15" if i % 2 == 0 else "0.4", lw=0.4)
    handles = {}
    for phase, samples in record.reference.items():
        s = np.asarray(samples, float)
        if len(s):
            r, x = np.divmod(s, row_n)
            handles["reference %s" % phase] = ax.scatter(x / fs / 60.0, -r + 0.42, marker="v", s=14,
                                                         facecolors="none", edgecolors=COLOURS[phase], lw=0.7)
    if annotation is not None:
        for phase in ("P", "S"):
            s = np.array([p[1] for p in annotation.picks if p[0] == phase])
            if len(s):
                r, x = np.divmod(s, row_n)
                handles["pick %s" % phase] = ax.vlines(x / fs / 60.0, -r - 0.45, -r + 0.3, color=COLOURS[phase], lw=1.2)
    t0 = _utc(record.start_ns)
    ax.set_yticks(-np.arange(rows))
    ax.set_yticklabels([(t0 + _dt.timedelta(minutes=row_minutes * i)).strftime("%H:%M") for i in range(rows)],
                       fontsize=7)
    ax.set_ylim(-rows + 0.4, 0.7)
    ax.set_xlim(0, row_minutes)
    ax.set_xlabel("Minutes after the row's start")
    ax.set_ylabel("Row start (UTC, %s)" % t0.strftime("%Y-%m-%d"))
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.85", lw=0.5)
    head = title or record.title
    if annotation is not None:
        n_p = sum(1 for p in annotation.picks if p[0] == "P")
        head += " \u2014 model %s: %d P, %d S picks" % (annotation.name or "?", n_p, len(annotation.picks) - n_p)
    ax.set_title(head + "\nZ component, clipped at 8\u00d7 the typical 99th percentile", fontsize=9)
    bottom = 0.0
    if handles:
        bottom = 0.3 / height  # a strip under the x label for the legend
        fig.legend(list(handles.values()), list(handles), loc="lower center", bbox_to_anchor=(0.5, 0.0),
                   ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save(fig, path, dpi)
    plt.close(fig)
    return path


def _save(fig, path, dpi):
    """Save as PNG atomically (write, then rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    os.replace(tmp, path)


# ---------------------------------------------------------------- command line
def add_record_arguments(p):
    """The record options ``plot`` and ``explain`` share."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", type=int, metavar="SEED", help="one synthetic event window (fieldpick.lab.synthetic)")
    src.add_argument("--ncedc", type=int, metavar="INDEX", help="one of the labeled NCEDC windows (0-153)")
    src.add_argument("--stream", type=float, metavar="SECONDS", help="a synthetic continuous stream this long")
    src.add_argument("--mseed", nargs="+", metavar="FILE", help="miniSEED file(s) of one station (read by fieldpick.edge.sources)")
    p.add_argument("--seconds", type=float, default=30.72, help="length of a --synthetic window, s (default 30.72)")
    p.add_argument("--seed", type=int, default=0, help="seed of --stream (default 0)")
    p.add_argument("--event-rate", type=float, default=20.0, help="events per hour in --stream (default 20)")
    p.add_argument("--start", default="2023-11-14T22:13:20Z",
                   help="UTC time of the first sample of synthetic records (ISO 8601)")
    p.add_argument("--data-dir", default=None, help="folder of the NCEDC npz files (default: the shared data)")
    p.add_argument("--channel-prefix", default="", help="only miniSEED channels starting with this (e.g. HH)")


def start_ns_from(args):
    from fieldpick.edge.sources import parse_time_ns

    try:
        value = parse_time_ns(args.start)
    except FieldpickError as exc:
        raise ConfigError("--start %r: %s" % (args.start, exc)) from None
    if value is None:
        raise ConfigError("--start %r; expected an ISO 8601 UTC time such as 2023-11-14T22:13:20Z" % (args.start,))
    return value


def main(argv) -> int:
    """``fieldpick plot``: a PNG of a window or stream with the model's probabilities and picks."""
    p = argparse.ArgumentParser(
        prog="fieldpick plot", allow_abbrev=False,
        description="Plot a window or a stretch of stream: Z/N/E, the model's probabilities, its picks "
                    "(phase, probability, uncertainty) and the reference picks; a day becomes a "
                    "helicorder-style overview.")
    add_record_arguments(p)
    p.add_argument("--model", metavar="CHECKPOINT", help="a zoo checkpoint (.pt); without it only waveforms are drawn")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the picture")
    p.add_argument("--overview", choices=("auto", "on", "off"), default="auto",
                   help="helicorder page: on, off, or auto (records longer than %d s)" % OVERVIEW_AUTO_S)
    p.add_argument("--row-minutes", type=float, default=30.0, help="minutes per helicorder row (default 30)")
    p.add_argument("--threshold", action="append", default=[], metavar="PHASE=P",
                   help="override the card's pick threshold, e.g. P=0.5 (repeatable)")
    p.add_argument("--dpi", type=int, default=110)
    args = p.parse_args(argv)
    args.start_ns = start_ns_from(args)
    thresholds = parse_thresholds(args.threshold)
    record = load_record(args)
    annotation = None
    if args.model:
        model, card = load_model(args.model)
        if abs(card.input.sampling_rate_hz - record.fs) > 1e-6:
            raise DataError("record is %g Hz but model %s expects %g Hz" % (record.fs, args.model, card.input.sampling_rate_hz))
        annotation = annotate(model, card, record.data, thresholds=thresholds)
    seconds = record.data.shape[1] / record.fs
    overview = args.overview == "on" or (args.overview == "auto" and seconds > OVERVIEW_AUTO_S)
    if overview:
        plot_overview(args.out, record, annotation, args.row_minutes, dpi=args.dpi)
    else:
        plot_window(args.out, record, annotation, dpi=args.dpi)
    picks = annotation.picks if annotation else []
    sys.stdout.write("wrote %s (%s, %.1f s, %d picks)\n" % (args.out, "overview" if overview else "window",
                                                           seconds, len(picks)))
    for phase, pos, prob, sigma in picks[:50]:
        t = record.start_ns + int(round(pos * 1e9 / record.fs))
        sys.stdout.write("%s %s p=%.2f \u00b1%.2f s\n" % (_utc(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z",
                                                         phase, prob, sigma / record.fs))
    if len(picks) > 50:
        sys.stdout.write("... %d more picks\n" % (len(picks) - 50))
    return 0


def parse_thresholds(items):
    out = {}
    for item in items:
        phase, _, value = item.partition("=")
        if phase not in ("P", "S"):
            raise ConfigError("--threshold %r: phase %r; allowed: P, S (as P=0.5)" % (item, phase))
        try:
            v = float(value)
        except ValueError:
            raise ConfigError("--threshold %r: %r is not a number; expected e.g. P=0.5" % (item, value)) from None
        if not 0.0 < v < 1.0:
            raise ConfigError("--threshold %r: %g; allowed: a probability in (0, 1)" % (item, v))
        out[phase] = v
    return out
