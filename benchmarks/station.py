"""Station pipeline benchmark: speed, duty cycle, recall cost of gating, peak RSS, soak.

Run on one core:  .venv/bin/python benchmarks/station.py [--hours 24] [--model CARD] [--backend numpy]

Everything is timed in this one invocation, next to its peers, and reported
as ratios:

- trigger: ObsPy's ``recursive_sta_lta`` (C) on the day's Z against ours
  (numpy, in 60 s packets), and our bandpass + STA/LTA trigger;
- the gated and the continuous (50 % overlap) pipeline on the station-day
  fed as arrays (``Station.feed_array``) with three runners: a null runner
  (pipeline cost alone), the classic energy-ratio runner, and the model
  given with ``--model`` (untrained weights are fine for speed);
- the same day from Steim-2 miniSEED (written by ObsPy) through
  ``fieldpick replay``'s reader and the gated pipeline;
- duty cycle of the gate and what gating costs in recall (gated vs
  continuous picks scored against the synthetic truth), and the same on the
  154 real NCEDC event traces (``--no-ncedc`` skips it; skipped with a reason
  when the data is absent) for fitted and grid windows and two margins;
- peak RSS of ``fieldpick run`` on the miniSEED day (a child process);
- a soak: ``--soak-days`` simulated days fed through a Station in 10 s
  packets, RSS sampled after each day.

- SeisBench's PhaseNet ``annotate`` (untrained weights: ``sbm.PhaseNet()``,
  nothing downloaded; its default 1500-sample overlap, i.e. 50 %, and batch
  256; torch on 1 thread) on the same station-day as an ObsPy Stream, timed
  right after our continuous rows, with the ratio to each of them.  SeisBench
  is optional (``pip install -c constraints.txt -e '.[bench]'``); without it
  the row is skipped and the output says so.

Results: benchmarks/results/station.json and .md.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from fieldpick.edge.config import StationConfig  # noqa: E402
from fieldpick.edge.replay import energy_ratio_card, read_sorted  # noqa: E402
from fieldpick.edge.station import EnergyRatioRunner, Station, StationSet, join_seconds, load_runner  # noqa: E402
from fieldpick.edge.stream.trigger import RecursiveStaLta, Trigger  # noqa: E402
from fieldpick.lab import synthetic  # noqa: E402
from fieldpick.lab.scoring import evaluate_stream  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
T0 = 1_700_000_000 * 10 ** 9


class NullRunner:
    """Returns zeros of the card's output shape: the pipeline's own cost."""

    def __init__(self, card):
        self.card = card
        T = card.input.window_samples // card.output.stride_samples
        K = len(card.output.labels) + (1 if card.output.kind == "stride_class_offset" else 0)
        self.shape = (T, K) if card.output.layout == "NTC" else (K, T)

    def run(self, batch):
        return np.zeros((len(batch),) + self.shape, np.float32)


class TimedRunner:
    """Wraps a runner and adds up the seconds spent in ``run``: the network's share."""

    def __init__(self, runner):
        self.runner, self.card, self.seconds = runner, runner.card, 0.0

    def run(self, batch):
        t = time.perf_counter()
        out = self.runner.run(batch)
        self.seconds += time.perf_counter() - t
        return out


CPU = {}  # id of the last best_of's fn -> the least CPU time (s) of its runs


def best_of(fn, repeat):
    """(the shortest of ``repeat`` runs, the output of that run); the least CPU time
    (this process, all threads) of the runs goes to ``CPU["last"]``."""
    best, out, cpu = None, None, None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        got = fn()
        dt, dc = time.perf_counter() - t, time.process_time() - c
        if best is None or dt < best:
            best, out = dt, got
        cpu = dc if cpu is None else min(cpu, dc)
    CPU["last"] = cpu
    return best, out


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


MODES = {"gated": {"mode": "gated"}, "continuous": {"mode": "continuous"},
         # the placement before fitted windows: every grid window that overlaps a span widened 10 s / 20 s
         "gated-grid-10-20": {"mode": "gated", "stacking": "avg",
                              "trigger": {"windows": "grid", "pre_s": 10.0, "post_s": 20.0}}}


