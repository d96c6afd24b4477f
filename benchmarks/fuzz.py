"""Mutation fuzzing of every fieldpick decoder: inputs, crashes, hangs and peak memory.

A corpus of valid inputs is made at start (miniSEED 2 written by ObsPy when
it is installed and by a small writer here, miniSEED 3 records, the bundled
and the test .tflite models, signed packets and acks, journal segments,
model cards, station configs, station tables, SeedLink state files).  A
seeded mutator changes each input (bit flips, interesting values, inserted,
deleted, repeated or spliced ranges, truncation) and hands it to the
decoder.  A decoder passes an input when it returns or raises a
``FieldpickError``; any other exception is a crash.

Isolation without a process per input: each decoder runs in worker
processes (``fuzz.py --worker``, fresh interpreters that import only the
decoder's side of fieldpick) that take many inputs each.  In a worker an
input that runs past ``--hang-s`` seconds of CPU time (default 2 s, a
SIGPROF timer: on a shared machine wall-clock time would count the other
processes) is a hang; a loop inside C that never returns to Python meets
RLIMIT_CPU a second or two later and the worker is killed, also counted as
a hang.  The worker's address space is limited to what it had mapped when
ready plus ``--budget-mib`` (the board budget, default 256 MiB), so a huge
allocation fails at once (a MemoryError: a crash), and an input that takes
its peak RSS over the budget is counted as over budget.  After a hang, an
input over budget or a worker killed by a signal (counted as a crash) a
fresh worker continues with the next input; the index of the running input
is kept in a shared file, so a dead worker's input is known and saved.
Input i of a decoder is made from (decoder, seed, i) alone, so every
reported input can be made again.  Peak RSS is the largest VmHWM of the
decoder's workers; tracemalloc is not used (it slows the decoders
several times).

    .venv/bin/python benchmarks/fuzz.py [--inputs 100000] [--seed 1] [--only mseed2,tflite]
                                        [--jobs 2] [--minutes 60] [--budget-mib 256] [--save-crashes DIR]

Results go to benchmarks/results/fuzz.json and fuzz.md (per decoder: inputs,
crashes with their first lines, hangs, slowest input, peak RSS).
``tests/edge/test_fuzz_quick.py`` runs a few hundred inputs of each decoder
through the same code.
The corpora, the mutator and the decoders are in ``benchmarks/fuzz_targets.py``.
"""

import argparse
import json
import math
import os
import platform
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # fuzz_targets beside this file, also when loaded by path

from fuzz_targets import _SCRATCH, DECODERS, SELFTESTS, _lookup, make_input, mutate  # noqa: E402

__all__ = ["DECODERS", "SELFTESTS", "make_input", "mutate", "fuzz", "write_results", "main"]


# ---------------------------------------------------------------- the worker


class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _crash_key(exc):
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return "%s at %s:%d: %s" % (type(exc).__name__, os.path.basename(where.filename), where.lineno, str(exc)[:120])


def _worker_main():
    """``fuzz.py --worker``: read JSON commands on stdin, run inputs, answer one JSON line each.

    ``init`` (decoder, seed, corpus file, limits) checks the corpus and sets the
    address-space limit; ``run`` (start, stop, deadline) runs inputs until stop,
    the deadline, a hang (SIGPROF after ``hang_s`` CPU seconds; a loop inside C
    that never returns to Python meets RLIMIT_CPU a second later and is killed)
    or an input that took the peak RSS over the budget: after those two the
    worker answers and exits, and the supervisor starts a fresh one.  The index
    of the running input is kept in a shared file, so a worker that dies (a
    signal, the CPU limit) is attributed to its input.
    """
    import logging
    import mmap
    import pickle

    logging.disable(logging.CRITICAL)  # the decoders log every skipped record: millions of lines
    from fieldpick.edge.errors import FieldpickError

    state = {}
    out = sys.stdout
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "init":
            with open(cmd["corpus"], "rb") as f:
                state["corpus"] = pickle.load(f)
            state.update(name=cmd["name"], seed=cmd["seed"], hang_s=cmd["hang_s"],
                         budget_kib=int(cmd["budget_mib"] * 1024), run=_lookup(cmd["name"])[1])
            pf = open(cmd["progress"], "r+b")
            state["progress"] = mmap.mmap(pf.fileno(), 16)
            state["status"] = os.open("/proc/self/status", os.O_RDONLY)
            bad = []
            for c in state["corpus"]:  # the corpus itself must pass
                try:
                    state["run"](c)
                except FieldpickError:
                    pass
                except Exception as exc:
                    bad.append(_crash_key(exc))
            signal.signal(signal.SIGPROF, _alarm)
            rss = _hwm_kib(state["status"])
            struct.pack_into("<q", state["progress"], 8, rss)
            vm = _vm_kib()
            if vm:  # room for the budget above what is mapped now; past it an allocation fails at once
                limit = (vm + state["budget_kib"]) * 1024
                resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
            out.write(json.dumps({"ok": not bad, "corpus_errors": bad, "ready_rss_mib": rss / 1024.0}) + "\n")
        else:
            def emit(event):
                out.write(json.dumps(event) + "\n")
                out.flush()

            out.write(json.dumps(_worker_run(state, cmd["start"], cmd["stop"], cmd.get("deadline"),
                                             cmd.get("save_dir"), FieldpickError, emit)) + "\n")
        out.flush()
        if cmd["cmd"] == "run" and cmd.get("exit_after"):
            break
    return 0


