"""Run every benchmark in benchmarks/ and write benchmarks/REPORT.md with tables and PNG plots.

    make bench                                             # the quick budget (~30-45 min on 2 cores)
    make bench-full                                        # the budget of the committed headline figures
    .venv/bin/python benchmarks/run_all.py [--budget quick|full]   # the same (BUDGET=full also works)
    .venv/bin/python benchmarks/run_all.py --report-only   # rebuild the report from results/*.json
    .venv/bin/python benchmarks/run_all.py --only mseed estimator --args "zoo=--folds 2"

Each script in benchmarks/ (every ``*.py`` but this one and ``_*.py``) runs in
its own process with one BLAS thread, with the arguments its budget gives it
(``BUDGETS`` below; ``--args`` appends more), writes ``results/<name>.json``
and ``results/<name>.md`` and is given a timeout.  The order is fixed so that
a script finds what an earlier one built: export, zoo (cross-validated fold
models under runs/bench/zoo/, read by saliency), interpreter (its exported
LPPN-like picker in build/, read by the estimator), ..., the estimator last.
A script that cannot run here (the NCEDC windows absent) exits with
``SKIPPED_RC`` after printing ``SKIPPED: <reason>`` and leaves its results
alone; the report says so.  Scripts in ``EXTERNAL`` are not run (their
inputs are outside any budget of make bench); their committed result is shown
and marked as such.

``results/manifest.json`` records, per script, the budget, command, date and
the SHA-256 of the results/<name>.json it wrote.  The report trusts that
record only while the file is unchanged: a result written by hand or by an
older run is labelled as such, never passed off as this run's.  The report
puts the headline sections first (accuracy, interpreter latency,
station throughput and memory, gating duty cycle against recall, the
estimator for every board, the size/accuracy Pareto plot), then every other
result.  Plots are drawn here from the JSON.  Logs go to results/tmp/logs/
(not committed).
"""

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report_plots import DRAWN, Plots, flatten, number  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
PLOTS = os.path.join(RESULTS, "plots")
LOGS = os.path.join(RESULTS, "tmp", "logs")
REPORT = os.path.join(HERE, "REPORT.md")
#: exit status of a script that cannot run on this machine (missing data); it prints "SKIPPED: why"
SKIPPED_RC = 75

#: the headline sections: (title, scripts whose results belong there, what it shows)
SECTIONS = [
    ("Accuracy: our models and the classic baselines", ["accuracy", "zoo"],
     "P/S precision, recall, F1 and residuals on the NCEDC windows and synthetic data"),
    ("Interpreter latency against the other runtimes", ["interpreter", "export"],
     "latency per window of the numpy interpreter, ai-edge-litert, tflite-runtime, onnxruntime, torch"),
    ("Station throughput and memory against SeisBench and ObsPy", ["station", "mseed"],
     "samples per second through the pipeline, resident memory, miniSEED decoding"),
    ("Gating: duty cycle against recall", ["station", "accuracy"],
     "how much of the time the STA/LTA gate runs the network, and what recall it keeps"),
    ("The estimator for every board", ["estimator"],
     "latency per window, memory, CPU duty cycle and energy per day on each board; its error on this machine"),
    ("Generalisation: held out by dataset, whole traces through the station", ["generalise", "teachers"],
     "the recipe trained without each labelled set, picking it; the teachers and classic pickers on the same "
     "traces; agreement with the teachers on real continuous data"),
    ("Size against accuracy (Pareto)", ["zoo", "pareto", "export"],
     "parameters or bytes against F1: the zoo's models, then the compression table (its own plot)"),
]
#: scripts the report expects; any other script found also runs
EXPECTED = ["accuracy", "zoo", "interpreter", "export", "station", "mseed", "telemetry", "estimator"]
#: run order: models first (others may read them), the estimator last (it times the exported models)
ORDER = ["export", "zoo", "accuracy", "finetune", "saliency", "interpreter", "station", "mseed", "telemetry"]