def pipeline(runner, data, mode, fs=100.0):
    st = Station(runner, StationConfig.from_dict(MODES[mode]), station="XX.SYN..HHZ")
    picks = st.feed_array(data, T0, fs)
    return st, picks


def write_mseed(data, path):
    from obspy import Stream, Trace, UTCDateTime

    counts = np.round(data).astype(np.int32)
    Stream([Trace(counts[c], header=dict(network="XX", station="SYN", location="", channel="HH" + comp,
                                         sampling_rate=100.0, starttime=UTCDateTime(T0 / 1e9)))
            for c, comp in enumerate("ZNE")]).write(path, format="MSEED", encoding="STEIM2", reclen=512)


def soak(days, hours_per_day_data, runner, seed):
    """Feed ``days`` simulated days in 10 s packets (an hour of data repeated, shifted in time)."""
    data, _ = synthetic.continuous(3600.0 * hours_per_day_data, seed=seed + 1, event_rate_per_hour=20, start_ns=T0)
    data = data.astype(np.float64)
    st = Station(runner, StationConfig.from_dict({"mode": "gated"}), station="XX.SOAK..HHZ")
    n_hour = data.shape[1]
    step = 1000
    per_day = []
    picks = 0
    t = time.perf_counter()
    for day in range(days):
        for hour in range(24):
            base = (day * 24 + hour) * 360000
            part = data[:, : min(n_hour, 360000)]
            for a in range(0, 360000, step):
                src = part[:, a % part.shape[1]: a % part.shape[1] + step]
                if src.shape[1] < step:
                    src = part[:, :step]
                for c, comp in enumerate("ZNE"):
                    picks += len(st.feed(comp, T0 + (base + a) * 10 ** 7, src[c], 100.0))
        per_day.append(round(rss_mb(), 1))
    picks += len(st.flush())
    return {"days": days, "rss_mb_after_each_day": per_day, "picks": picks, "windows_run": st.stats["windows_run"],
            "seconds": round(time.perf_counter() - t, 1), "ring_bytes": st.ring.data.nbytes + st.ring.have.nbytes}