def _prof_clock():
    """The process CPU clock RLIMIT_CPU is checked against (user + system time as the kernel samples
    it), seconds.  It runs ahead of ``time.process_time()`` by a fraction of a percent, which over a
    long-lived worker adds up to seconds: a limit set from ``process_time`` would fire early."""
    try:
        return time.clock_gettime(_PROF_CLOCK)
    except OSError:
        return time.process_time() * 1.05 + 1.0


#: the Linux clock id of this process's CPUCLOCK_PROF: ~pid << 3 with pid 0
_PROF_CLOCK = -8


def _hwm_kib(fd):
    """The peak RSS of this process (VmHWM), KiB.  Not ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a worker started by a large process would report its size."""
    b = os.pread(fd, 4096, 0)
    k = b.index(b"VmHWM:")
    return int(b[k + 6:b.index(b"kB", k)])


def _vm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _worker_run(state, start, stop, deadline, save_dir, FieldpickError, emit):
    """Run inputs start..stop; each finding is sent at once (``emit``), so none is lost if the
    worker dies later; returns the closing line."""
    name, seed, corpus, run, hang_s = state["name"], state["seed"], state["corpus"], state["run"], state["hang_s"]
    progress = state["progress"]
    cpu_room = int(math.ceil(hang_s)) + 1  # RLIMIT_CPU: 1-2 s after the SIGPROF limit
    slowest, i, stopped, saved = 0.0, start, None, 0
    hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)[1]
    while i < stop:
        if deadline is not None and time.time() > deadline:
            break
        data = make_input(name, seed, i, corpus)
        struct.pack_into("<q", progress, 0, i)
        t = time.process_time()
        soft = int(_prof_clock()) + cpu_room
        if hard_cpu == resource.RLIM_INFINITY or soft < hard_cpu:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard_cpu))
        signal.setitimer(signal.ITIMER_PROF, hang_s)
        try:
            run(data)
        except FieldpickError:
            pass
        except _Hang:
            stopped = "hang"
        except Exception as exc:  # a crash: anything that is not a FieldpickError
            emit({"e": "crash", "i": i, "key": _crash_key(exc)})
            if saved < 20:
                _save(save_dir, name, "crash", i, data)
                saved += 1
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        dt = time.process_time() - t
        if dt > slowest:
            slowest = dt
            emit({"e": "slow", "i": i, "s": dt})
        i += 1
        if stopped == "hang":
            emit({"e": "hang", "i": i - 1, "cpu_s": dt})
            _save(save_dir, name, "hang", i - 1, data)
            break
        hwm = _hwm_kib(state["status"])
        struct.pack_into("<q", progress, 8, hwm)
        if hwm > state["budget_kib"]:
            emit({"e": "memory", "i": i - 1})
            _save(save_dir, name, "memory", i - 1, data)
            stopped = "memory"
            break
    return {"e": "end", "next": i, "stopped": stopped}


# ---------------------------------------------------------------- the supervisor