#: Arguments per budget.  "full" is what the committed headline figures used (see each script's
#: results/<name>.md for the command); "quick" fits make bench in ~30 min on 2 shared cores (the zoo's
#: 3-fold training is two thirds of it).
#: Training benchmarks keep their checkpoints under runs/bench/ (never runs/zoo: others use that).
BUDGETS = {
    "quick": {
        "export": ["--windows", "100", "--repeats", "10"],
        "zoo": ["--folds", "3", "--epochs", "20", "--steps", "25", "--pretrain-windows", "500",
                "--pretrain-epochs", "3", "--models", "phasenet", "lppn", "leqnet", "cpic", "default",
                "--work", "runs/bench/zoo"],
        "accuracy": ["--n-val", "100", "--n-test", "200", "--n-noise", "100", "--stream-hours", "0.5"],
        "finetune": ["--folds", "2", "--labels", "25", "100", "--epochs", "15", "--steps", "15",
                     "--pretrain-windows", "500", "--pretrain-epochs", "4", "--work", "runs/bench/finetune"],
        "saliency": ["--every", "2", "--synthetic", "20", "--controls", "2", "--zoo-work", "runs/bench/zoo"],
        "interpreter": ["--repeats", "40", "--batch", "8,32,128", "--batch-repeats", "3"],
        # whole days: the run soak shifts the day file by 24 h, so a shorter "day" leaves gaps between files
        "station": ["--hours", "24", "--soak-days", "1", "--run-soak-days", "2"],
        "mseed": ["--hours", "24", "--repeat", "3"],
        "network": ["all"],  # ~5 min: calibration, synthetic network, store throughput, Ridgecrest
        "telemetry": [],  # 1 s; fewer than ~800 picks a day make a packet span more than its 4.6 h limit
        "estimator": ["--quick"],
        "fuzz": ["--inputs", "3000", "--jobs", "2"],  # ~5 min; the committed figures: the full budget
    },
    "full": {
        "export": [],
        "zoo": ["--folds", "5", "--models", "phasenet", "lppn", "leqnet", "cpic", "default",
                "--work", "runs/bench/zoo"],
        "accuracy": [],
        "finetune": ["--folds", "3", "--labels", "25", "100", "--epochs", "20", "--steps", "15",
                     "--pretrain-windows", "2000", "--pretrain-epochs", "10", "--work", "runs/bench/finetune"],
        "saliency": ["--zoo-work", "runs/bench/zoo"],
        "interpreter": [],
        "station": ["--repeat", "3"],
        "mseed": ["--repeat", "7"],
        "telemetry": [],
        "network": ["all"],
        "estimator": [],
        "fuzz": ["--inputs", "100000", "--jobs", "2"],
    },
}
#: seconds each script may run, per budget
TIMEOUTS = {"quick": 1800, "full": 8 * 3600}  # full: the zoo alone is ~2.5 h on an idle core
#: scripts make bench does not run: why, and how their result is made
EXTERNAL = {
    "generalise": "its held-out models come from make generalise (one training and export per left-out "
                  "set, about 30 min of CPU, and the team's data), outside both budgets of make bench",
    "pareto": "its inputs are distillation and pruning cross-validation runs (hours of CPU; "
              "docs/compression.md says how to make them), outside both budgets of make bench",
}


# ---------------------------------------------------------------- running
def scripts():
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, "*.py")))
    names = [n for n in names if n != "run_all" and not n.startswith("_")]
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(names, key=lambda n: (n == "estimator", rank.get(n, len(ORDER)), n))


