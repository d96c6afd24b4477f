"""Telemetry: bytes per pick, picks per packet per link profile, and a day-long outage.

1. Per MTU profile: picks per packet, bytes per pick with the header and tag
   shared (full packets), and Iridium credits (50-byte units) per pick.  The
   peers, measured on the same picks in the same run: one Earthworm
   TYPE_PICK_SCNL line per pick, and CSV rows compressed with zlib level 9
   (no authentication) in batches of the same size; ratios are ours / peer.
2. A day-long outage: a station picks 1,000 phases over 24 h (simulated
   clock) while the link is dead (a UDP relay in blackout), then the link
   comes back.  Reported: picks received (each exactly once), packets and
   bytes sent, the simulated and wall time to drain the backlog, journal
   bytes on disk.  Optionally the same with 30 % loss on the recovered link.

    .venv/bin/python benchmarks/telemetry.py [--picks 1000] [--profile iridium] [--loss 0.3]

Results go to benchmarks/results/telemetry.json and .md.
"""

import argparse
import csv
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

from fieldpick.edge.picks import Pick  # noqa: E402
from fieldpick.edge.telemetry import packet as pk  # noqa: E402
from fieldpick.edge.telemetry.endpoint import UdpEndpoint  # noqa: E402
from fieldpick.edge.telemetry.link import UdpLink  # noqa: E402
from fieldpick.edge.telemetry.lossy import LossyRelay  # noqa: E402
from fieldpick.edge.telemetry.receive import EarthwormWriter, Receiver, serve  # noqa: E402
from fieldpick.edge.telemetry.uplink import Uplink  # noqa: E402

CODE = "XX.DAY.00.HHZ"
T0 = 1_795_305_600 * 10**9  # 2026-11-22T00:00:00Z


def day_picks(n, seed=20261122):
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + int((i + rng.random()) * 86400e9 / n)
        out.append(Pick(t, rng.choice("PS"), round(rng.uniform(0.3, 1.0), 3), round(rng.uniform(0.01, 0.4), 3),
                        round(rng.lognormvariate(6, 2), 1), round(rng.uniform(0, 40), 1), rng.choice("UD?"), CODE))
    return out


