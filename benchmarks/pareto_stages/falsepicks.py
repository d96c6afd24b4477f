"""What the false picks on the noise windows are: the model under study, then the models that may
second its picks (falsepicks.md, plots/falsepicks.png).

    .venv/bin/python benchmarks/pareto.py falsepicks --folds default=runs/default_long/cv,teacher=runs/lb/pn_asinh
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from .common import RESULTS, SEED, K, fold_split, load, log, publish, setup

STALTA_BAND_HZ = (1.0, 20.0)  # classic trigger: causal 4-pole Butterworth band, then recursive STA/LTA
STALTA_S = (0.5, 5.0)         # STA and LTA lengths, s; the first LTA length of a window is warm-up
STALTA_LEVELS = (2.0, 3.0, 4.0)
SECOND_S = 0.5                # a pick is seconded by another model's pick of either phase within this
FLAT_S = 0.5                  # a run of identical samples this long is a gap filled in the data set (zero pads)


def flat_runs(waves, fs, min_s=FLAT_S):
    """Per window of ``waves`` (N, C, T): the (first, last) samples of runs of identical values >= ``min_s`` long
    on any component that is not all zeros: stretches where the data set padded a trace, not ground motion."""
    out = []
    for w in waves:
        runs = set()
        for x in w:
            if not np.any(x):
                continue
            same = np.concatenate([[False], np.diff(x) == 0, [False]])
            edges = np.flatnonzero(np.diff(same.astype(np.int8)))
            for a, b in zip(edges[::2], edges[1::2]):  # same[a+1 .. b] -> samples a .. b are equal
                if b - a >= min_s * fs:
                    runs.add((int(a), int(b)))
        out.append(sorted(runs))
    return out


def _band(x, fs):
    """One component, demeaned and in the classic trigger's band (ObsPy, causal 4-pole Butterworth); float64."""
    from obspy.signal.filter import bandpass

    x = x.astype(np.float64)
    return bandpass(x - x.mean(), STALTA_BAND_HZ[0], STALTA_BAND_HZ[1], fs, corners=4, zerophase=False)


def stalta_traces(waves, fs):
    """ObsPy's recursive STA/LTA of each component of ``waves`` (N, 3, T) after the classic band-pass; (N, 3, T).

    A component that is all zeros (the vertical-only traces) gets a zero trace.
    """
    from obspy.signal.trigger import recursive_sta_lta

    out = np.zeros(waves.shape, dtype=np.float64)
    for i in range(waves.shape[0]):
        for c in range(waves.shape[1]):
            if np.any(waves[i, c]):
                out[i, c] = recursive_sta_lta(_band(waves[i, c], fs), int(STALTA_S[0] * fs), int(STALTA_S[1] * fs))
    return out


def _plot_zne(ax, t, trace, fs, lo=0, hi=None):
    """Z, N, E of ``trace`` (3, T) in the trigger's band, samples ``lo:hi``, each scaled to its peak, at y 2, 1, 0."""
    for c in range(3):
        if np.any(trace[c]):
            seg = _band(trace[c], fs)[lo:hi]
            ax.plot(t, 0.45 * seg / np.abs(seg).max() + 2 - c, lw=0.5, color="k")


def stalta_near(cft, sample, fs, before_s=0.5, after_s=1.0):
    """The largest STA/LTA of any component from ``before_s`` before ``sample`` to ``after_s`` after; NaN in warm-up."""
    if sample < STALTA_S[1] * fs:
        return float("nan")
    lo, hi = int(sample - before_s * fs), int(sample + after_s * fs) + 1
    return float(cft[:, max(lo, 0):hi].max())


def seconded(picks, others, fs, tol_s=SECOND_S):
    """For each (phase, sample, p) of ``picks``, whether ``others`` hold a pick of either phase within ``tol_s``."""
    at = np.array([q[1] for q in others], dtype=np.float64)
    return [bool(at.size and np.min(np.abs(at - s)) <= tol_s * fs) for _, s, _ in picks]