def run_one(name, args, timeout, budget):
    """Run benchmarks/<name>.py; returns a status dict (the log is kept in results/tmp/logs)."""
    os.makedirs(LOGS, exist_ok=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    cmd = [sys.executable, os.path.join(HERE, name + ".py")] + args
    log_path = os.path.join(LOGS, name + ".log")
    result = os.path.join(RESULTS, name + ".json")
    before = (sha256(result), os.path.getmtime(result) if os.path.exists(result) else None)
    t0 = time.time()
    cpu0 = os.times()
    with open(log_path, "w") as log:
        log.write("$ %s\n" % " ".join(shlex.quote(c) for c in cmd))
        log.flush()
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout after %d s" % timeout
    dt = time.time() - t0
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    with open(log_path, errors="replace") as f:
        lines = [ln.rstrip() for ln in f.readlines() if ln.strip()]
    tail = lines[-1][:200] if lines else ""
    skipped = [ln for ln in lines if ln.startswith("SKIPPED:")]
    status = "ok" if rc == 0 else "skipped" if rc == SKIPPED_RC and skipped else "failed"
    reason = skipped[-1][len("SKIPPED:"):].strip() if status == "skipped" else tail
    after = (sha256(result), os.path.getmtime(result) if os.path.exists(result) else None)
    if status == "ok" and (after[0] is None or after == before):
        status, reason = "stale", "exited 0 but wrote no new results/%s.json" % name
    print("  %-12s %s in %.0f s (CPU %.0f s)%s" % (name, status if rc == 0 else "%s (%s)" % (status.upper(), rc), dt,
                                                  cpu, "" if rc == 0 else ": " + reason), flush=True)
    return {"script": name, "rc": rc, "status": status, "reason": reason, "seconds": round(dt, 1),
            "cpu_seconds": round(cpu, 1), "started": t0, "started_utc": _utc(t0), "last_line": tail,
            "budget": budget, "command": " ".join(shlex.quote(c) for c in ["benchmarks/%s.py" % name] + args)}


def _utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def manifest_path():
    return os.path.join(RESULTS, "manifest.json")


def load_manifest():
    try:
        with open(manifest_path()) as f:
            return json.load(f).get("scripts", {})
    except (OSError, ValueError, AttributeError):
        return {}


def record(manifest, run):
    """Keep a successful run's budget, command and result hash; a failed or skipped one as last_attempt only."""
    name = run["script"]
    entry = dict(manifest.get(name) or {})
    attempt = {k: run[k] for k in ("status", "reason", "budget", "command", "started_utc", "seconds", "cpu_seconds")}
    if run["status"] == "ok":
        entry = dict(attempt, sha256=sha256(os.path.join(RESULTS, name + ".json")), host=platform.node(),
                     load_1min=round(os.getloadavg()[0], 1))
        entry.pop("reason", None)
    else:
        entry["last_attempt"] = attempt
    manifest[name] = entry
    os.makedirs(RESULTS, exist_ok=True)
    with open(manifest_path(), "w") as f:
        json.dump({"what": "what benchmarks/run_all.py ran: budget, command and the SHA-256 of the result it wrote",
                   "scripts": dict(sorted(manifest.items()))}, f, indent=1)


# ---------------------------------------------------------------- reading results
def load_json(name):
    path = os.path.join(RESULTS, name + ".json")
    if not os.path.exists(path):
        return None, None
    try:
        with open(path) as f:
            return json.load(f), os.path.getmtime(path)
    except ValueError as exc:
        return {"_error": "not valid JSON: %s" % exc}, os.path.getmtime(path)


# ---------------------------------------------------------------- the report
def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "%.1f" % os.getloadavg()[0]
    except OSError:
        load = "?"
    try:
        import numpy

        np_version = numpy.__version__
    except ImportError:
        np_version = "?"
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version(),
            "numpy": np_version, "os": platform.platform(), "load_1min": load, "git": rev or "?"}


def demote(md):
    """Shift a script's markdown headings down two levels so they nest under the report's."""
    out = []
    for line in md.splitlines():
        out.append("##" + line if line.startswith("#") else line)
    return "\n".join(out).strip()


def provenance(name, manifest):
    """Where results/<name>.json comes from, as far as the manifest can vouch for it."""
    path = os.path.join(RESULTS, name + ".json")
    if not os.path.exists(path):
        return None
    e = manifest.get(name) or {}
    if e.get("sha256") and e["sha256"] == sha256(path):
        return "budget **%s**, `%s`, ran %s in %.0f s" % (e["budget"], e["command"], e["started_utc"], e["seconds"])
    if e.get("sha256"):
        return "**changed by hand or by another run since make bench wrote it** (%s, budget %s); its own text " \
               "below says how it was made" % (e.get("started_utc"), e.get("budget"))
    return "not written by make bench; its own text below says how it was made"


def status_line(name, runs, manifest):
    r = runs.get(name)
    prov = provenance(name, manifest)
    older = "; the result shown is older: %s" % prov if prov else "; no result to show"
    if name in EXTERNAL:
        return "not run by make bench: %s%s" % (EXTERNAL[name], "; result: %s" % prov if prov else "")
    if not os.path.exists(os.path.join(HERE, name + ".py")):
        if prov:
            return "result only (written by another script's option, not by run_all)"
        return "**missing**: benchmarks/%s.py does not exist yet" % name
    if r is not None and r["status"] == "skipped":
        return "**skipped in this run**: %s%s" % (r["reason"], older)
    if r is not None and r["status"] == "stale":
        return "**stale**: it ran, but %s%s" % (r["reason"], older)
    if r is not None and r["status"] != "ok":
        return "**failed in this run** (%s): %s%s" % (r["rc"], r["reason"], older)
    if prov is None:
        return "**no result**: results/%s.json was not written (run `benchmarks/run_all.py --only %s`)" % (name, name)
    if runs and r is None:
        return "not run this time; %s" % prov
    return prov


def budgets_of(names, manifest):
    """{budget: [scripts]} of the results the manifest vouches for; 'outside make bench' for the rest."""
    out = {}
    for n in names:
        if not os.path.exists(os.path.join(RESULTS, n + ".json")):
            continue
        e = manifest.get(n) or {}
        ok = e.get("sha256") and e["sha256"] == sha256(os.path.join(RESULTS, n + ".json"))
        out.setdefault("budget **%s**" % e["budget"] if ok else "**not written by make bench** (made by hand; each "
                       "states its own command or budget)", []).append(n)
    return out