def profile_table(picks, entry):
    rows = []
    for name, mtu in pk.PROFILES.items():
        # the first packet the uplink would send: full, or shorter when the picks are sparse
        # enough to span more than a packet's 4 h 39 min of time offsets
        batch = pk.group_picks(picks, name)[0]
        n = len(batch)
        data = pk.encode_picks(batch, entry, 1, name)
        ew = EarthwormWriter(os.devnull)
        ew_bytes = sum(len(ew.line(p)) + 1 for p in batch)
        ew._f.close()
        buf = io.StringIO()
        w = csv.writer(buf)
        for p in batch:
            w.writerow([p.station, p.phase, p.time_ns, p.probability, p.uncertainty_s, p.amplitude, p.snr_db,
                        p.polarity])
        z = len(zlib.compress(buf.getvalue().encode(), 9))
        rows.append(dict(
            profile=name, mtu=mtu, picks_per_packet=n, capacity=pk.capacity(name), packet_bytes=len(data),
            bytes_per_pick=round(len(data) / n, 2), record_bytes=pk.RECORD_BYTES,
            credits_per_pick=round(-(-len(data) // 50) / n, 3),
            earthworm_bytes_per_pick=round(ew_bytes / n, 1), zlib_csv_bytes_per_pick=round(z / n, 1),
            ratio_vs_earthworm=round(len(data) / ew_bytes, 3), ratio_vs_zlib_csv=round(len(data) / z, 3),
        ))
    return rows


class Collect(object):
    def __init__(self):
        self.times = []

    def write(self, entry, seq, picks):
        self.times.extend(p.time_ns for p in picks)

    def flush(self):
        pass

    def close(self):
        pass


def outage(picks, table, profile, loss, max_delay_s, workdir):
    entry = table.by_code(CODE)
    ep = UdpEndpoint()
    sink = Collect()
    rx = Receiver(table, [sink])
    stop = threading.Event()
    th = threading.Thread(target=serve, args=(rx, [ep]), kwargs=dict(until=stop.is_set))
    th.start()
    relay = LossyRelay(ep.address, drop=loss, duplicate=loss / 3, corrupt=loss / 3, reorder=loss, seed=7)
    relay.blackout = True
    fake = [0.0]
    up = Uplink(os.path.join(workdir, "journal-%s-%g" % (profile, loss)), entry, UdpLink(*relay.address),
                profile=profile, max_delay_s=max_delay_s, retry_s=60.0, max_retry_s=1800.0, window=8,
                clock=lambda: fake[0])
    # the day: picks arrive at their own times, the link is dead throughout
    for p in picks:
        fake[0] = (p.time_ns - T0) / 1e9
        up.submit([p])
        up.poll(0.0)
    fake[0] = 86400.0
    up.poll(0.0)
    during = dict(relay.counts)
    backlog_packets = len(up.journal.unacked) + (1 if up.journal.pending else 0)
    journal_bytes = up.journal.disk_bytes()
    # reconnection: time runs on, 5 simulated seconds per poll of 10 ms
    relay.blackout = False
    sent_before = up.stats["sent"] + up.stats["resent"]
    in_before = relay.counts["in"]
    t_wall = time.perf_counter()
    t_sim = fake[0]
    while up.backlog and fake[0] - t_sim < 6 * 3600:
        fake[0] += 5.0
        up.poll(0.01)
    wall = time.perf_counter() - t_wall
    sim = fake[0] - t_sim
    time.sleep(0.3)
    stop.set()
    th.join(5)
    up.close()
    relay.close()
    ep.close()
    got = sorted(sink.times)
    want = sorted((p.time_ns + 500000) // 1000000 * 1000000 for p in picks)  # sent at 1 ms resolution
    return dict(
        profile=profile, loss_after_reconnect=loss, picks=len(picks), max_delay_s=max_delay_s,
        backlog_packets_at_reconnect=backlog_packets, journal_bytes=journal_bytes,
        sends_tried_during_outage=during["in"],
        transmissions_to_recover=up.stats["sent"] + up.stats["resent"] - sent_before,
        datagrams_into_link_to_recover=relay.counts["in"] - in_before,
        recovered_all=got == want, received_picks=len(got), duplicates_written=len(got) - len(set(got)),
        replays_rejected=rx.counts["replayed"], corrupt_rejected=rx.counts["forged"] + rx.counts["truncated"],
        simulated_s_to_recover=sim, wall_s_to_recover=round(wall, 2),
    )


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/telemetry.py", allow_abbrev=False)
    p.add_argument("--picks", type=int, default=1000, help="picks in the day (default 1000)")
    p.add_argument("--profile", default="iridium", choices=sorted(pk.PROFILES))
    p.add_argument("--max-delay", type=float, default=600.0, help="seconds a pick may wait to fill a packet")
    p.add_argument("--loss", type=float, default=0.3, help="loss on the recovered link for the second run")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    a = p.parse_args(argv)
    table = pk.StationTable([pk.StationEntry(1, CODE, b"benchmark-key-0123456789abcdef")])
    picks = day_picks(a.picks)
    rows = profile_table(picks, table.by_code(CODE))
    print("%-10s %5s %6s %7s %9s %8s %9s %9s" % ("profile", "MTU", "picks", "B/pick", "credits", "EW B/pk",
                                                 "zlib B/pk", "ours/EW"))
    for r in rows:
        print("%-10s %5d %6d %7.2f %9.3f %8.1f %9.1f %9.3f" % (
            r["profile"], r["mtu"], r["picks_per_packet"], r["bytes_per_pick"], r["credits_per_pick"],
            r["earthworm_bytes_per_pick"], r["zlib_csv_bytes_per_pick"], r["ratio_vs_earthworm"]))
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for loss in (0.0, a.loss):
            r = outage(picks, table, a.profile, loss, a.max_delay, work)
            runs.append(r)
            print("outage %s, loss %.0f %% after reconnect: %d/%d picks, all once: %s; backlog %d packets "
                  "(%d journal bytes); %d transmissions, %.0f simulated s, %.2f wall s to recover" % (
                      r["profile"], 100 * loss, r["received_picks"], r["picks"],
                      r["recovered_all"] and r["duplicates_written"] == 0, r["backlog_packets_at_reconnect"],
                      r["journal_bytes"], r["transmissions_to_recover"], r["simulated_s_to_recover"],
                      r["wall_s_to_recover"]))
    result = dict(
        benchmark="telemetry", python=sys.version.split()[0], machine=platform.machine(),
        command="benchmarks/telemetry.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        profiles=rows, outage=runs,
        targets=dict(iridium_bytes_per_pick_max=10, outage_recovered_in_full=True),
        met=dict(
            iridium_bytes_per_pick=[r for r in rows if r["profile"] == "iridium"][0]["bytes_per_pick"] <= 10,
            outage=all(r["recovered_all"] and r["duplicates_written"] == 0 for r in runs),
        ),
    )
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "telemetry.json"), "w") as f:
        json.dump(result, f, indent=1)
    md = ["# Telemetry benchmark", "", "`%s` (Python %s, %s)" % (result["command"], result["python"],
                                                                  result["machine"]), "",
          "| profile | MTU | picks/packet | bytes/pick | 50-byte credits/pick | Earthworm line B/pick | "
          "zlib CSV B/pick | ours/Earthworm | ours/zlib CSV |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %s | %d | %d | %.2f | %.3f | %.1f | %.1f | %.3f | %.3f |" % (
            r["profile"], r["mtu"], r["picks_per_packet"], r["bytes_per_pick"], r["credits_per_pick"],
            r["earthworm_bytes_per_pick"], r["zlib_csv_bytes_per_pick"], r["ratio_vs_earthworm"],
            r["ratio_vs_zlib_csv"]))
    md += ["", "| outage (24 h, %d picks) | loss after reconnect | backlog packets | journal bytes | received | "
           "all exactly once | transmissions | simulated s | wall s |" % a.picks, "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        md.append("| %s | %.0f %% | %d | %d | %d | %s | %d | %.0f | %.2f |" % (
            r["profile"], 100 * r["loss_after_reconnect"], r["backlog_packets_at_reconnect"], r["journal_bytes"],
            r["received_picks"], r["recovered_all"] and r["duplicates_written"] == 0, r["transmissions_to_recover"],
            r["simulated_s_to_recover"], r["wall_s_to_recover"]))
    md += ["", "Targets: Iridium bytes/pick <= 10 (met: %s); day-long outage recovered in full (met: %s)." % (
        result["met"]["iridium_bytes_per_pick"], result["met"]["outage"])]
    with open(os.path.join(a.out, "telemetry.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("wrote %s/telemetry.json and .md" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
