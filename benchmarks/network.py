"""The network side measured: uncertainty calibration, a synthetic network, store throughput, Ridgecrest.

Stages (``python benchmarks/network.py STAGE``; ``all`` runs them in order):

calibrate   the shipped default model through the station pipeline (gated, numpy
            runtime) on labelled NCEDC windows it never trained on
            ($FIELDPICK_DATA/labeled: easyQuake test set P and S, DeepDenoiser P);
            residual = pick - analyst pick for picks within 0.5 s; fits the
            per-phase calibration (network/calibration/fieldpick-default.json),
            plots reported and calibrated sigma against the measured scatter.
synthetic   >= 20 stations, 100 events with known hypocentres, picks perturbed by
            the measured residuals, 10 % missed, 10 % false picks; associate and
            locate; events found, false events, epicentre and depth errors.
throughput  picks/s sustained into SQLite and PostgreSQL through ``fieldpick receive``
            over loopback UDP, every packet sent twice, with and without group
            commit; exactly-once checked.
ridgecrest  the default over the Ridgecrest hour (fieldpick replay), stored,
            associated and located with benchmarks/ridgecrest_stations.csv; the
            M6.4 located against the catalogue; a map.

Writes benchmarks/results/network.md and network.json (each stage its section).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.environ.get("FIELDPICK_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
RESULTS = os.path.join(HERE, "results")
JSON_OUT = os.path.join(RESULTS, "network.json")
T0 = 1_700_000_000 * 10 ** 9
TOL_S = 0.5


def _results():
    if os.path.exists(JSON_OUT):
        with open(JSON_OUT) as f:
            return json.load(f)
    return {}


def _save(stage, value):
    res = _results()
    res[stage] = value
    os.makedirs(RESULTS, exist_ok=True)
    with open(JSON_OUT, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    write_markdown(res)


# ---------------------------------------------------------------- calibrate


def stage_calibrate(args):
    from fieldpick.edge.config import StationConfig
    from fieldpick.edge.station import Station, load_runner
    from fieldpick.network.calibration import fit_phase, robust_spread

    runner = load_runner("default", "numpy")
    sets = [("ncedc_easyquake_testdata.npz", "P S"), ("ncedc_deepdenoiser_train.npz", "P")]
    rows = {"P": [], "S": []}
    for name, phases in sets:
        d = np.load(os.path.join(DATA, "labeled", name))
        X, fs = d["X"].astype(np.float64), float(d["fs"])
        for i in range(len(X)):
            st = Station(runner, StationConfig.from_dict({"mode": "gated"}))
            got = st.feed_array(X[i], T0, fs)
            for ph, idx in (("P", d["p_idx"][i]), ("S", d["s_idx"][i])):
                if ph not in phases or idx < 0:
                    continue
                truth = T0 + int(round(idx / fs * 1e9))
                near = [p for p in got if p.phase == ph and abs(p.time_ns - truth) <= TOL_S * 1e9]
                if near:
                    p = min(near, key=lambda q: abs(q.time_ns - truth))
                    rows[ph].append((p.uncertainty_s, (p.time_ns - truth) / 1e9, name))
    out = {"sets": [s for s, _ in sets], "tolerance_s": TOL_S, "phases": {}}
    table = {"model": "fieldpick-default", "model_sha256": runner.card.sha256, "phases": {},
             "source": "benchmarks/network.py calibrate: the labelled easyQuake and DeepDenoiser NCEDC windows "
                       "(in the training data of a corpus-trained model: then the scatter is in-sample)"}
    for ph, r in rows.items():
        u = np.array([x[0] for x in r])
        res = np.array([x[1] for x in r])
        fit = fit_phase(u, res)
        table["phases"][ph] = {"scale": fit["scale"], "floor_s": fit["floor_s"]}
        cal = np.sqrt((fit["scale"] * u) ** 2 + fit["floor_s"] ** 2)
        out["phases"][ph] = {
            "n": int(u.size), "median_reported_sigma_s": float(np.median(u)),
            "measured_scatter_s": robust_spread(res), "std_s": float(np.std(res)), "bias_s": float(np.median(res)),
            "median_calibrated_sigma_s": float(np.median(cal)),
            "z_spread_reported": robust_spread((res - np.median(res)) / u),
            "z_spread_calibrated": robust_spread((res - np.median(res)) / cal),
            "fit": fit, "residuals_s": [round(float(x), 4) for x in res],
            "reported_s": [round(float(x), 4) for x in u],
        }
    os.makedirs(os.path.join(ROOT, "network", "calibration"), exist_ok=True)
    with open(os.path.join(ROOT, "network", "calibration", "fieldpick-default.json"), "w") as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write("\n")
    _plot_calibration(out, os.path.join(ROOT, "docs", "images", "network_calibration.png"))
    _save("calibrate", out)
    return out


def _plot_calibration(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fieldpick.network.calibration import robust_spread

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, ph in zip(axes, ("P", "S")):
        d = out["phases"][ph]
        u, r = np.array(d["reported_s"]), np.array(d["residuals_s"])
        r = r - np.median(r)
        f = d["fit"]
        cal = np.sqrt((f["scale"] * u) ** 2 + f["floor_s"] ** 2)
        for sig, label, mk in ((u, "reported sigma", "o"), (cal, "calibrated sigma", "s")):
            edges = np.quantile(sig, np.linspace(0, 1, 6))
            xs, ys = [], []
            for a, b in zip(edges[:-1], edges[1:]):
                m = (sig >= a) & (sig <= b)
                if m.sum() >= 5:
                    xs.append(np.median(sig[m]))
                    ys.append(robust_spread(r[m]))
            ax.plot(xs, ys, mk + "-", label=label)
        top = max(np.quantile(u, 0.95), np.quantile(cal, 0.95)) * 1.1
        ax.plot([0, top], [0, top], "k--", lw=0.8, label="sigma = scatter")
        ax.set_xlabel("sigma (median of a quintile), s")
        ax.set_ylabel("measured scatter (1.4826 MAD), s")
        ax.set_title("%s: %d picks, scale %.2f, floor %.3f s" % (ph, d["n"], f["scale"], f["floor_s"]))
        ax.legend(fontsize=8)
    fig.suptitle("fieldpick-default pick uncertainty vs residuals on held-out NCEDC windows")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- synthetic


def stage_synthetic(args):
    from fieldpick.network.associate import Associator
    from fieldpick.network.locate import Locator
    from fieldpick.network.synthetic import make_network, score_events
    from fieldpick.network.velocity import TravelTimes

    cal = _results()["calibrate"]["phases"]
    resid = {ph: cal[ph]["residuals_s"] for ph in ("P", "S")}
    sigma = {ph: cal[ph]["median_calibrated_sigma_s"] for ph in ("P", "S")}
    tt = TravelTimes(max_dist_km=200, max_depth_km=40)
    rows = []
    for seed in (1, 2, 3):
        net = make_network(n_stations=24, n_events=100, size_km=120, span_s=3600, residuals=resid, sigma=sigma,
                           missed=0.1, false=0.1, seed=seed, tt=tt)
        t = time.time()
        events = Associator(Locator(tt, net.sx, net.sy)).run(net.sta, net.is_s, net.t, net.sigma)
        wall = time.time() - t
        found, false, eh, ez = score_events(net, events)
        rows.append({"seed": seed, "picks": int(net.t.size), "false_picks": int((net.truth < 0).sum()),
                     "events": len(events), "found": len(found), "false_events": false,
                     "median_epicentre_km": float(np.median(eh)), "p90_epicentre_km": float(np.quantile(eh, 0.9)),
                     "median_depth_km": float(np.median(ez)), "p90_depth_km": float(np.quantile(ez, 0.9)),
                     "seconds": round(wall, 1)})
    md = ["24 stations scattered over 120 x 120 km, 100 events (epicentres in the central 96 km, depths 2-20 km, "
          "one hour), P and S times from the default layered model plus errors resampled from the measured "
          "residuals of the calibration stage; 10 % of arrivals missed, false picks added (10 % of all picks) "
          "at random times and stations.  `python benchmarks/network.py synthetic`.", "",
          "| seed | picks (false) | events | true events found | false or duplicate events | median / p90 "
          "epicentre error | median / p90 depth error | associate + locate |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %d | %d (%d) | %d | %d %% | %.1f %% | %.2f / %.2f km | %.2f / %.2f km | %.0f s |" % (
            r["seed"], r["picks"], r["false_picks"], r["events"], r["found"], 100.0 * r["false_events"] / r["events"],
            r["median_epicentre_km"], r["p90_epicentre_km"], r["median_depth_km"], r["p90_depth_km"], r["seconds"]))
    _save("synthetic", {"rows": rows, "markdown": md})


# ---------------------------------------------------------------- throughput


WARM = "XX.WARM..HHZ"


def _packets(n_picks, per_packet, n_stations=20):
    """The station table (with a warm-up station, last) and the signed packets in random station order."""
    from fieldpick.edge.picks import Pick
    from fieldpick.edge.telemetry import packet as pk

    codes = ["XX.S%03d..HHZ" % i for i in range(n_stations)]
    table = pk.StationTable([pk.StationEntry(i + 1, c, bytes([i + 1]) * 32) for i, c in enumerate(codes + [WARM])])
    rng = np.random.default_rng(0)
    out, seq = [], {}
    per_station = n_picks // n_stations
    for c in codes:
        t = T0 + np.cumsum(rng.integers(10**8, 10**10, per_station))
        picks = [Pick(int(x), "S" if k % 2 else "P", 0.8, 0.2, 1000.0, 10.0, "?", c) for k, x in enumerate(t)]
        for a in range(0, len(picks), per_packet):
            seq[c] = seq.get(c, 0) + 1
            out.append(pk.encode_picks(picks[a:a + per_packet], table.by_code(c), seq[c]))
    order = np.random.default_rng(1).permutation(len(out))
    return table, [out[i] for i in order]


def _warm_up(addr, table):
    """One packet of the warm-up station until it is acknowledged: the receiver has opened its store."""
    import socket

    from fieldpick.edge.picks import Pick
    from fieldpick.edge.telemetry import packet as pk

    data = pk.encode_picks([Pick(T0, "P", 0.8, 0.2, 1.0, 1.0, "?", WARM)], table.by_code(WARM), 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        for _ in range(600):
            sock.sendto(data, addr)
            try:
                pk.decode_ack(sock.recv(64), table)
                return
            except socket.timeout:
                pass
    raise RuntimeError("the receiver did not answer within 120 s")


def _receiver(stations, url, group):
    """``fieldpick receive`` in its own process on a loopback UDP port; (process, address)."""
    cmd = [sys.executable, "-m", "fieldpick", "receive", "--stations", stations, "--udp", "127.0.0.1:0",
           "--db", url, "--group-ms", str(group[0]), "--group-packets", str(group[1])]
    if group[2]:
        cmd.append("--group-wait")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", os.path.dirname(ROOT))))
    line = proc.stdout.readline()
    if not line.startswith("listening udp"):
        raise RuntimeError("the receiver did not start: %s%s" % (line, proc.stderr.read()))
    return proc, ("127.0.0.1", int(line.rsplit(":", 1)[1]))


def _serve_once(stations, url, group, table, packets, window, copies):
    """One receiver process fed the stream: (seconds, resends, the receiver's summary)."""
    proc, addr = _receiver(stations, url, group)
    try:
        _warm_up(addr, table)
        seconds, resends = _send_all(addr, table, packets, window, copies)
    finally:
        summary = _stop(proc)
    return seconds, resends, summary


def _send_all(addr, table, packets, window, copies):
    """Send every packet ``copies`` times back to back, at most ``window`` unacknowledged, resending
    after 0.5 s; (seconds from the first send to the last ack, resends)."""
    import socket

    from fieldpick.edge.telemetry import packet as pk

    keys = [(p.station_id, p.seq) for p in (pk.decode(d, table) for d in packets)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.settimeout(0.05)
    sent, todo, nxt, resends = {}, set(keys), 0, 0
    t0 = time.perf_counter()
    while todo:
        while nxt < len(packets) and len(sent) < window:
            for _ in range(copies):
                sock.sendto(packets[nxt], addr)
            sent[keys[nxt]] = (nxt, time.perf_counter())
            nxt += 1
        try:
            while True:
                ack = pk.decode_ack(sock.recv(64), table)
                key = (ack.station_id, ack.seq)
                todo.discard(key)
                sent.pop(key, None)
                sock.settimeout(0.0)
        except (BlockingIOError, socket.timeout):
            sock.settimeout(0.05)
        now = time.perf_counter()
        for key, (i, t) in list(sent.items()):
            if now - t > 0.5:
                sock.sendto(packets[i], addr)
                sent[key] = (i, now)
                resends += 1
    elapsed = time.perf_counter() - t0
    sock.close()
    return elapsed, resends


def _stop(proc):
    proc.terminate()
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("the receiver failed (%s): %s" % (proc.returncode, err[-2000:]))
    return out.strip().splitlines()[-1]


def _throughput(url, n_picks, per_packet, group, window):
    """Picks/s into ``url`` through ``fieldpick receive`` over loopback UDP, every packet sent twice;
    then the whole stream again into a restarted receiver (no replay state): the store refuses it."""
    from fieldpick.network.store import open_store

    table, packets = _packets(n_picks, per_packet)
    with tempfile.TemporaryDirectory() as tmp:
        stations = os.path.join(tmp, "stations.json")
        table.save(stations)
        # every packet twice, then the whole stream again to a receiver restarted without its state
        (first, resends, summary), (second, resends2, summary2) = (
            _serve_once(stations, url, group, table, packets, window, copies) for copies in (2, 1))
    with open_store(url) as store:
        stored, n_packets = store.count("picks") - 1, store.count("packets") - 1  # less the warm-up packet
    return {"picks": n_picks, "per_packet": per_packet, "packets": len(packets), "offered": 3 * n_picks,
            "group_ms": group[0], "group_packets": group[1], "group_wait": group[2], "window": window, "stored": stored,
            "stored_packets": n_packets, "exactly_once": stored == n_picks and n_packets == len(packets),
            "picks_per_s": n_picks / first, "replay_picks_per_s": n_picks / second, "resends": resends + resends2,
            "receiver": summary, "receiver_replay": summary2}


def stage_throughput(args):
    from fieldpick.edge.errors import ConfigError
    from fieldpick.edge.telemetry.receive import GROUP_MS, GROUP_PACKETS
    from fieldpick.network.pgserver import TempPostgres

    rows = []
    cases = [(1, (0, 1, False)), (1, (GROUP_MS, GROUP_PACKETS, False)), (1, (GROUP_MS, GROUP_PACKETS, True)),
             (10, (GROUP_MS, GROUP_PACKETS, False))]
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        dsn = os.environ.get("FIELDPICK_TEST_PG")
        backends = ("sqlite", "postgresql")
        if not dsn:
            try:
                server = TempPostgres()
                dsn = server.start()
            except ConfigError as exc:
                print("PostgreSQL rows left out: %s" % exc)
                server, backends = None, ("sqlite",)
        try:
            for k, (per, group) in enumerate(cases):
                for backend in backends:
                    if backend == "sqlite":
                        url = "sqlite:///" + os.path.join(tmp, "t%d.db" % k)
                    else:
                        import psycopg

                        name = "fp_bench_%d" % k
                        with psycopg.connect(dsn, autocommit=True) as c:
                            c.execute("DROP DATABASE IF EXISTS %s" % name)
                            c.execute("CREATE DATABASE %s" % name)
                        url = dsn.rpartition("/")[0] + "/" + name
                    n = args.picks if per > 1 else args.picks // 4
                    r = _throughput(url, n, per, group, args.window)
                    r["backend"] = backend
                    rows.append(r)
                    print(r)
        finally:
            if server is not None:
                server.stop()
    md = ["`fieldpick receive --db` in its own process, fed over loopback UDP by 20 simulated stations "
          "(packets in random station order, at most %d unacknowledged, resent after 0.5 s), every packet sent "
          "twice; then the whole stream again to a restarted receiver without its replay state, so the database "
          "itself must refuse the repeats.  A group commit writes the packets read until none is waiting (at most "
          "--group-packets, at most --group-ms after the first; with --group-wait always the whole --group-ms) "
          "in one transaction and acknowledges them after it (group 0 ms: a transaction per packet).  "
          "SQLite WAL with synchronous=FULL, PostgreSQL with fsync on.  "
          "`python benchmarks/network.py throughput` on this machine (2 cores shared with other work, %s)."
          % (args.window, time.strftime("%Y-%m-%d")), "",
          "| store | picks per packet | group (ms / packets) | picks | offered | stored | exactly once | commits | "
          "picks/s (each packet twice) | picks/s (replayed stream) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append("| %s | %d | %s / %d%s | %d | %d | %d | %s | %s | %.0f | %.0f |" % (
            r["backend"], r["per_packet"], "%g" % r["group_ms"], r["group_packets"],
            " (--group-wait)" if r["group_wait"] else "", r["picks"], r["offered"], r["stored"],
            "yes" if r["exactly_once"] else "NO", r["receiver"].rsplit(";", 1)[-1].split()[0], r["picks_per_s"],
            r["replay_picks_per_s"]))
    _save("throughput", {"rows": rows, "markdown": md})


# ---------------------------------------------------------------- ridgecrest

M64 = {"time": "2019-07-04T17:33:49", "latitude": 35.705, "longitude": -117.504, "depth_km": 10.0}


def _km(lat1, lon1, lat2, lon2):
    from fieldpick.network.locate import KM_PER_DEG

    return float(np.hypot((lat1 - lat2) * KM_PER_DEG, (lon1 - lon2) * KM_PER_DEG * np.cos(np.radians(lat1))))


def stage_ridgecrest(args):
    import glob

    from fieldpick.network.associate import AssociatorConfig
    from fieldpick.network.cli import parse_time
    from fieldpick.network.events import associate_store, load_events
    from fieldpick.network.ingest import model_identity, read_pick_lines
    from fieldpick.network.stations import import_stations, read_station_csv
    from fieldpick.network.store import open_store

    files = sorted(glob.glob(os.path.join(DATA, "continuous", "sds", "2019", "*", "*", "*", "*.2019.185")))
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = os.path.join(tmp, "picks.jsonl")
        t = time.time()
        with open(jsonl, "w") as f:
            subprocess.run([sys.executable, "-m", "fieldpick", "replay", "--model", "default", "--format", "jsonl"]
                           + files, stdout=f, check=True, env=dict(os.environ, PYTHONPATH=os.environ.get(
                               "PYTHONPATH", os.path.dirname(ROOT))))
        replay_s = time.time() - t
        store = open_store(os.path.join(tmp, "ridgecrest.db"))
        stations = read_station_csv(os.path.join(HERE, "ridgecrest_stations.csv"))
        import_stations(store, stations)
        picks = read_pick_lines(jsonl)
        store.insert_picks(picks, model=model_identity("default"))
        t = time.time()
        associate_store(store)
        assoc_s = time.time() - t
        events = load_events(store)
        located = {r["code"] for r in stations}
        near = [p for p in store.picks(since_ns=parse_time("2019-07-04T17:33:45"),
                                       until_ns=parse_time("2019-07-04T17:34:15"))]
        m64 = _match_m64(events)
        relaxed = None
        if m64 is None:  # the default's few picks of the mainshock: try the smallest well-posed event
            cfg = AssociatorConfig(min_picks=4, min_p=3, min_stations=3)
            associate_store(store, parse_time("2019-07-04T17:33:40"), parse_time("2019-07-04T17:34:30"), config=cfg)
            relaxed = _match_m64(load_events(store, parse_time("2019-07-04T17:33:40"),
                                             parse_time("2019-07-04T17:34:30")))
        _plot_map(events, stations, relaxed or m64, os.path.join(ROOT, "docs", "images", "network_ridgecrest_map.png"))
        store.close()
    n_on_located = sum(1 for p in picks if ".".join(p.station.split(".")[:3]) in located)
    out = {"picks": len(picks), "picks_on_located_stations": n_on_located, "stations_located": len(located),
           "events": len(events), "replay_s": round(replay_s, 1), "associate_s": round(assoc_s, 1),
           "m64_default": m64, "m64_relaxed": relaxed,
           "m64_picks": [{"station": p["station"], "channel": p["channel"], "phase": p["phase"],
                          "time_ns": p["time_ns"], "located": p["station"] in located} for p in near],
           "median_rms_s": float(np.median([e["rms_s"] for e in events])) if events else None,
           "median_stations": float(np.median([e["n_stations"] for e in events])) if events else None}
    out["markdown"] = _ridgecrest_md(out)
    _save("ridgecrest", out)


def _match_m64(events):
    from fieldpick.network.cli import parse_time

    t = parse_time(M64["time"])
    best = [e for e in events if abs(e["time_ns"] - t) <= 10 * 10**9]
    if not best:
        return None
    e = min(best, key=lambda e: abs(e["time_ns"] - t))
    return {"time_ns": e["time_ns"], "latitude": e["latitude"], "longitude": e["longitude"], "depth_km": e["depth_km"],
            "epicentre_error_km": _km(e["latitude"], e["longitude"], M64["latitude"], M64["longitude"]),
            "origin_time_error_s": (e["time_ns"] - t) / 1e9, "n_p": e["n_p"], "n_s": e["n_s"],
            "n_stations": e["n_stations"], "lat_err_km": e["lat_err_km"], "lon_err_km": e["lon_err_km"],
            "depth_err_km": e["depth_err_km"]}


def _plot_map(events, stations, m64, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7))
    ax.plot([s["longitude"] for s in stations], [s["latitude"] for s in stations], "k^", ms=8, label="station")
    for s in stations:
        ax.annotate(s["code"].split(".")[1], (s["longitude"], s["latitude"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    if events:
        ax.scatter([e["longitude"] for e in events], [e["latitude"] for e in events],
                   s=[8 * (e["n_p"] + e["n_s"]) for e in events], c=[(e["time_ns"] - events[0]["time_ns"]) / 60e9
                                                                     for e in events],
                   cmap="viridis", alpha=0.7, label="located event (size: picks)")
    ax.plot(M64["longitude"], M64["latitude"], "r*", ms=18, label="M6.4 (catalogue)")
    if m64:
        ax.plot(m64["longitude"], m64["latitude"], "rx", ms=12, mew=2, label="M6.4 located here")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(1 / np.cos(np.radians(35.8)))
    ax.set_title("Ridgecrest 2019-07-04 16:50-18:10 UTC: %d events located" % len(events))
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ridgecrest_md(o):
    md = ["The shipped default (`fieldpick replay --model default`, gated) over the 22 stations of the hour "
          "(%d picks in %.0f s), stored, then `associate` with the default settings and the default layered model "
          "over the %d stations whose coordinates are in benchmarks/ridgecrest_stations.csv (%d picks there); "
          "%.0f s.  `python benchmarks/network.py ridgecrest`." % (
              o["picks"], o["replay_s"], o["stations_located"], o["picks_on_located_stations"], o["associate_s"]), "",
          "- events located: **%d** (median %s stations, median RMS %s s); map: docs/images/network_ridgecrest_map.png"
          % (o["events"], o["median_stations"], None if o["median_rms_s"] is None else round(o["median_rms_s"], 3))]
    picks = ", ".join("%s %s%s" % (p["station"].split(".")[1], p["phase"], "" if p["located"] else " (no coordinates)")
                      for p in o["m64_picks"])
    md.append("- the default's picks between 17:33:45 and 17:34:15 (the M6.4's first arrivals): %s" % picks)
    for key, label in (("m64_default", "default settings"), ("m64_relaxed", "relaxed to 4 picks on 3 stations")):
        m = o[key]
        if m:
            md.append("- M6.4 with %s: %.4f N %.4f W, %.1f km deep, %d P + %d S on %d stations: epicentre **%.2f km** "
                      "from the catalogue (35.705 N, 117.504 W), origin time %+.2f s" % (
                          label, m["latitude"], -m["longitude"], m["depth_km"], m["n_p"], m["n_s"], m["n_stations"],
                          m["epicentre_error_km"], m["origin_time_error_s"]))
        elif key == "m64_default" or o["m64_default"] is None:
            md.append("- M6.4 with %s: not associated" % label)
    return md


# ---------------------------------------------------------------- report


def write_markdown(res):
    lines = ["# The network side (benchmarks/network.py)", ""]
    c = res.get("calibrate")
    if c:
        lines += ["## Pick uncertainty calibration", "",
                  "The shipped default through the station pipeline (gated) on %s (never trained on); picks "
                  "within %.1f s of the analyst pick." % (", ".join(c["sets"]), c["tolerance_s"]), "",
                  "| phase | picks | median reported sigma | measured scatter (1.4826 MAD) | std | bias | "
                  "scale | floor | median calibrated sigma | z spread reported -> calibrated |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for ph, d in sorted(c["phases"].items()):
            lines.append("| %s | %d | %.3f s | %.3f s | %.3f s | %+.3f s | %.3f | %.3f s | %.3f s | %.2f -> %.2f |" % (
                ph, d["n"], d["median_reported_sigma_s"], d["measured_scatter_s"], d["std_s"], d["bias_s"],
                d["fit"]["scale"], d["fit"]["floor_s"], d["median_calibrated_sigma_s"], d["z_spread_reported"],
                d["z_spread_calibrated"]))
        lines += ["", "Plot: docs/images/network_calibration.png.", ""]
    for key, title in (("synthetic", "Synthetic network"), ("throughput", "Store throughput"),
                       ("ridgecrest", "Ridgecrest, 2019-07-04 16:50-18:10 UTC")):
        if key in res:
            lines += ["## " + title, ""] + list(res[key].get("markdown", [])) + [""]
    with open(os.path.join(RESULTS, "network.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["calibrate", "synthetic", "throughput", "ridgecrest", "all"])
    p.add_argument("--picks", type=int, default=20000, help="throughput: picks per store (a quarter with one a packet)")
    p.add_argument("--window", type=int, default=64, help="throughput: packets sent and not yet acknowledged")
    args = p.parse_args(argv)
    stages = ["calibrate", "synthetic", "throughput", "ridgecrest"] if args.stage == "all" else [args.stage]
    need = {"calibrate": ("labeled", "ncedc_easyquake_testdata.npz"), "ridgecrest": ("continuous", "index.csv")}
    for s in stages:
        if s in need and not os.path.exists(os.path.join(DATA, *need[s])):
            print("SKIPPED: the %s stage needs %s, not found (set FIELDPICK_DATA)" % (s, os.path.join(DATA, *need[s])))
            sys.exit(75)
    for s in stages:
        t = time.time()
        globals()["stage_" + s](args)
        print("%s: %.0f s" % (s, time.time() - t))


if __name__ == "__main__":
    main()