def headline(name, data):
    """Top-level scalar ratios and errors of a result, for the summary."""
    flat = flatten(data) if isinstance(data, dict) else {}
    keys = [k for k in flat if ("ratio" in k or "error" in k) and number(flat[k]) and k.count(".") <= 1]
    return ", ".join("%s %.3g" % (k, flat[k]) for k in keys[:4])


def build_report(runs, manifest, budget=None):
    for old in DRAWN:  # no plot of this script survives from an earlier report (scripts' own plots stay)
        for path in glob.glob(os.path.join(PLOTS, old + ".png")):
            os.remove(path)
    names = sorted(set(scripts()) | set(EXPECTED) | {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(RESULTS, "*.json"))})
    names = [n for n in names if n != "manifest"]
    datas = {n: load_json(n)[0] for n in names}
    out = _summary(names, datas, runs, manifest, budget)
    shown = set()
    for section in SECTIONS:
        out += _section(section, datas, runs, manifest, shown)
    others = [n for n in names if n not in shown and datas.get(n) is not None]
    if others:
        out += ["", "## Other results"]
        for n in others:
            out += ["", "### %s" % n, "", "- %s" % status_line(n, runs, manifest)]
            md = os.path.join(RESULTS, n + ".md")
            if os.path.exists(md):
                with open(md) as f:
                    out += ["", demote(f.read())]
    out += ["", "## How to reproduce", "", "`make bench` (the quick budget, ~30-45 min on 2 shared cores) or "
            "`make bench-full` (the budget of the committed headline figures: ~3-4 h, most of it the zoo's 5-fold "
            "training) regenerate every result from a fresh clone: each script's arguments per budget are in "
            "`BUDGETS` in benchmarks/run_all.py, and results/manifest.json records what ran. One benchmark: "
            "`.venv/bin/python benchmarks/run_all.py --only NAME [--budget full]`; the report alone from the JSON "
            "already in benchmarks/results/: `benchmarks/run_all.py --report-only`. Without the NCEDC windows "
            "(`FIELDPICK_NCEDC`) zoo and finetune skip and say so; accuracy, export and "
            "saliency run on synthetic data alone. Not run by make bench: %s. Logs: benchmarks/results/tmp/logs/."
            % "; ".join("%s (%s)" % kv for kv in sorted(EXTERNAL.items()))]
    with open(REPORT, "w") as f:
        f.write("\n".join(out) + "\n")
    return REPORT


def _summary(names, datas, runs, manifest, budget):
    """The report's head: machine, budgets, and the table of what ran."""
    m = machine()
    out = ["# fieldpick benchmark report", ""]
    out.append("Generated %s by `benchmarks/run_all.py` (git %s) on **%s**, %s cores, %s; Python %s, numpy %s; "
               "1-minute load average %s when the report was written (the machine is shared: timings are noisy, "
               "so every figure that matters is a ratio against a peer measured in the same run)." % (
                   datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), m["git"], m["cpu"],
                   m["cores"], m["arch"], m["python"], m["numpy"], m["load_1min"]))
    shown_budgets = budgets_of(names, manifest)
    if runs:
        out += ["", "**Budget of this run: %s** (`make bench%s`; every table below states the data, folds, "
                "epochs or rounds it ran with)." % (budget, "" if budget == "quick" else "-full")]
    if len(shown_budgets) == 1:
        out += ["", "Every result below: %s." % list(shown_budgets)[0]]
    elif shown_budgets:
        out += ["", "Where the results below come from: %s." % "; ".join(
            "%s: %s" % (b, ", ".join(ns)) for b, ns in sorted(shown_budgets.items()))]
    out += ["", "## What ran", "", "| benchmark | status | headline figures |", "|---|---|---|"]
    for n in names:
        if n not in EXPECTED and n not in runs and datas[n] is None:
            continue
        out.append("| %s | %s | %s |" % (n, status_line(n, runs, manifest),
                                          headline(n, datas[n]) if datas[n] else ""))
    missing = [n for n in EXPECTED if not os.path.exists(os.path.join(HERE, n + ".py"))]
    if missing:
        out += ["", "Not written yet: %s." % ", ".join("benchmarks/%s.py" % n for n in missing)]
    return out