def run_soak(days, data, model_card, backend, tmp):
    """``fieldpick run`` over ``days`` day files (the synthetic day, shifted by whole days),
    its RSS sampled every second from outside."""
    from obspy import Stream, Trace, UTCDateTime

    counts = np.round(data).astype(np.int32)
    paths = []
    for d in range(days):
        path = os.path.join(tmp, "day%d.mseed" % d)
        start = UTCDateTime(T0 / 1e9 + d * 86400.0)
        Stream([Trace(counts[c], header=dict(network="XX", station="SYN", location="", channel="HH" + comp,
                                             sampling_rate=100.0, starttime=start))
                for c, comp in enumerate("ZNE")]).write(path, format="MSEED", encoding="STEIM2", reclen=512)
        paths.append(path)
    cfg = {"model": os.path.abspath(model_card), "backend": backend, "mode": "gated", "sources": paths,
           "output": {"path": os.path.join(tmp, "week.csv")}}
    with open(os.path.join(tmp, "week.json"), "w") as f:
        json.dump(cfg, f)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fieldpick.edge.cli", "run", "--config",
                             os.path.join(tmp, "week.json")], stderr=subprocess.PIPE, text=True)
    samples = []
    while proc.poll() is None:
        try:
            with open("/proc/%d/status" % proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        samples.append((round(time.perf_counter() - t, 1), round(int(line.split()[1]) / 1024.0, 1)))
        except OSError:
            pass
        time.sleep(1.0)
    err = proc.stderr.read()
    with open(os.path.join(tmp, "week.csv")) as f:
        n_picks = sum(1 for _ in f) - 1
    rss = [r for _, r in samples]
    tenth = max(1, len(rss) // 10)
    return {"days": days, "seconds": round(time.perf_counter() - t, 1), "returncode": proc.returncode,
            "picks": n_picks, "rss_mb_every_tenth": rss[::tenth], "rss_mb_max": max(rss) if rss else None,
            "rss_mb_first_tenth_max": max(rss[:tenth]) if rss else None, "stderr_tail": err[-300:]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0, help="length of the synthetic station-day (hours)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--events-per-hour", type=float, default=6.0, help="small events: the synthetic defaults")
    ap.add_argument("--model", help="model card to time (untrained weights are fine); default: bundled, if any")
    ap.add_argument("--backend", default="numpy", choices=("numpy", "litert", "tflite-runtime", "onnxruntime"))
    ap.add_argument("--repeat", type=int, default=1, help="best of N for the timings")
    ap.add_argument("--soak-days", type=int, default=7)
    ap.add_argument("--no-rss", action="store_true", help="skip the fieldpick run child process")
    ap.add_argument("--no-ncedc", action="store_true", help="skip the gating table on the NCEDC event traces")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--soak-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--run-soak-days", type=int, default=7, help="days of miniSEED through `fieldpick run` (0: skip)")
    ap.add_argument("--only-run-soak", action="store_true",
                    help="run only the `fieldpick run` soak and add it to the existing results")
    args = ap.parse_args()
    if args.soak_child:
        print(json.dumps(soak(args.soak_child, 1.0, EnergyRatioRunner(energy_ratio_card()), args.seed)))
        return

    res = {"host": platform.node(), "python": platform.python_version(), "numpy": np.__version__,
           "threads": 1, "hours": args.hours, "seed": args.seed, "events_per_hour": args.events_per_hour,
           "load_average": list(os.getloadavg())}
    t = time.perf_counter()
    data, truth = synthetic.continuous(args.hours * 3600.0, seed=args.seed, start_ns=T0,
                                       event_rate_per_hour=args.events_per_hour)
    data = data.astype(np.float64)
    res["synthesis_s"] = round(time.perf_counter() - t, 2)
    res["arrivals"] = int(len(truth))
    day = args.hours / 24.0
    print("data: %g h, %d arrivals, synthesis %.1f s" % (args.hours, len(truth), res["synthesis_s"]))
    model_card = args.model
    if model_card is None:
        from fieldpick.edge.station import default_card_path

        model_card = default_card_path()
    if args.only_run_soak:
        with open(os.path.join(args.out, "station.json")) as f:
            res = json.load(f)
        with tempfile.TemporaryDirectory() as tmp:
            res["run_soak"] = run_soak(args.run_soak_days, data, model_card, args.backend, tmp)
        print("run soak: %s" % res["run_soak"])
        write_results(res, args.out)
        return

    # ---- trigger against ObsPy
    from obspy.signal.trigger import recursive_sta_lta

    z = data[0]
    t_obspy, ref = best_of(lambda: recursive_sta_lta(z, 50, 1000), max(3, args.repeat))

    def ours():
        s = RecursiveStaLta(50, 1000)
        return np.concatenate([s.update(z[a:a + 6000]) for a in range(0, len(z), 6000)])

    t_ours, got = best_of(ours, max(2, args.repeat))

    def trig():
        tr = Trigger(100.0)
        for a in range(0, len(z), 6000):
            tr.update(z[a:a + 6000])

    t_trig, _ = best_of(trig, max(2, args.repeat))
    res["trigger"] = {"obspy_recursive_sta_lta_s": t_obspy, "ours_sta_lta_s": t_ours, "ours_bandpass_sta_lta_s": t_trig,
                      "ratio_sta_lta_vs_obspy": t_ours / t_obspy, "ratio_trigger_vs_obspy": t_trig / t_obspy,
                      "allclose_to_obspy": bool(np.allclose(got, ref, rtol=1e-9, atol=0))}
    print("trigger: obspy %.3f s, ours %.3f s (%.1fx), with bandpass %.3f s (%.1fx)"
          % (t_obspy, t_ours, t_ours / t_obspy, t_trig, t_trig / t_obspy))

    # ---- pipeline from arrays
    runners = {"null": NullRunner(energy_ratio_card()), "energy-ratio": EnergyRatioRunner(energy_ratio_card())}
    if model_card:
        runners["model"] = load_runner(model_card, args.backend)
        if args.backend == "numpy":
            try:  # the fast reference runtime, when installed, for comparison
                runners["model-litert"] = load_runner(model_card, "litert")
            except Exception as exc:  # noqa: BLE001 - optional back end
                print("litert back end not available: %s" % exc)
        res["model"] = {"card": model_card, "name": runners["model"].card.name, "backend": args.backend,
                        "kind": runners["model"].card.output.kind,
                        "window_samples": runners["model"].card.input.window_samples}
    res["pipeline"] = {}
    for name, runner in runners.items():
        for mode in ("gated", "gated-grid-10-20", "continuous") if name == "model" else ("gated", "continuous"):
            # the peer again, right before: the host is shared and its load drifts
            peer, _ = best_of(lambda: recursive_sta_lta(z, 50, 1000), 3)
            timed = TimedRunner(runner)

            def once(m=mode, tr=timed):
                tr.seconds = 0.0
                return pipeline(tr, data, m) + (tr.seconds,)

            secs, (st, picks, net) = best_of(once, args.repeat)
            cpu = CPU["last"]
            sc = evaluate_stream(truth, picks, args.hours * 3600.0).to_dict()
            row = {"seconds": secs, "seconds_per_day": secs / day, "obspy_sta_lta_s": peer,
                   "cpu_seconds_per_day": cpu / day,
                   "runner_seconds_per_day": net / day, "runner_share": net / secs,
                   "ratio_vs_obspy_sta_lta": secs / peer,
                   "windows_run": st.stats["windows_run"], "windows_total": st.stats["windows_total"],
                   "duty_cycle": st.duty_cycle, "picks": len(picks),
                   "recall": {ph: sc["phases"][ph]["recall"] for ph in ("P", "S")} if "phases" in sc else sc}
            res["pipeline"]["%s/%s" % (name, mode)] = row
            print("pipeline %-13s %-10s %.2f s/day (%.0fx obspy sta/lta), duty %.2f, %d picks"
                  % (name, mode, secs / day, secs / peer, st.duty_cycle, len(picks)))

    if "model" in runners and not args.no_ncedc:
        res["ncedc_gating"] = ncedc_gating(runners["model"])
        print("ncedc gating: %s" % res["ncedc_gating"].get("rows", res["ncedc_gating"]))

    res["seisbench"] = seisbench_peer(data, max(3, args.repeat), day, res["pipeline"])
    print("seisbench: %s" % {k: v for k, v in res["seisbench"].items() if k != "ratios"})

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "day.mseed")
        write_mseed(data, path)
        res["mseed_bytes"] = os.path.getsize(path)
        best = "model" if "model" in runners else "energy-ratio"

        def from_mseed(runner):
            records, _ = read_sorted([path], join_seconds(StationConfig()))
            ss = StationSet(runner, StationConfig.from_dict({"mode": "gated"}))
            n = 0
            for rec in records:
                n += len(ss.feed_record(rec))
            return n + len(ss.flush())

        res["mseed_gated_by_runner"] = {}
        for name in ("null", best):
            timed = TimedRunner(runners[name])

            def once(tr=timed):
                tr.seconds = 0.0
                return from_mseed(tr), tr.seconds

            peer, _ = best_of(lambda: recursive_sta_lta(z, 50, 1000), 3)
            secs, (n, net) = best_of(once, args.repeat)
            row = {"runner": name, "seconds": secs, "seconds_per_day": secs / day, "picks": n,
                   "cpu_seconds_per_day": CPU["last"] / day,
                   "runner_seconds_per_day": net / day, "runner_share": net / secs,
                   "obspy_sta_lta_s": peer, "ratio_vs_obspy_sta_lta": secs / peer}
            res["mseed_gated_by_runner"][name] = row
            print("miniSEED gated (%s): %.2f s/day, runner %.2f s/day" % (name, secs / day, net / day))
        res["mseed_gated"] = res["mseed_gated_by_runner"][best]

        if not args.no_rss and "model" in runners:
            cfg = {"model": os.path.abspath(model_card), "backend": args.backend, "mode": "gated",
                   "sources": [path], "output": {"path": os.path.join(tmp, "picks.csv")}}
            with open(os.path.join(tmp, "station.json"), "w") as f:
                json.dump(cfg, f)
            t = time.perf_counter()
            # the child reports its own high-water mark (VmHWM): ru_maxrss of a forked child would
            # count the parent's pages it shared before exec
            code = ("import sys\nfrom fieldpick.edge.cli import main\nrc = main(sys.argv[1:])\n"
                    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
                    "sys.stderr.write('VMHWM_KB %s\\n' % hwm)\nsys.exit(rc)\n")
            proc = subprocess.run([sys.executable, "-c", code, "run", "--config",
                                   os.path.join(tmp, "station.json")], capture_output=True, text=True)
            wall = time.perf_counter() - t
            kb = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("VMHWM_KB")]
            peak = int(kb[0]) / 1024.0 if kb else float("nan")
            res["run_peak_rss_mb"] = {"peak_mb": peak, "returncode": proc.returncode, "seconds": wall,
                                      "stderr_tail": proc.stderr[-500:]}
            print("fieldpick run: peak RSS %.1f MB, %.1f s, rc %d" % (peak, wall, proc.returncode))
        if args.run_soak_days > 0 and "model" in runners:
            res["run_soak"] = run_soak(args.run_soak_days, data, model_card, args.backend, tmp)
            print("run soak: %s" % res["run_soak"])

    if args.soak_days > 0:
        # in a fresh process, so that its RSS is the station's and not this script's
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--soak-child", str(args.soak_days),
                               "--seed", str(args.seed)], capture_output=True, text=True)
        res["soak"] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {
            "error": proc.stderr[-500:]}
        print("soak: %s" % res["soak"])

    write_results(res, args.out)


