"""What a station bundle runs: ``python3 fieldpick-NAME.pyz selftest`` and the station verbs.

``selftest`` checks, on the board itself, everything the bundle can check and
says plainly what it could not:

1. Python (>= 3.8) and the machine (``--expect-machine aarch64`` under emulation);
2. numpy: version, and an int8 convolution computed through float32 matmul
   equal to the exact integer answer (catches a broken BLAS or rounding);
3. the bundle's files: every sha256 in its manifest;
4. every module of ``fieldpick.edge`` imports;
5. the model card validates and the model file's sha256 matches it;
6. the numpy interpreter loads the model and returns, for a seeded window,
   outputs of the card's shape bit-identical to those recorded when the
   bundle was built (the int8 runtime is exact, so any difference is a fault);
7. the demo stream (5 synthetic minutes, seeded) runs through the station
   pipeline and gives the same picks as when the bundle was built (recorded in
   its manifest), within 2 samples and 0.05 in probability.

Each check passes, fails, or is skipped with the reason (a part that is not
in this build).  Exit status: 0 all checks ran and passed; 1 a check failed;
3 nothing failed but some checks could not run (never reported as a pass).

Any other verb (``run``, ``demo``, ``card``, ``bench``, ...) goes to the
``fieldpick`` command line inside the bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from contextlib import redirect_stdout

import numpy as np

__all__ = ["MANIFEST", "Check", "run_selftest", "main"]

#: name of the bundle manifest inside fieldpick/boards/
MANIFEST = "bundle.json"
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class Check:
    """One selftest item: a name, a status and a line of detail."""

    def __init__(self, name, status, detail):
        self.name, self.status, self.detail = name, status, detail

    def to_dict(self):
        return {"name": self.name, "status": self.status, "detail": self.detail}


def _package_root():
    """The folder that holds the ``fieldpick`` package (the extracted bundle)."""
    import fieldpick

    return os.path.dirname(os.path.dirname(os.path.abspath(fieldpick.__file__)))


def load_manifest():
    """The bundle manifest (dict), or None when this is not a bundle (a source checkout)."""
    path = os.path.join(_package_root(), "fieldpick", "boards", MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- checks
def cpu_features():
    """The SIMD features numpy detected at run time (dict name -> bool; empty when unknown)."""
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(mod).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def check_python(expect_machine=None):
    v = sys.version_info
    machine = platform.machine()
    detail = "Python %s on %s (%s)" % (platform.python_version(), machine, "-".join(platform.libc_ver()) or "libc unknown")
    feats = cpu_features()
    if machine == "aarch64" and feats:
        detail += ", int8 dot product (ASIMDDP) %s" % ("yes" if feats.get("ASIMDDP") else "no")
    elif feats:
        detail += ", AVX2 %s, AVX512F %s" % ("yes" if feats.get("AVX2") else "no", "yes" if feats.get("AVX512F") else "no")
    if v < (3, 8):
        return Check("python", FAIL, detail + "; fieldpick needs Python >= 3.8")
    if expect_machine and machine != expect_machine:
        return Check("python", FAIL, detail + "; expected machine %r" % expect_machine)
    return Check("python", PASS, detail)


def check_numpy():
    """int8 conv through float32 matmul must equal the exact int64 answer."""
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, size=(200, 8)).astype(np.int8)
    w = rng.integers(-128, 128, size=(7, 8, 16)).astype(np.int8)
    t_out = 200 - 7 + 1
    cols = np.stack([x[t:t + 7].reshape(-1) for t in range(t_out)])  # (t_out, 56)
    exact = cols.astype(np.int64) @ w.reshape(56, 16).astype(np.int64)
    fast = cols.astype(np.float32) @ w.reshape(56, 16).astype(np.float32)
    detail = "numpy %s, int8 conv via float32 matmul" % np.__version__
    if not np.array_equal(exact, fast.astype(np.int64)):
        bad = int(np.count_nonzero(exact != fast.astype(np.int64)))
        return Check("numpy", FAIL, detail + " differs from the exact answer at %d of %d values" % (bad, exact.size))
    return Check("numpy", PASS, detail + " exact (%d values)" % exact.size)


def check_files(manifest):
    if manifest is None:
        return Check("bundle files", SKIP, "not running from a bundle (no %s): nothing to verify" % MANIFEST)
    root = _package_root()
    bad = []
    for rel, digest in sorted(manifest["files"].items()):
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            bad.append("%s missing" % rel)
        elif _sha256(path) != digest:
            bad.append("%s altered" % rel)
    if bad:
        return Check("bundle files", FAIL, "%d of %d files bad: %s" % (len(bad), len(manifest["files"]), ", ".join(bad[:5])))
    return Check("bundle files", PASS, "%d files match the manifest's sha256" % len(manifest["files"]))


def check_imports():
    import fieldpick.edge as edge

    names = ["fieldpick.edge"] + [m.name for m in pkgutil.walk_packages(edge.__path__, "fieldpick.edge.")]
    errors = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every module that cannot load, then fail
            errors.append("%s: %s: %s" % (name, type(exc).__name__, exc))
    if errors:
        return Check("imports", FAIL, "%d of %d modules failed: %s" % (len(errors), len(names), "; ".join(errors[:3])))
    return Check("imports", PASS, "%d modules of fieldpick.edge import" % len(names))


def _model_cards():
    folder = os.path.join(_package_root(), "fieldpick", "edge", "models")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".json"))


def check_cards():
    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.errors import FieldpickError

    paths = _model_cards()
    if not paths:
        return Check("model card", SKIP, "no model in fieldpick/edge/models (the bundle was built before a default model existed)"), []
    cards = []
    for p in paths:
        try:
            cards.append((ModelCard.load(p, verify=True), p))
        except FieldpickError as exc:
            return Check("model card", FAIL, "%s: %s" % (os.path.basename(p), exc)), []
    return Check("model card", PASS, ", ".join("%s sha256 %s... matches" % (c.name, c.sha256[:12]) for c, _ in cards)), cards


def interpreter_record(cards):
    """Each bundled model's raw outputs on a seeded window: {card name: {shape, dtype, sha256, ms}}.

    Raises ImportError when the interpreter is not in this build.
    """
    from fieldpick.edge.tflite.interpreter import Interpreter

    from .bench import _example_input

    rec = {}
    for card, path in cards:
        t0 = time.perf_counter()
        interp = Interpreter(card.model_path(path))
        outs = interp.run(_example_input(interp))
        dt = time.perf_counter() - t0
        arrays = [np.ascontiguousarray(o) for o in outs]
        h = hashlib.sha256()
        for a in arrays:
            h.update(a.tobytes())
        rec[card.name] = {"shape": list(arrays[0].shape), "dtype": str(arrays[0].dtype), "sha256": h.hexdigest(),
                          "finite": bool(all(np.all(np.isfinite(a.astype(np.float64))) for a in arrays)),
                          "ms": round(dt * 1e3, 1)}
    return rec


def check_interpreter(cards, manifest=None):
    """The numpy interpreter loads each model and gives bit-identical outputs to the build's."""
    if not cards:
        return Check("interpreter", SKIP, "no model to load")
    try:
        got = interpreter_record(cards)
    except ImportError as exc:
        return Check("interpreter", SKIP, "fieldpick.edge.tflite.interpreter is not in this build (%s)" % exc)
    except Exception as exc:  # the check reports any failure of the runtime
        return Check("interpreter", FAIL, "%s: %s" % (type(exc).__name__, exc))
    expected = (manifest or {}).get("interpreter") or {}
    lines = []
    for card, _ in cards:
        g = got[card.name]
        if not g["finite"]:
            return Check("interpreter", FAIL, "%s: non-finite output" % card.name)
        specs = [t for t in card.quantisation.tensors if t.role == "output"]
        if specs and tuple(g["shape"]) != tuple(specs[0].shape):
            return Check("interpreter", FAIL, "%s: output shape %s but the card says %s"
                         % (card.name, tuple(g["shape"]), tuple(specs[0].shape)))
        e = expected.get(card.name)
        if e is None:
            return Check("interpreter", SKIP, "%s runs (output %s) but no output was recorded at build time to "
                         "compare with (not a bundle)" % (card.name, tuple(g["shape"])))
        if (e["shape"], e["dtype"], e["sha256"]) != (g["shape"], g["dtype"], g["sha256"]):
            return Check("interpreter", FAIL, "%s: output %s %s differs from the build's (sha256 %s..., recorded %s...)"
                         % (card.name, tuple(g["shape"]), g["dtype"], g["sha256"][:12], e["sha256"][:12]))
        lines.append("%s output %s %s bit-identical to the build (%.0f ms with loading)"
                     % (card.name, tuple(g["shape"]), g["dtype"], g["ms"]))
    return Check("interpreter", PASS, "; ".join(lines))


