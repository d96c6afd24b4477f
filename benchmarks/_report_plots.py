"""The plots of benchmarks/REPORT.md, drawn from the results' JSON, and the helpers that read rows from it."""

import math
import os
import re


def flatten(d, prefix=""):
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are left out."""
    out = {}
    for k, v in (d or {}).items():
        key = prefix + str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


def rows_of(data):
    """The first list of row objects in a result (``rows``, ``results``, ... or any list of dicts)."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if not isinstance(data, dict):
        return []
    for key in ("rows", "results", "runtimes", "models", "profiles", "validation", "boards"):
        if isinstance(data.get(key), list) and data[key] and isinstance(data[key][0], dict):
            return data[key]
    for v in data.values():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return v
    # a table written as an object of objects: {"runner/mode": {...}, ...}
    for v in data.values():
        if isinstance(v, dict) and len(v) > 1 and all(isinstance(x, dict) for x in v.values()):
            return [dict(x, name=k) for k, x in v.items()]
    return []


def label_of(row):
    flat = flatten(row)
    for key in ("name", "model", "architecture", "baseline", "method", "runtime", "backend", "reader",
                "workload", "board", "profile", "pipeline", "gate"):
        if isinstance(flat.get(key), str):
            extra = flat.get("dataset") or flat.get("runtime") if key not in ("runtime",) else None
            return flat[key] + (" (%s)" % extra if isinstance(extra, str) and extra != flat[key] else "")
    return "?"


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: the plots this script draws (file stems under results/plots/); scripts' own plots are left alone
DRAWN = ["accuracy_f1", "*_latency", "*_ratio", "gating", "estimator_validation", "estimator_boards", "zoo_size_f1"]


RATIO = re.compile(r"(^|[._])(ratio|speedup)")


def _f1(flat):
    for key in ("pooled.f1", "f1", "scores.f1", "P_f1", "pooled.P_f1", "scores.phases.P.f1", "P.f1"):
        if number(flat.get(key)):
            return flat[key], key
    cands = [k for k in flat if k.endswith("f1") and number(flat[k])]
    return (flat[cands[0]], cands[0]) if cands else (None, None)