NCEDC_CONFIGS = [
    ("continuous", {"mode": "continuous"}),
    ("continuous, stacking avg", {"mode": "continuous", "stacking": "avg"}),
    ("gated, grid, margins 10/20 s", {"mode": "gated", "stacking": "avg", "trigger": {
        "windows": "grid", "pre_s": 10.0, "post_s": 20.0}}),
    ("gated, grid, margins 8/12 s", {"mode": "gated", "stacking": "avg", "trigger": {"windows": "grid"}}),
    ("gated, fit, margins 10/20 s", {"mode": "gated", "trigger": {"pre_s": 10.0, "post_s": 20.0}}),
    ("gated, fit, margins 8/12 s (the default)", {"mode": "gated"}),
]


def ncedc_gating(runner, tol_s=0.5):
    """Windows run and arrivals found (a pick of the phase within ``tol_s``) on the 154
    real NCEDC 90 s event traces, one Station per trace, for each gating config."""
    from fieldpick.train.data.datasets import NCEDC_DIR

    path = os.path.join(NCEDC_DIR, "phasenet_ncedc_90s.npz")
    if not os.path.exists(path):
        return {"skipped": "NCEDC traces not found at %s (set FIELDPICK_NCEDC)" % path}
    d = np.load(path)
    X, p_idx, s_idx = d["waveforms"].astype(np.float64), d["p_idx"], d["s_idx"]
    rows = {}
    for name, cfg in NCEDC_CONFIGS:
        windows = picks = found_p = found_s = 0
        for i in range(len(X)):
            st = Station(runner, StationConfig.from_dict(cfg))
            got = st.feed_array(X[i], T0, 100.0)
            windows += st.stats["windows_run"]
            picks += len(got)
            for ph, idx in (("P", p_idx[i]), ("S", s_idx[i])):
                hit = any(p.phase == ph and abs(p.time_ns - (T0 + int(round(idx * 1e7)))) <= tol_s * 1e9 for p in got)
                if ph == "P":
                    found_p += hit
                else:
                    found_s += hit
        rows[name] = {"config": cfg, "windows_run": windows, "picks": picks, "p_found": found_p,
                      "s_found": found_s}
    return {"traces": int(len(X)), "tolerance_s": tol_s, "rows": rows}