#: the demo stream the selftest runs and the bundle records (seconds of data, seed)
DEMO_MINUTES, DEMO_SEED = 5.0, 7
#: how far the board's demo picks may stray from those recorded at build time (another
#: numpy, another CPU): 2 samples at 100 Hz, and 0.05 in probability
DEMO_TOLERANCE_NS, DEMO_TOLERANCE_P = 20 * 10 ** 6, 0.05


def demo_record(minutes=DEMO_MINUTES, seed=DEMO_SEED):
    """Run the demo stream through the station pipeline; its picks and scores as a JSON-ready dict."""
    from fieldpick.edge.demo import run_demo

    buf = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(buf):  # the demo also talks to stdout directly
        picks, scores, stats = run_demo(minutes=minutes, seed=seed, out=buf)
    return {
        "minutes": minutes,
        "seed": seed,
        "model": stats.get("model"),
        "stand_in": "stand-in" in buf.getvalue(),
        "picks": [[p.phase, int(p.time_ns), round(float(p.probability), 4)] for p in picks],
        "recall": {ph: round(float(scores[ph].recall), 4) for ph in ("P", "S") if ph in scores.phases},
        "precision": {ph: round(float(scores[ph].precision), 4) for ph in ("P", "S") if ph in scores.phases},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def compare_demo(expected, got):
    """Differences between two demo records (list of strings; empty when they agree within tolerance)."""
    diffs = []
    if got["model"] != expected["model"]:
        diffs.append("model %r, recorded %r" % (got["model"], expected["model"]))
    e, g = expected["picks"], got["picks"]
    if len(e) != len(g):
        diffs.append("%d picks, recorded %d" % (len(g), len(e)))
    for i, (pe, pg) in enumerate(zip(e, g)):
        if pe[0] != pg[0]:
            diffs.append("pick %d is %s, recorded %s" % (i, pg[0], pe[0]))
        elif abs(pe[1] - pg[1]) > DEMO_TOLERANCE_NS:
            diffs.append("pick %d (%s) at %+.3f s from the recorded time" % (i, pg[0], (pg[1] - pe[1]) / 1e9))
        elif abs(pe[2] - pg[2]) > DEMO_TOLERANCE_P:
            diffs.append("pick %d (%s) probability %.3f, recorded %.3f" % (i, pg[0], pg[2], pe[2]))
    return diffs


def check_demo(cards, manifest):
    """The demo stream on this board must give the picks recorded when the bundle was built."""
    root = os.path.join(_package_root(), "fieldpick", "edge")
    if not os.path.exists(os.path.join(root, "station.py")) or not os.path.exists(os.path.join(root, "demo.py")):
        return Check("demo", SKIP, "the station pipeline (fieldpick.edge.station, .demo) is not in this build")
    expected = (manifest or {}).get("demo")
    if expected is not None and "error" in expected:
        expected = None  # the build's own run crashed: compare nothing, the run below decides
    try:
        got = demo_record(expected["minutes"] if expected else DEMO_MINUTES,
                          expected["seed"] if expected else DEMO_SEED)
    except Exception:  # report the demo's crash as this check's failure
        return Check("demo", FAIL, "the demo crashed: " + traceback.format_exc().strip().splitlines()[-1])
    what = "%g min demo stream, %s%s: %d picks, P recall %s, S recall %s, %.1f s" % (
        got["minutes"], got["model"], " (stand-in: no model bundled)" if got["stand_in"] else "",
        len(got["picks"]), got["recall"].get("P"), got["recall"].get("S"), got["seconds"])
    if not got["picks"]:
        return Check("demo", FAIL, what + "; no picks at all")
    if expected is None:
        return Check("demo", SKIP, what + "; no picks recorded at build time to compare with (not a bundle)")
    diffs = compare_demo(expected, got)
    if diffs:
        return Check("demo", FAIL, what + "; differs from the build: " + "; ".join(diffs[:4]))
    return Check("demo", PASS, what + "; same picks as at build time (within 20 ms, 0.05)")


def run_selftest(expect_machine=None):
    """Run every check; returns (list of Check, exit status)."""
    manifest = load_manifest()
    checks = [check_python(expect_machine), check_numpy(), check_files(manifest), check_imports()]
    card_check, cards = check_cards()
    checks += [card_check, check_interpreter(cards, manifest), check_demo(cards, manifest)]
    if any(c.status == FAIL for c in checks):
        return checks, 1
    if any(c.status == SKIP for c in checks if c.name != "bundle files" or manifest is not None):
        return checks, 3
    return checks, 0


def selftest_main(argv):
    parser = argparse.ArgumentParser(prog="fieldpick-bundle selftest", allow_abbrev=False,
                                     description="Check this bundle on this board.")
    parser.add_argument("--expect-machine", help="fail unless platform.machine() is this (e.g. aarch64)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--record", action="store_true",
                        help="print the interpreter's outputs and the demo stream's picks as JSON "
                             "(the bundle builder records them in the manifest)")
    args = parser.parse_args(argv)
    if args.record:
        _, cards = check_cards()
        try:
            interp = interpreter_record(cards) if cards else None
        except ImportError:
            interp = None
        demo = None
        if os.path.exists(os.path.join(_package_root(), "fieldpick", "edge", "demo.py")):
            try:
                demo = demo_record()
            except Exception as exc:  # recorded: the bundle still builds, and its selftest fails
                demo = {"error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps({"interpreter": interp, "demo": demo}) + "\n")
        return 0
    manifest = load_manifest()
    checks, status = run_selftest(args.expect_machine)
    out = sys.stdout
    if args.json:
        out.write(json.dumps({"status": status, "checks": [c.to_dict() for c in checks]}, indent=2) + "\n")
        return status
    if manifest:
        out.write("fieldpick bundle %s for %s (built %s from %s)\n" % (
            manifest["name"], manifest["board"], manifest["built"], manifest.get("source", "?")))
    for c in checks:
        out.write("  %-4s %-13s %s\n" % (c.status, c.name, c.detail))
    skipped = [c.name for c in checks if c.status == SKIP]
    verdict = {0: "selftest PASSED: every check ran and passed",
               1: "selftest FAILED",
               3: "selftest INCOMPLETE: nothing failed, but these checks could not run: %s" % ", ".join(skipped)}
    out.write(verdict[status] + "\n")
    return status


def main(argv=None):
    """Entry point of a bundle: ``selftest`` here, every other verb to ``fieldpick``'s command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "selftest":
        return selftest_main(argv[1:])
    from fieldpick.edge.cli import main as cli_main

    if not argv:
        sys.stderr.write("usage: python3 BUNDLE.pyz selftest | VERB [...]  (VERB: run, demo, card, bench, ...)\n")
    return cli_main(argv)