def _plots_of(title, datas):
    """The plots of one section: [(path, None) or (None, why not)]."""
    draw = Plots(HERE, PLOTS)
    plots = {
        "Accuracy: our models and the classic baselines": lambda: [draw.accuracy(datas)],
        "Interpreter latency against the other runtimes": lambda: [draw.ratio_bars(n, datas[n], n) for n in ("interpreter", "export") if datas.get(n)],
        "Station throughput and memory against SeisBench and ObsPy": lambda: [draw.ratio_bars(n, datas[n], n) for n in ("station", "mseed") if datas.get(n)],
        "Gating: duty cycle against recall": lambda: [draw.gating(datas)],
        "The estimator for every board": lambda: [(p, None) for p in draw.estimator(datas.get("estimator"))[0]],
        "Size against accuracy (Pareto)": lambda: [draw.pareto(datas)] + (
            [("results/plots/pareto.png", None)] if datas.get("pareto") is not None
            and os.path.exists(os.path.join(PLOTS, "pareto.png")) else []),
    }
    try:
        return plots[title]()
    except Exception as exc:  # a plot must never stop the report
        return [(None, "plot failed: %s: %s" % (type(exc).__name__, exc))]


def _section(section, datas, runs, manifest, shown):
    """One of the sections the report puts first: its plots, its scripts' status and results (added to ``shown``)."""
    title, members, what = section
    out = ["", "## " + title, "", "_%s._" % what, ""]
    for path, why in _plots_of(title, datas):
        out.append("![%s](%s)" % (title, path) if path else "_No plot: %s._" % why)
        out.append("")
    for n in members:
        out.append("- **%s**: %s" % (n, status_line(n, runs, manifest)))
    for n in members:
        if n in shown:
            continue
        md = os.path.join(RESULTS, n + ".md")
        if os.path.exists(md) and datas.get(n) is not None:
            with open(md) as f:
                out += ["", demote(f.read())]
            shown.add(n)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    ap.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="do not run these")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default=os.environ.get("BUDGET") or "quick",
                    help="arguments every script runs with (default: $BUDGET or quick)")
    ap.add_argument("--timeout", type=int, help="seconds per benchmark (default: %s)" % ", ".join(
        "%d for %s" % (v, k) for k, v in sorted(TIMEOUTS.items())))
    ap.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                    help="extra arguments for one benchmark, e.g. 'zoo=--folds 2' (repeatable)")
    ap.add_argument("--report-only", action="store_true", help="do not run anything; rebuild REPORT.md")
    a = ap.parse_args()
    extra = {}
    for item in a.args:
        if "=" not in item:
            ap.error("--args %r: expected NAME=ARGS" % item)
        k, v = item.split("=", 1)
        extra[k] = shlex.split(v)
    available = scripts()
    for n in (a.only or []) + a.skip + list(extra):
        if n not in available:
            ap.error("unknown benchmark %r; available: %s" % (n, ", ".join(available)))
    if a.budget not in BUDGETS:
        ap.error("BUDGET=%r: expected one of %s" % (a.budget, ", ".join(sorted(BUDGETS))))
    for n in a.only or []:
        if n in EXTERNAL:
            ap.error("%s is not run by make bench: %s" % (n, EXTERNAL[n]))
    manifest = load_manifest()
    runs = {}
    if not a.report_only:
        todo = [n for n in available if (not a.only or n in a.only) and n not in a.skip and n not in EXTERNAL]
        timeout = a.timeout or TIMEOUTS[a.budget]
        print("budget %s: running %d benchmarks (%s), %d s each at most; not run: %s" % (
            a.budget, len(todo), ", ".join(todo), timeout, ", ".join(sorted(EXTERNAL)) or "-"), flush=True)
        t0 = time.time()
        from fieldpick.train.progress import bar  # scripts done and time left, on a terminal only

        for n in bar(todo, desc="benchmarks", unit="script"):
            runs[n] = run_one(n, BUDGETS[a.budget].get(n, []) + extra.get(n, []), timeout,
                              a.budget + (" + " + " ".join(extra[n]) if extra.get(n) else ""))
            record(manifest, runs[n])
        print("all benchmarks: %.0f s wall" % (time.time() - t0), flush=True)
        os.makedirs(os.path.join(RESULTS, "tmp"), exist_ok=True)
        with open(os.path.join(RESULTS, "tmp", "run_all.json"), "w") as f:
            json.dump({"started": t0, "budget": a.budget, "seconds": time.time() - t0, "runs": runs}, f, indent=2,
                      default=str)
    path = build_report(runs, manifest, a.budget)
    print("wrote %s" % os.path.relpath(path, REPO))
    failed = [n for n, r in runs.items() if r["status"] in ("failed", "stale")]
    if failed:
        print("failed: %s (logs in benchmarks/results/tmp/logs/)" % ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