class _Worker(object):
    """A ``fuzz.py --worker`` process for one decoder, with its progress file."""

    def __init__(self, name, seed, corpus_path, hang_s, budget_mib, progress_path):
        import subprocess

        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        self.progress_path = progress_path
        self.usage = None
        self.ready = self._send({"cmd": "init", "name": name, "seed": seed, "corpus": corpus_path,
                                 "hang_s": hang_s, "budget_mib": budget_mib, "progress": progress_path})
        self.ready = self.ready and self._line()
        if not self.ready:
            self.close()
            raise RuntimeError("the %s worker died while starting (exit %s)" % (name, self.returncode))
        if not self.ready["ok"]:
            self.close()
            raise RuntimeError("the %s corpus does not pass: %s" % (name, self.ready["corpus_errors"]))

    def _send(self, cmd):
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def _line(self):
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def run(self, start, stop, deadline, save_dir):
        """The events of a run (crash, hang, memory, slow), and its end line, or None when the worker died."""
        events = []
        if self._send({"cmd": "run", "start": start, "stop": stop, "deadline": deadline, "save_dir": save_dir}):
            while True:
                ev = self._line()
                if ev is None or ev["e"] == "end":
                    return events, ev
                events.append(ev)
        return events, None

    def last_index(self):
        """The input the worker ran last, and its peak RSS then (KiB)."""
        with open(self.progress_path, "rb") as f:
            return struct.unpack("<qq", f.read(16))

    def close(self):
        """End the worker (closing its input ends it; a stuck one is killed); its rusage in ``usage``."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        t_end = time.time() + 30
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > t_end:
                self.proc.kill()
            time.sleep(0.01)
        self.usage = usage
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self.proc.returncode = self.returncode
        self.proc.stdout.close()


def fuzz(name, inputs, seed=1, hang_s=2.0, save_dir=None, deadline=None, budget_mib=256.0):
    """Run ``inputs`` mutated inputs through decoder ``name`` in worker processes (fewer if the wall
    clock passes ``deadline``, a ``time.time()``); returns a result dict.

    A worker runs inputs until one hangs, takes its RSS over ``budget_mib`` or
    kills it (a signal, the CPU limit); that input is counted and a fresh
    worker goes on with the next one.
    """
    import pickle

    corpus = _lookup(name)[0]()
    tmp = tempfile.mkdtemp(prefix="fpfuzz-w", dir=_SCRATCH)
    corpus_path, progress_path = os.path.join(tmp, "corpus.pickle"), os.path.join(tmp, "progress")
    with open(corpus_path, "wb") as f:
        pickle.dump(corpus, f)
    with open(progress_path, "wb") as f:
        f.write(struct.pack("<qq", -1, 0))
    res = {"crash_kinds": {}, "hangs": 0, "hang_inputs": [], "suspects": [], "not_repeated": [], "memory": 0,
           "died": 0, "slowest": [0.0, None], "cpu_s": 0.0,
           "peak": 0.0, "ready": 0.0, "workers": 0}
    t_start = time.perf_counter()
    i, worker = 0, None
    try:
        while i < inputs and (deadline is None or time.time() <= deadline):
            if worker is None:
                worker = _Worker(name, seed, corpus_path, hang_s, budget_mib, progress_path)
                res["ready"] = max(res["ready"], worker.ready["ready_rss_mib"])
                res["workers"] += 1
            events, end = worker.run(i, inputs, deadline, save_dir)
            _tally(res, events)
            if end is not None and not end["stopped"]:
                i = end["next"]
                if i >= inputs or (deadline is not None and time.time() > deadline):
                    break
                continue
            k, hwm = worker.last_index()  # the worker died on input k, or k was its last
            res["peak"] = max(res["peak"], hwm / 1024.0)
            worker.close()
            _tally(res, [], worker.usage)
            if end is None:
                if worker.returncode == -getattr(signal, "SIGXCPU", -1):
                    res["suspects"].append([max(i, k), "RLIMIT_CPU"])
                    kind = "hang"
                else:
                    sig = -worker.returncode
                    key = "worker died (%s)" % (signal.Signals(sig).name if sig > 0 else "exit %d" % worker.returncode)
                    res["crash_kinds"][key] = res["crash_kinds"].get(key, 0) + 1
                    res["died"] += 1
                    kind = "crash"
                k = max(i, k)
                _save(save_dir, name, kind, k, make_input(name, seed, k, corpus))
                i = k + 1
            else:
                i = end["next"]
            worker = None
            _confirm_hangs(res, name, seed, corpus_path, hang_s, budget_mib, progress_path)
    finally:
        if worker is not None:
            res["peak"] = max(res["peak"], worker.last_index()[1] / 1024.0)
            worker.close()
            _tally(res, [], worker.usage)
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - t_start
    cpu_s = res["cpu_s"]
    return {"decoder": name, "inputs": i, "corpus": len(corpus), "seed": seed,
            "crashes": sum(res["crash_kinds"].values()), "crash_kinds": res["crash_kinds"], "hangs": res["hangs"],
            "hang_s": hang_s, "hang_inputs": res["hang_inputs"][:20], "hangs_not_repeated": res["not_repeated"],
            "over_budget": res["memory"], "budget_mib": budget_mib, "workers": res["workers"],
            "worker_deaths": res["died"], "slowest_s": round(res["slowest"][0], 4), "slowest_input": res["slowest"][1],
            "seconds": round(elapsed, 1), "cpu_s": round(cpu_s, 1),
            "inputs_per_s": round(i / elapsed, 1) if elapsed > 0 else None,
            "inputs_per_cpu_s": round(i / cpu_s, 1) if cpu_s > 0 else None,
            "peak_rss_mib": round(res["peak"], 1), "ready_rss_mib": round(res["ready"], 1)}


def _confirm_hangs(res, name, seed, corpus_path, hang_s, budget_mib, progress_path):
    """Run each suspected hang again, alone, in a fresh worker: a hang is counted when it repeats.

    Inputs are deterministic, so a real hang always repeats; on a virtual machine short of CPU the
    kernel now and then charges a process for time it did not run (seen here: inputs of 0.03 s
    stopped by the 2 s limit), and those are listed as not repeated instead."""
    while res["suspects"]:
        k, how = res["suspects"].pop(0)
        w = _Worker(name, seed, corpus_path, hang_s, budget_mib, progress_path)
        events, end = w.run(k, k + 1, None, None)
        w.close()
        _tally(res, [], w.usage)
        again = end is None and w.returncode == -getattr(signal, "SIGXCPU", -1) or any(
            ev["e"] == "hang" for ev in events)
        if again:
            res["hangs"] += 1
            res["hang_inputs"].append([k, how])
        else:
            res["not_repeated"].append([k, how])


def _tally(res, events, usage=None):
    for ev in events:
        if ev["e"] == "crash":
            res["crash_kinds"][ev["key"]] = res["crash_kinds"].get(ev["key"], 0) + 1
        elif ev["e"] == "hang":
            res["suspects"].append([ev["i"], round(ev["cpu_s"], 3)])
        elif ev["e"] == "memory":
            res["memory"] += 1
        elif ev["e"] == "slow" and ev["s"] > res["slowest"][0]:
            res["slowest"] = [ev["s"], ev["i"]]
    if usage is not None:  # a finished worker: its CPU time, start-up included
        res["cpu_s"] += usage.ru_utime + usage.ru_stime


def _save(save_dir, name, kind, i, data):
    if not save_dir:
        return
    os.makedirs(save_dir, exist_ok=True)
    with open(os.path.join(save_dir, "%s-%s-%d.bin" % (name, kind, i)), "wb") as f:
        f.write(data)


def _child(args):
    name, inputs, seed, hang_s, save_dir, minutes, budget_mib = args
    deadline = time.time() + 60.0 * minutes if minutes else None
    return fuzz(name, inputs, seed, hang_s, save_dir, deadline, budget_mib)


def write_results(results, command, path_json, path_md, notes=()):
    doc = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "command": command,
           "python": platform.python_version(), "machine": platform.machine(), "results": results}
    with open(path_json, "w") as f:
        json.dump(doc, f, indent=1)
    lines = ["# Fuzzing the decoders", "",
             "Mutation fuzzing (`benchmarks/fuzz.py`): a seeded mutator over a corpus of valid inputs made at "
             "start (input i of a decoder is the same bytes in any run with the same seed); each decoder runs in "
             "worker processes that take many inputs each.  A crash is any exception other than a "
             "`FieldpickError`, or a worker killed by a signal; a hang an input running over the CPU-time limit "
             "(SIGPROF; RLIMIT_CPU ends a loop that never returns to Python) that does so again when run alone in "
             "a fresh worker; an input over budget one that "
             "took the worker's peak RSS over the board budget (its address space is limited to what it had "
             "mapped plus the budget, so a larger allocation fails at once).  After a hang, a kill or an input "
             "over budget a fresh worker goes on.  Peak RSS is the largest of the decoder's workers "
             "(VmHWM, a fresh interpreter with numpy and fieldpick); inputs per CPU second count the "
             "workers' CPU time, inputs/s the wall clock on a machine shared with other work.", "",
             "Command: `%s` (%s, Python %s, %s)." % (command, doc["date"], doc["python"], doc["machine"]), "",
             "| decoder | inputs | crashes | hangs (> %g s CPU) | over budget (%g MiB) | slowest input, CPU s | "
             "inputs per CPU s | inputs/s | workers | peak RSS, MiB |" % (results[0]["hang_s"], results[0]["budget_mib"]),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append("| %s | %d | %d | %d | %d | %.3f | %s | %s | %d | %.0f |" % (
            r["decoder"], r["inputs"], r["crashes"], r["hangs"], r["over_budget"], r["slowest_s"],
            r["inputs_per_cpu_s"], r["inputs_per_s"], r["workers"], r["peak_rss_mib"]))
    for r in results:
        for k, n in sorted(r["crash_kinds"].items()):
            lines.append("")
            lines.append("- %s: %d x %s" % (r["decoder"], n, k))
        if r.get("hangs_not_repeated"):
            lines.append("")
            lines.append("- %s: %d inputs stopped by the CPU limit ran in time when run again alone (not counted "
                         "as hangs): %s" % (r["decoder"], len(r["hangs_not_repeated"]), ", ".join(
                             "input %d (%s)" % (k, how if isinstance(how, str) else "%.2f s" % how)
                             for k, how in r["hangs_not_repeated"])))
    lines += [""] + list(notes) if notes else []
    with open(path_md, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=100000, help="mutated inputs per decoder (default 100000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", help="comma-separated decoders (default: all): " + ", ".join(DECODERS))
    p.add_argument("--inputs-for", action="append", default=[], metavar="NAME=N",
                   help="a different number of inputs for one decoder")
    p.add_argument("--hang-s", type=float, default=2.0, help="CPU time limit per input, seconds (default 2)")
    p.add_argument("--budget-mib", type=float, default=256.0,
                   help="peak RSS allowed per worker, MiB (default 256: the model budget of the smallest board)")
    p.add_argument("--jobs", type=int, default=1, help="decoders fuzzed at the same time (one worker each)")
    p.add_argument("--minutes", type=float, help="stop each decoder after this many minutes of wall clock "
                   "(it reports the inputs it ran)")
    p.add_argument("--minutes-for", action="append", default=[], metavar="NAME=M",
                   help="a different time limit for one decoder")
    p.add_argument("--save-crashes", metavar="DIR", help="write crashing and hanging inputs here")
    p.add_argument("--out", default=os.path.join(HERE, "results", "fuzz"), help="results path without extension")
    ns = p.parse_args(argv)
    names = ns.only.split(",") if ns.only else list(DECODERS)
    unknown = [n for n in names if n not in DECODERS and n not in SELFTESTS]
    if unknown:
        p.error("unknown decoder(s) %s; choose from %s" % (", ".join(unknown), ", ".join(DECODERS)))
    per = {n: ns.inputs for n in names}
    for item in ns.inputs_for:
        k, _, v = item.partition("=")
        per[k] = int(v)
    minutes = {n: ns.minutes for n in names}
    for item in ns.minutes_for:
        k, _, v = item.partition("=")
        minutes[k] = float(v)
    # each decoder's clock starts when its supervisor does (the deadline is passed as a duration)
    jobs = [(n, per[n], ns.seed, ns.hang_s, ns.save_crashes, minutes[n], ns.budget_mib) for n in names]
    from concurrent.futures import ThreadPoolExecutor, as_completed

    command = "benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    with ThreadPoolExecutor(max(1, ns.jobs)) as pool:  # threads only wait: the work is in the workers
        for fut in as_completed([pool.submit(_child, j) for j in jobs]):
            r = fut.result()
            results.append(r)
            write_results(results, command.strip(), ns.out + ".json", ns.out + ".md")  # what is done so far
            sys.stderr.write("%-15s %7d inputs  %d crashes  %d hangs  %d over budget  slowest %.3f s  %s/CPU s  "
                             "%.0f/s  peak %.0f MiB\n" % (
                                 r["decoder"], r["inputs"], r["crashes"], r["hangs"], r["over_budget"], r["slowest_s"],
                                 r["inputs_per_cpu_s"], r["inputs_per_s"] or 0, r["peak_rss_mib"]))
    results.sort(key=lambda r: names.index(r["decoder"]))
    write_results(results, command.strip(), ns.out + ".json", ns.out + ".md")
    return 1 if any(r["crashes"] or r["hangs"] or r["over_budget"] for r in results) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.exit(_worker_main())
    sys.exit(main())
