"""Decode speed of the numpy miniSEED reader against ObsPy (libmseed, C) on the same file.

A station-day of Steim-2 (3 channels at 100 Hz, 4096-byte records, seeded
band-limited noise written by ObsPy) is decoded by both readers, interleaved
``--repeat`` times; the best of each is reported, with the ratio ours / ObsPy
(lower is better, the goal is <= 3) and the median of the paired ratios.
From the file, ObsPy's ``read(path)`` is also timed next to the header-only
scan and ``records_in_time_order`` (scan + one decode per channel, what
``fieldpick run`` and ``replay`` use).
Results go to benchmarks/results/mseed.json and .md.

    .venv/bin/python benchmarks/mseed.py [--hours 24] [--repeat 3] [--reclen 4096]
"""

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def make_day(path, hours, reclen, seed=20261122):
    import obspy

    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * 100)
    traces = []
    for cha in ("HHZ", "HHN", "HHE"):
        # microseism-like noise: a random walk with a leak, a few hundred counts
        x = np.cumsum(rng.normal(0, 40, n))
        x -= np.convolve(x, np.ones(501) / 501, mode="same")
        tr = obspy.Trace(x.astype(np.int32))
        tr.stats.update(dict(network="XX", station="DAY", location="00", channel=cha, sampling_rate=100.0,
                        starttime=obspy.UTCDateTime(2026, 11, 22)))
        traces.append(tr)
    obspy.Stream(traces).write(path, format="MSEED", encoding="STEIM2", reclen=reclen, byteorder=">")
    return n * 3


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/mseed.py", allow_abbrev=False)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--reclen", type=int, default=4096)
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    a = p.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    import obspy

    from fieldpick.edge.sources.mseed import MseedDecoder, MseedFileSource, read_records
    from fieldpick.edge.station import records_in_time_order

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "day.mseed")
        nsamp = make_day(path, a.hours, a.reclen)
        with open(path, "rb") as fh:
            data = fh.read()

        def from_file():
            with MseedFileSource(path) as src:
                return list(src)

        def scan():  # headers only, 1 MiB reads, as `run` plans a file
            dec = MseedDecoder(headers_only=True)
            n = 0
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    n += len(dec.feed(chunk))
            return n + len(dec.flush())

        def planned():  # what `fieldpick run` / replay read: scan, then each channel decoded once
            return sum(len(r.samples) for r in records_in_time_order([path]))

        # interleaved runs: a load spike on this shared machine hits both readers alike
        runs = {k: [] for k in ("obspy", "fieldpick", "fieldpick_file", "obspy_file", "scan", "planned")}
        load_before = os.getloadavg()[0]
        for _ in range(a.repeat):
            t, st = best_of(lambda: obspy.read(io.BytesIO(data), format="MSEED"), 1)
            runs["obspy"].append(t)
            t, recs = best_of(lambda: read_records(data), 1)
            runs["fieldpick"].append(t)
            t, recs_f = best_of(from_file, 1)
            runs["fieldpick_file"].append(t)
            t, _ = best_of(lambda: obspy.read(path, format="MSEED"), 1)
            runs["obspy_file"].append(t)
            t, n_scan = best_of(scan, 1)
            runs["scan"].append(t)
            t, n_planned = best_of(planned, 1)
            runs["planned"].append(t)
        load_after = os.getloadavg()[0]
    t_obspy, t_ours, t_file = (min(runs[k]) for k in ("obspy", "fieldpick", "fieldpick_file"))
    t_obspy_file, t_scan, t_planned = (min(runs[k]) for k in ("obspy_file", "scan", "planned"))
    assert n_scan == len(recs) and n_planned == nsamp
    paired = sorted(o / b for o, b in zip(runs["fieldpick"], runs["obspy"]))
    # same samples, channel by channel
    for tr in st:
        ours = np.concatenate([r.samples for r in recs if r.channel == tr.stats.channel])
        assert np.array_equal(ours, tr.data), tr.id
    assert sum(len(r.samples) for r in recs_f) == nsamp
    res = {
        "what": "decode a station-day of Steim-2 (3 x 100 Hz, %d-byte records)" % a.reclen,
        "hours": a.hours, "samples": nsamp, "bytes": len(data), "records": len(recs),
        "obspy_s": round(t_obspy, 4), "fieldpick_s": round(t_ours, 4), "fieldpick_file_s": round(t_file, 4),
        "ratio_fieldpick_over_obspy": round(t_ours / t_obspy, 2),
        "ratio_file_over_obspy": round(t_file / t_obspy, 2),
        "obspy_file_s": round(t_obspy_file, 4), "scan_s": round(t_scan, 4), "planned_s": round(t_planned, 4),
        "ratio_scan_over_obspy_file": round(t_scan / t_obspy_file, 2),
        "ratio_planned_over_obspy_file": round(t_planned / t_obspy_file, 2),
        "paired_ratio_median": round(paired[len(paired) // 2], 2),
        "paired_ratio_range": [round(paired[0], 2), round(paired[-1], 2)],
        "msamples_per_s_fieldpick": round(nsamp / t_ours / 1e6, 1),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)], "cpus": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__, "obspy": obspy.__version__,
        "machine": platform.machine(), "repeat": a.repeat,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "mseed.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    md = ["# miniSEED decode speed", "", res["what"] + ".", "",
          "| reader | seconds (best of %d) | ratio to ObsPy |" % a.repeat, "|---|---|---|",
          "| ObsPy %s (libmseed, C), from memory | %.3f | 1.00 |" % (obspy.__version__, t_obspy),
          "| fieldpick numpy `read_records`, from memory | %.3f | %.2f |" % (t_ours, t_ours / t_obspy),
          "| fieldpick numpy `MseedFileSource`, from the file | %.3f | %.2f |" % (t_file, t_file / t_obspy),
          "", "From the file, as `fieldpick run` and `replay` read it (ratios to ObsPy `read(path)`):", "",
          "| reader | seconds (best of %d) | ratio to ObsPy from the file |" % a.repeat, "|---|---|---|",
          "| ObsPy `read(path)` | %.3f | 1.00 |" % t_obspy_file,
          "| fieldpick header-only scan (`MseedDecoder(headers_only=True)`, 1 MiB reads) | %.3f | %.2f |"
          % (t_scan, t_scan / t_obspy_file),
          "| fieldpick `records_in_time_order` (the scan, then each channel's byte runs decoded once) | %.3f | %.2f |"
          % (t_planned, t_planned / t_obspy_file),
          "",
          "Paired runs (ours / ObsPy, same iteration): median %.2f, range %.2f-%.2f."
          % (res["paired_ratio_median"], paired[0], paired[-1]),
          "%d samples, %d records, %.1f MB; numpy %s, Python %s, %s, %d CPUs, 1-min load %.1f -> %.1f "
          "(a shared machine: compare ratios, not seconds)."
          % (nsamp, len(recs), len(data) / 1e6, np.__version__, platform.python_version(),
             platform.machine(), os.cpu_count() or 0, load_before, load_after)]
    with open(os.path.join(a.out, "mseed.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