def seisbench_peer(data, repeat, day, pipeline_rows):
    """SeisBench PhaseNet ``annotate`` on the day (an ObsPy Stream), torch on one thread;
    best of ``repeat``; ratios to our pipeline rows timed just before in this run."""
    try:
        import seisbench
        import seisbench.models as sbm
        import torch
        from obspy import Stream, Trace, UTCDateTime
    except ImportError as exc:
        return {"skipped": "seisbench not installed (%s); install the bench extra: "
                           "pip install -c constraints.txt -e '.[bench]'" % exc}
    torch.set_num_threads(1)
    model = sbm.PhaseNet()  # untrained weights: nothing is downloaded; speed does not depend on them
    model.eval()
    stream = Stream([Trace(data[c].astype(np.float64), header=dict(
        network="XX", station="SYN", location="", channel="HH" + comp, sampling_rate=100.0,
        starttime=UTCDateTime(T0 / 1e9))) for c, comp in enumerate("ZNE")])
    secs, out = best_of(lambda: model.annotate(stream), repeat)
    cpu = CPU["last"]
    ratios = {k: secs / r["seconds"] for k, r in pipeline_rows.items() if k.startswith("model")}
    return {"seisbench": seisbench.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "model": "PhaseNet() untrained", "in_samples": int(model.in_samples),
            "annotate_args": {"overlap": 1500, "batch_size": 256, "stacking": "avg"},
            "seconds": secs, "seconds_per_day": secs / day, "cpu_seconds_per_day": cpu / day,
            "output_traces": len(out), "ratios": ratios,
            "cpu_ratios": {k: cpu / r["cpu_seconds_per_day"] / day for k, r in pipeline_rows.items()
                           if k.startswith("model")}}