class Plots:
    """Draws into ``plots`` (a folder under ``here``, the benchmarks folder); each method returns the PNG's
    path relative to ``here`` (or, where it says so, ``(path, why not)``)."""

    def __init__(self, here, plots):
        self.here, self.plots = here, plots

    def save(self, fig, name):
        os.makedirs(self.plots, exist_ok=True)
        path = os.path.join(self.plots, name + ".png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        _plt().close(fig)
        return os.path.relpath(path, self.here)

    def bar_plot(self, name, title, labels, values, xlabel, log=False, ref=None):
        plt = _plt()
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.4))
        ax.barh(range(len(labels)), values, color="#4477aa")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        if ref is not None:
            ax.axvline(ref, color="k", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        return self.save(fig, name)

    def ratio_bars(self, name, data, title):
        """Ratios against the peer measured in the same run (ours / peer), as bars around 1.

        Grouped latencies (a row key like ``latency_ms: {runtime: ms}``) become one
        bar per runtime and row; otherwise the rows' first ratio column; otherwise
        the result's top-level ratios.
        """
        rows = [flatten(r) for r in rows_of(data)]
        groups = {}
        for r in rows:
            for k, v in r.items():
                if "." in k and number(v):
                    prefix = k.rsplit(".", 1)[0]
                    if "latency" in prefix or prefix.endswith("_ms") or prefix.endswith("_s"):
                        groups.setdefault(prefix, set()).add(k.rsplit(".", 1)[1])
        if groups:
            prefix = max(groups, key=lambda p: len(groups[p]))
            series = sorted(groups[prefix])
            labels, values = [], []
            for r in rows:
                for sname in series:
                    v = r.get(prefix + "." + sname)
                    if number(v):
                        labels.append("%s: %s" % (r.get("architecture") or r.get("model") or r.get("name") or "?", sname))
                        values.append(v)
            if labels:
                return self.bar_plot(name + "_latency", "%s: %s (lower is faster)" % (title, prefix), labels, values,
                                prefix, log=True), None
        keys = [k for k in (rows[0] if rows else {}) if RATIO.search(k.lower()) and number(rows[0][k])]
        if keys:
            key = keys[0]
            pairs = [(label_of(r), r[key]) for r in rows if number(r.get(key))]
            return self.bar_plot(name + "_ratio", "%s: %s" % (title, key), [p[0] for p in pairs], [p[1] for p in pairs],
                            key + " (1 = the peer)", log=True, ref=1.0), None
        top = {k: v for k, v in (data.items() if isinstance(data, dict) else []) if RATIO.search(k.lower()) and number(v)}
        if top:
            return self.bar_plot(name + "_ratio", "%s: ratios against the peer" % title, list(top), list(top.values()),
                            "ratio (1 = the peer)", log=True, ref=1.0), None
        return None, "no latency group or ratio in %s.json" % name

    def accuracy(self, datas):
        labels, values, keys = [], [], set()
        for name in ("zoo", "accuracy"):
            for row in rows_of(datas.get(name)):
                flat = flatten(row)
                v, k = _f1(flat)
                if v is not None:
                    labels.append("%s [%s]" % (label_of(row), name))
                    values.append(v)
                    keys.add(k)
        if not labels:
            return None, "no F1 in zoo.json or accuracy.json"
        return self.bar_plot("accuracy_f1", "F1 (%s)" % ", ".join(sorted(keys)), labels, values, "F1"), None

    def pareto(self, datas):
        pts = []
        sizes = {}
        for row in rows_of(datas.get("export")):
            flat = flatten(row)
            b = [flat[k] for k in flat if "int8" in k and "bytes" in k and number(flat[k])]
            if b and isinstance(flat.get("architecture"), str):
                sizes[flat["architecture"]] = b[0]
        for row in rows_of(datas.get("zoo")):
            flat = flatten(row)
            f1, _ = _f1(flat)
            params = flat.get("parameters") or flat.get("params")
            if f1 is not None and number(params):
                pts.append((label_of(row), params, f1))
        if not pts:
            return None, "no rows with parameters and F1 in zoo.json"
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 4))
        for lab, x, y in pts:
            ax.scatter(x, y, color="#aa3377")
            ax.annotate(lab + ("\n%.0f kB int8" % (sizes[lab] / 1e3) if lab in sizes else ""), (x, y), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        front, best = [], -1.0
        for _lab, x, y in sorted(pts, key=lambda p: p[1]):
            if y > best:
                front.append((x, y))
                best = y
        ax.plot([p[0] for p in front], [p[1] for p in front], color="#aa3377", lw=0.8, ls="--", label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("F1 (zoo, pooled)")
        ax.set_title("size against accuracy", fontsize=10)
        ax.legend(fontsize=8)
        return self.save(fig, "zoo_size_f1"), None

    def gating(self, datas):
        for name, data in datas.items():
            rows = [flatten(r) for r in rows_of(data)]
            if not rows:
                continue
            dk = [k for k in rows[0] if "duty" in k.lower()]
            rk = [k for k in rows[0] if "recall" in k.lower()]
            if dk and rk:
                pts = sorted((r[dk[0]], r[rk[0]], label_of(r)) for r in rows
                             if number(r.get(dk[0])) and number(r.get(rk[0])))
                if pts:
                    plt = _plt()
                    fig, ax = plt.subplots(figsize=(6, 4))
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="#228833")
                    for x, y, lab in pts:
                        ax.annotate(lab, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
                    ax.set_xlabel(dk[0])
                    ax.set_ylabel(rk[0])
                    ax.set_title("gating: duty cycle against recall (%s.json)" % name, fontsize=10)
                    return self.save(fig, "gating"), None
        return None, "no result has rows with both a duty-cycle and a recall column (expected from station.py)"

    def estimator(self, data):
        if not data:
            return [], "no estimator.json"
        out = []
        val = [r for r in data.get("validation", []) + data.get("interpreter_validation", []) if "predicted_s" in r]
        if val:
            plt = _plt()
            fig, ax = plt.subplots(figsize=(5, 4.5))
            xs = [r["measured_s"] * 1e3 for r in val]
            ys = [r["predicted_s"] * 1e3 for r in val]
            ax.scatter(xs, ys, color="#4477aa")
            for r, x, y in zip(val, xs, ys):
                ax.annotate(r["workload"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            lo, hi = min(xs + ys) / 1.5, max(xs + ys) * 1.5
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="predicted = measured")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("measured ms per window")
            ax.set_ylabel("predicted ms per window")
            ax.set_title("estimator on this machine", fontsize=10)
            ax.legend(fontsize=8)
            out.append(self.save(fig, "estimator_validation"))
        boards = [b for b in data.get("boards", []) if b.get("runtime") == "numpy"]
        if boards:
            model = boards[0]["model"]
            sel = [b for b in boards if b["model"] == model]
            out.append(self.bar_plot("estimator_boards", "numpy runtime, %s: latency per window" % model,
                                [b["board"] for b in sel], [b["latency_s"] * 1e3 for b in sel], "ms per window (estimate)",
                                log=True))
        return out, None