def run(args):
    """What the false picks on the NCEDC pre-P noise windows are.

    ``--folds NAME=DIR,NAME=DIR[,...]``: fold-model folders (``fold<i>/best.pt``
    of this script's folds); the first is the model under study, the second
    the independent model that may second its picks (e.g. the PhaseNet
    teacher: another architecture, trained apart).  Every noise window is
    picked by the fold model that never saw its station, with its tuned
    thresholds, exactly as the cross-validation counts false picks.  Each
    pick is then checked against evidence that owes nothing to the models
    under study's training: the other model's picks, and a classic
    recursive STA/LTA (ObsPy; 1-20 Hz, 0.5 s / 5 s) around it, with the same
    STA/LTA read at the labeled P of every event trace and at random instants
    of the noise windows for scale.  Writes ``benchmarks/results/<--out or
    falsepicks>.{json,md}`` and ``plots/<same>.png`` (the windows whose
    picks both checks support).
    """
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.crossval import station_folds
    from fieldpick.train.data.windows import load_real

    named = _named_folds(args.folds)
    cfg = TrainConfig()
    data = load_real()
    fs = float(data.events.fs)
    fold = station_folds(data.station, K, SEED)
    picks, missed, valid_s = _fold_picks(named, data, cfg, fold, fs)
    noise_cft = stalta_traces(data.noise.waveforms, fs)
    event_cft = stalta_traces(data.events.waveforms, fs)
    at_p = np.array([stalta_near(c, p, fs) for c, p in zip(event_cft, data.events.p_idx)])
    at_s = np.array([stalta_near(c, s, fs) if np.isfinite(s) else np.nan for c, s in zip(event_cft, data.events.s_idx)])
    misses = _misses(data, named, missed, at_p, at_s)
    rng = np.random.default_rng(SEED)
    lo = int(STALTA_S[1] * fs)
    hi = int(valid_s * fs) - int(1.0 * fs)
    at_random = np.array([stalta_near(noise_cft[i], rng.integers(lo, hi), fs)
                          for i in rng.integers(0, len(fold), 2000)])
    hours = len(fold) * valid_s / 3600.0
    flats = flat_runs(data.noise.waveforms, fs)
    rows = [_model_row(name, [n for n, _ in named if n != name], picks, noise_cft, flats, valid_s, fs, hours)
            for name in [n for n, _ in named]]
    scale = {"labeled_P": {str(v): float(np.mean(at_p >= v)) for v in STALTA_LEVELS},
             "random_noise_instant": {str(v): float(np.mean(at_random >= v)) for v in STALTA_LEVELS},
             "median_labeled_P": float(np.median(at_p)), "median_random": float(np.median(at_random))}
    out = args.out or "falsepicks"
    plot = os.path.join(RESULTS, "plots", out + ".png")
    shown = _plot_noise_windows(data, noise_cft, picks, rows[0], fs, plot)
    _plot_misses(data, misses["P"]["traces"], fs, os.path.join(RESULTS, "plots", out + "_missed_p.png"))
    meta = {"command": "benchmarks/pareto.py falsepicks --folds %s%s" % (args.folds, " --out " + out if args.out else ""),
            "noise_windows": len(fold), "noise_hours": hours, "misses": misses, "stalta": {"band_hz": STALTA_BAND_HZ,
            "sta_lta_s": STALTA_S}, "second_within_s": SECOND_S, "scale": scale, "plotted_windows": shown,
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lines = _markdown(meta, rows, misses, flats, valid_s, len(at_p), cfg.tolerance_s, out, len(shown), named[0][0])
    publish(out, meta, rows, lines)


def _named_folds(text):
    """``NAME=DIR,NAME=DIR[,...]`` -> [(name, folder)]; at least two."""
    named = []
    for item in text.split(","):
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SystemExit("falsepicks: --folds entry %r; give NAME=DIR[,NAME=DIR...]" % item)
        named.append((name, folder))
    if len(named) < 2:
        raise SystemExit("falsepicks: --folds needs the model under study and at least one other (NAME=DIR,NAME=DIR)")
    return named


def _fold_picks(named, data, cfg, fold, fs):
    """Each model's picks on every noise window by the fold model that never saw its station.

    Returns ``(picks, missed, valid_s)``: name -> per noise window
    [(phase, sample, probability)]; name -> {phase: traces whose labeled
    arrival it did not pick within the tolerance}; the picked length of a
    noise window, s.
    """
    from fieldpick.train.validate import predict, tune_thresholds

    picks, missed, valid_s = {}, {}, None
    for name, folder in named:
        per = [None] * len(fold)
        missed[name] = {"P": set(), "S": set()}
        for f in range(K):
            model, _, _ = load(os.path.join(folder, "fold%d" % f, "best.pt"))
            _, val, test = fold_split(data, f)
            tune_thresholds(model, val, cfg)  # the fold's own validation stations, as the cross-validation did
            events, epicks, npicks, seconds = predict(model, test, cfg)
            for i, w in zip(np.flatnonzero(fold == f), npicks):
                per[i] = w
            for i, w, p, s in zip(np.flatnonzero(fold == f), epicks, events.p_idx, events.s_idx):
                for ph, truth in (("P", p), ("S", s)):
                    if np.isfinite(truth) and not any(q == ph and abs(x - truth) <= cfg.tolerance_s * fs
                                                      for q, x, _ in w):
                        missed[name][ph].add(int(i))
            valid_s = seconds / len(npicks)
        picks[name] = per
        log.info("%s: %d picks on %d noise windows", name, sum(len(w) for w in per), len(per))
    return picks, missed, valid_s


def _misses(data, named, missed, at_p, at_s):
    """Per phase: the labeled arrivals every model misses, and what they look like."""
    snr = np.asarray(data.events.meta["snr_db"], dtype=float)
    vertical = np.asarray(data.events.meta["n_components"]) == 1
    misses = {}
    for ph, at in (("P", at_p), ("S", at_s)):
        labeled = np.flatnonzero(np.isfinite(data.events.p_idx if ph == "P" else data.events.s_idx))
        every = sorted(set.intersection(*[missed[n][ph] for n, _ in named]))
        misses[ph] = {"labeled": len(labeled), "by_model": {n: len(missed[n][ph]) for n, _ in named},
                      "by_every_model": len(every), "traces": every,
                      "snr_db_median": [float(np.median(snr[every])) if every else float("nan"),
                                        float(np.median(snr[labeled]))],
                      "vertical_only": [int(vertical[every].sum()), int(vertical[labeled].sum())],
                      "stalta_median": [float(np.nanmedian(at[every])) if every else float("nan"),
                                        float(np.nanmedian(at[labeled]))]}
    return misses


def _model_row(name, rest, picks, noise_cft, flats, valid_s, fs, hours):
    """One model's false picks, each checked against the other models (``rest``) and the classic trigger."""
    n_windows = len(picks[name])
    found = []
    for i, w in enumerate(picks[name]):
        sec = [any(v) for v in zip(*[seconded(w, picks[o][i], fs) for o in rest])] if w else []
        for (ph, s, p), second in zip(w, sec):
            found.append({"window": i, "phase": ph, "sample": int(s), "probability": float(p),
                          "seconded": bool(second), "stalta": stalta_near(noise_cft[i], s, fs),
                          "last_3s": bool(s >= (valid_s - 3.0) * fs),
                          "gap_edge": any(min(abs(s - a), abs(s - b)) <= fs for a, b in flats[i])})
    n = len(found)
    # windows that evidence independent of this model finds not empty: another model's pick with a classic
    # trigger (STA/LTA >= 3) there, or a padded gap in the data
    busy = {i for o in rest for i, w in enumerate(picks[o])
            for _, s, _ in w if stalta_near(noise_cft[i], s, fs) >= 3.0} | {i for i, r in enumerate(flats) if r}
    quiet = [i for i in range(n_windows) if i not in busy]
    quiet_picks = sum(len(picks[name][i]) for i in quiet)
    gapfree = [i for i, r in enumerate(flats) if not r]
    lt = np.array([f["stalta"] for f in found]) if found else np.zeros(0)
    ok = np.isfinite(lt)
    sec = np.array([f["seconded"] for f in found], dtype=bool)
    per_window = np.bincount([f["window"] for f in found], minlength=n_windows)
    top = np.sort(per_window)[::-1]
    row = {"model": name, "seconders": rest, "picks": n, "per_hour": n / hours,
           "P": sum(f["phase"] == "P" for f in found), "S": sum(f["phase"] == "S" for f in found),
           "windows_with_picks": int((per_window > 0).sum()),
           "windows_holding_half": int(np.searchsorted(np.cumsum(top), n / 2.0) + 1) if n else 0,
           "seconded": int(sec.sum()), "in_last_3s": sum(f["last_3s"] for f in found),
           "stalta_warmup": int((~ok).sum()),
           "stalta_at_least": {str(v): int((lt[ok] >= v).sum()) for v in STALTA_LEVELS},
           "seconded_and_stalta_3": int((sec & ok & (lt >= 3.0)).sum()),
           "at_gap_edge": sum(f["gap_edge"] for f in found),
           "quiet_windows": len(quiet), "quiet_picks": quiet_picks, "gapfree_windows": len(gapfree),
           "gapfree_per_hour": sum(len(picks[name][i]) for i in gapfree) / (len(gapfree) * valid_s / 3600.0),
           "quiet_per_hour": quiet_picks / (len(quiet) * valid_s / 3600.0) if quiet else float("nan"),
           "picks_list": found}
    row["unsupported_per_hour"] = (n - row["seconded_and_stalta_3"]) / hours
    log.info("%s: %.1f picks/h, %d seconded, %d with STA/LTA >= 3, both %d, %d at gap edges; %.1f/h on %d quiet "
             "windows", name, row["per_hour"], row["seconded"], row["stalta_at_least"]["3.0"],
             row["seconded_and_stalta_3"], row["at_gap_edge"], row["quiet_per_hour"], len(quiet))
    return row


def _markdown(meta, rows, misses, flats, valid_s, n_events, tolerance_s, out, n_shown, main_name):
    """The report's lines."""
    n_windows, hours, scale = meta["noise_windows"], meta["noise_hours"], meta["scale"]
    lines = [
        "# False picks on the NCEDC pre-P noise windows: what they are", "",
        "%d noise windows (%.2f h: the 29 s before each P, ending 1 s before it, picked up to %.1f s), each picked by "
        "the fold model that never saw its station, with thresholds tuned on its fold's validation stations, as the cross-validation counts "
        "false picks. Each pick is checked against two things its model did not learn from: a pick of either "
        "phase by the other model(s) within %.1f s (seconded), and a classic recursive STA/LTA (ObsPy; causal "
        "%g-%g Hz, %g s / %g s; the largest on any component from 0.5 s before to 1 s after the pick; the first "
        "%g s of a window is warm-up)." % (n_windows, hours, valid_s, SECOND_S, STALTA_BAND_HZ[0], STALTA_BAND_HZ[1],
                                           STALTA_S[0], STALTA_S[1], STALTA_S[1]), "",
        "`%s` (%s)" % (meta["command"], meta["when"]), "",
        "For scale, the same STA/LTA at the labeled P of the %d event traces (median %.1f) and at 2000 random "
        "instants of the noise windows (median %.1f):" % (n_events, scale["median_labeled_P"],
                                                         scale["median_random"]), "",
        "| STA/LTA at least | labeled P | random noise instant |", "|---|---|---|"]
    for v in STALTA_LEVELS:
        lines.append("| %g | %.0f %% | %.1f %% |" % (v, 100 * scale["labeled_P"][str(v)],
                                                     100 * scale["random_noise_instant"][str(v)]))
    lines += ["", "| model | seconded by | picks (P / S) | per hour | windows with picks | windows holding half "
              "| seconded | STA/LTA >= 2 / 3 / 4 | in warm-up | seconded and STA/LTA >= 3 | within 1 s of a padded gap "
              "| per hour, windows without padded gaps | per hour, quiet windows |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["stalta_at_least"]
        lines.append("| %s | %s | %d (%d / %d) | %.1f | %d | %d | %d | %d / %d / %d | %d | %d | %d | %.1f (%d windows) "
                     "| %.1f (%d windows) |" % (
                         r["model"], ", ".join(r["seconders"]), r["picks"], r["P"], r["S"], r["per_hour"],
                         r["windows_with_picks"], r["windows_holding_half"], r["seconded"], a["2.0"], a["3.0"],
                         a["4.0"], r["stalta_warmup"], r["seconded_and_stalta_3"], r["at_gap_edge"],
                         r["gapfree_per_hour"], r["gapfree_windows"], r["quiet_per_hour"], r["quiet_windows"]))
    lines += ["", "%d of the %d noise windows hold a padded gap: a run of identical samples of %g s or more, every one "
              "at the start of its trace (zeros, or the first value held: the recording began after the 90 s cut). The station never runs a window that holds a gap "
              "(edge/station.py), so it would make none of the picks on these windows. Quiet windows: no padded gap, "
              "and no pick of the other model(s) that the classic trigger supports (STA/LTA >= 3) - windows that "
              "evidence independent of the model in the row finds empty." % (
                  sum(1 for r in flats if r), n_windows, FLAT_S)]
    lines += ["", "## Arrivals that every model misses", "",
              "The event windows (the published 30 s crops), picked by the same fold models: arrivals no pick of "
              "their phase comes within %.1f s of. The signal-to-noise ratio is the data set's estimate on Z "
              "(`snr_db`); the STA/LTA is the classic trigger's largest value near the arrival." % tolerance_s, "",
              "| phase | labeled | missed, per model | missed by every model | their median SNR (all) "
              "| vertical-only among them (all) | their median STA/LTA (all) |", "|---|---|---|---|---|---|---|"]
    for ph, m in misses.items():
        lines.append("| %s | %d | %s | %d | %.1f dB (%.1f dB) | %d (%d) | %.1f (%.1f) |" % (
            ph, m["labeled"], ", ".join("%s %d" % kv for kv in m["by_model"].items()), m["by_every_model"],
            m["snr_db_median"][0], m["snr_db_median"][1], m["vertical_only"][0], m["vertical_only"][1],
            m["stalta_median"][0], m["stalta_median"][1]))
    lines += ["", "The P arrivals every model misses, 5 s either side of the label: "
              "`benchmarks/results/plots/%s_missed_p.png`." % out]
    lines += ["", "Plot: `benchmarks/results/plots/%s.png`, the %d windows where %s has the most picks that both checks "
              "support (traces: Z, N, E after the STA/LTA band; below: the STA/LTA)." % (out, n_shown, main_name)]
    return lines


def _plot_misses(data, traces, fs, path, half_s=5.0):
    """Plot each trace of ``traces`` (90 s event traces) ``half_s`` either side of its labeled P, in the STA/LTA band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not traces:
        return
    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 1.5 * len(traces)), squeeze=False)
    for ax, i in zip(axes[:, 0], traces):
        p = int(round(data.events.p_idx[i]))
        lo, hi = p - int(half_s * fs), p + int(half_s * fs)
        t = (np.arange(lo, hi) - p) / fs
        _plot_zne(ax, t, data.events.waveforms[i], fs, lo, hi)
        ax.axvline(0.0, color="C3", lw=1)
        ax.set_yticks([2, 1, 0])
        ax.set_yticklabels(["Z", "N", "E"])
        ax.set_xlim(-half_s, half_s)
        ax.set_title("trace %d (%s, SNR %.1f dB): labeled P at 0, missed by every model" % (
            i, data.station[i], float(data.events.meta["snr_db"][i])), fontsize=8)
    axes[-1, 0].set_xlabel("s from the labeled P")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_noise_windows(data, cft, picks, row, fs, path, n=6):
    """Plot the ``n`` noise windows with the most doubly supported picks of ``row``'s model; returns their indices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = [f["window"] for f in row["picks_list"]
            if f["seconded"] and np.isfinite(f["stalta"]) and f["stalta"] >= 3.0]
    if not both:
        return []
    windows = [int(w) for w in np.argsort(-np.bincount(both), kind="stable")[:n] if np.bincount(both)[w] > 0]
    fig, axes = plt.subplots(len(windows), 1, figsize=(12, 2.1 * len(windows)), squeeze=False)
    t = np.arange(data.noise.waveforms.shape[-1]) / fs
    colours = {"P": "C3", "S": "C0"}
    for ax, i in zip(axes[:, 0], windows):
        _plot_zne(ax, t, data.noise.waveforms[i], fs)
        ax.plot(t, -1.2 + 0.25 * cft[i].max(axis=0), lw=0.7, color="C2")
        for k, per in enumerate(picks.values()):
            for ph, s, _ in per[i]:
                ax.axvline(s / fs, color=colours[ph], ls="-" if k == 0 else "--", lw=1.2 if k == 0 else 0.9)
        ax.set_yticks([2, 1, 0, -1.2])
        ax.set_yticklabels(["Z", "N", "E", "STA/LTA"])
        ax.set_xlim(0, t[-1])
        ax.set_title("noise window %d (%s): picks of %s (solid) and %s (dashed); red P, blue S" % (
            i, data.station[i], row["model"],
            ", ".join(row["seconders"])), fontsize=8)
    axes[-1, 0].set_xlabel("s from the window start (the labeled P is 1 s after the end)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return windows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py falsepicks", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", required=True, metavar="NAME=DIR,NAME=DIR...",
                    help="the model under study first, then the models that may second its picks")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default falsepicks)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