def write_results(res, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "station.json"), "w") as f:
        json.dump(res, f, indent=2, default=float)
    with open(os.path.join(out, "station.md"), "w") as f:
        f.write(markdown(res))
    print("wrote %s/station.json and station.md" % out)


def markdown(res):
    tr = res["trigger"]
    lines = [
        "# Station pipeline benchmark", "",
        "One core (1 BLAS thread), Python %s, numpy %s, %g h synthetic 3-component 100 Hz data with %d arrivals; "
        "load average at start %s (a shared host: ratios matter more than seconds)."
        % (res["python"], res["numpy"], res["hours"], res["arrivals"], ", ".join("%.1f" % v for v in res["load_average"])),
        "",
        "## Trigger vs ObsPy (same run, same data)", "",
        "| what | seconds | x ObsPy recursive_sta_lta |", "|---|---:|---:|",
        "| ObsPy recursive_sta_lta (C) | %.3f | 1.0 |" % tr["obspy_recursive_sta_lta_s"],
        "| ours, recursive STA/LTA (numpy, 60 s packets) | %.3f | %.1f |" % (tr["ours_sta_lta_s"], tr["ratio_sta_lta_vs_obspy"]),
        "| ours, bandpass + STA/LTA | %.3f | %.1f |" % (tr["ours_bandpass_sta_lta_s"], tr["ratio_trigger_vs_obspy"]),
        "", "allclose to ObsPy: %s" % tr["allclose_to_obspy"], "",
        "## Pipeline, station-day fed as arrays", "",
        "| runner / mode | s per station-day (wall) | CPU s per station-day | of which runner.run (network) "
        "| x ObsPy STA/LTA (timed just before) | windows run / total | duty cycle | picks | recall P | recall S |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in res["pipeline"].items():
        rec = r["recall"] if isinstance(r["recall"], dict) else {}
        lines.append("| %s | %.2f | %s | %s | %.0f | %d / %d | %.2f | %d | %s | %s |" % (
            k, r["seconds_per_day"], _f(r.get("cpu_seconds_per_day")), _share(r), r["ratio_vs_obspy_sta_lta"],
            r["windows_run"], r["windows_total"], r["duty_cycle"], r["picks"], _f(rec.get("P")), _f(rec.get("S"))))
    rows = res.get("mseed_gated_by_runner") or ({"x": res["mseed_gated"]} if "mseed_gated" in res else {})
    if rows:
        lines += ["", "## From Steim-2 miniSEED (read + gated pipeline, `fieldpick replay`'s reader)", "",
                  "| runner | s per station-day (wall) | CPU s per station-day | of which runner.run (network) "
                  "| x ObsPy STA/LTA (timed just before) | picks |",
                  "|---|---:|---:|---:|---:|---:|"]
        for m in rows.values():
            lines.append("| %s | %.2f | %s | %s | %.0f | %d |" % (
                m["runner"], m["seconds_per_day"], _f(m.get("cpu_seconds_per_day")), _share(m),
                m["ratio_vs_obspy_sta_lta"], m["picks"]))
    ng = res.get("ncedc_gating")
    if ng and "rows" in ng:
        lines += ["", "## Gating on real event traces (NCEDC, same model)", "",
                  "%d traces of 90 s (every P at 30.0 s, S-P 0.4-12.9 s; 39 vertical-only), one Station per "
                  "trace; found: a pick of the phase within %.1f s of the catalog pick." % (ng["traces"], ng["tolerance_s"]),
                  "", "| config | windows run | picks | P found | S found |", "|---|---:|---:|---:|---:|"]
        for k, r in ng["rows"].items():
            lines.append("| %s | %d | %d | %d / %d | %d / %d |" % (k, r["windows_run"], r["picks"], r["p_found"],
                                                               ng["traces"], r["s_found"], ng["traces"]))
    elif ng:
        lines += ["", "NCEDC gating table: skipped (%s)." % ng["skipped"]]
    lines += _tail_lines(res)
    return "\n".join(lines)


def _tail_lines(res):
    """The report's end: the model, the run and soak figures, and the SeisBench comparison."""
    lines = []
    if "model" in res:
        lines += ["", "Model: %(name)s (%(kind)s, %(window_samples)d-sample windows, back end %(backend)s) from %(card)s." % res["model"]]
    if "run_peak_rss_mb" in res:
        r = res["run_peak_rss_mb"]
        lines += ["", "`fieldpick run` on the miniSEED day: peak RSS %.1f MB, %.1f s (exit %d)." % (r["peak_mb"], r["seconds"], r["returncode"])]
    if "soak" in res:
        s = res["soak"]
        if "error" in s:
            lines += ["", "Soak failed: %s" % s["error"]]
        else:
            lines += ["", "Soak: %d simulated days through Station.feed in 10 s packets (gated, energy-ratio runner, "
                      "an hour of data repeated with advancing times), in its own process: RSS after each day %s MB; "
                      "%d picks; %.0f s." % (s["days"], s["rss_mb_after_each_day"], s["picks"], s["seconds"])]
    if "run_soak" in res:
        r = res["run_soak"]
        lines += ["", "`fieldpick run` soak: %d days of Steim-2 miniSEED (the synthetic day repeated, shifted by whole days), "
                  "gated, %d picks, %.0f s, exit %d; RSS sampled every second from outside, every tenth sample: %s MB "
                  "(max %s MB; max in the first tenth %s MB)."
                  % (r["days"], r["picks"], r["seconds"], r["returncode"], r["rss_mb_every_tenth"],
                     _f(r["rss_mb_max"], 1), _f(r["rss_mb_first_tenth_max"], 1))]
    sb = res.get("seisbench") or {"skipped": "not run"}
    if "skipped" in sb:
        lines += ["", "SeisBench PhaseNet `annotate`: skipped (%s)." % sb["skipped"], ""]
    else:
        lines += ["", "## SeisBench PhaseNet `annotate` (same day, same run, timed after our rows)", "",
                  "SeisBench %s, torch %s on %d thread, `sbm.PhaseNet()` (untrained weights, %d-sample windows), "
                  "`annotate(stream)` with its defaults (overlap 1500 samples = 50 %%, batch 256, avg stacking) on "
                  "the day as an ObsPy Stream: **%.2f s per station-day** (CPU %s s)." % (
                      sb["seisbench"], sb["torch"], sb["torch_threads"], sb["in_samples"], sb["seconds_per_day"],
                      _f(sb.get("cpu_seconds_per_day"))),
                  "", "| our row | s per station-day (wall) | SeisBench annotate / ours (wall) | CPU s per station-day "
                  "| SeisBench / ours (CPU) |", "|---|---:|---:|---:|---:|"]
        for k, v in sb["ratios"].items():
            r = res["pipeline"][k]
            lines.append("| %s | %.2f | %.1fx | %s | %s |" % (
                k, r["seconds_per_day"], v, _f(r.get("cpu_seconds_per_day")),
                "%.1fx" % sb["cpu_ratios"][k] if k in sb.get("cpu_ratios", {}) else "-"))
        lines.append("")
    return lines


def _share(r):
    if "runner_seconds_per_day" not in r:
        return "-"
    return "%.2f s (%.0f %%)" % (r["runner_seconds_per_day"], 100.0 * r["runner_share"])


def _f(v, digits=2):
    return "-" if v is None or (isinstance(v, float) and v != v) else "%.*f" % (digits, v)


if __name__ == "__main__":
    main()
