"""benchmarks/run_all.py: runs what exists with its budget, and the report says what is missing, failed,
skipped or older, trusting results/manifest.json only for files it still matches."""

import importlib.util
import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def run_all(tmp_path, monkeypatch):
    """run_all.py pointed at a scratch benchmarks/ folder."""
    spec = importlib.util.spec_from_file_location("run_all_under_test", os.path.join(REPO, "benchmarks", "run_all.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    here = tmp_path / "benchmarks"
    (here / "results").mkdir(parents=True)
    monkeypatch.setattr(mod, "HERE", str(here))
    monkeypatch.setattr(mod, "RESULTS", str(here / "results"))
    monkeypatch.setattr(mod, "PLOTS", str(here / "results" / "plots"))
    monkeypatch.setattr(mod, "LOGS", str(here / "results" / "tmp" / "logs"))
    monkeypatch.setattr(mod, "REPORT", str(here / "REPORT.md"))
    return mod, here


def _script(here, name, body):
    (here / (name + ".py")).write_text(body)


GOOD = """import json, os
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
rows = [{"runtime": "numpy", "latency_ms": {"numpy": 2.0, "litert": 1.0}, "ratio_vs_litert": 2.0},
        {"runtime": "litert", "latency_ms": {"numpy": 2.0, "litert": 1.0}, "ratio_vs_litert": 1.0}]
json.dump({"rows": rows}, open(os.path.join(out, "interpreter.json"), "w"))
open(os.path.join(out, "interpreter.md"), "w").write("# Interpreter\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n")
"""


def _run(mod, names, budget="quick"):
    manifest = mod.load_manifest()
    runs = {}
    for n in names:
        runs[n] = mod.run_one(n, [], 60, budget)
        mod.record(manifest, runs[n])
    return runs, manifest


def test_report_names_missing_failed_and_older(run_all):
    mod, here = run_all
    _script(here, "interpreter", GOOD)
    _script(here, "mseed", "import sys\nprint('decoder exploded')\nsys.exit(4)\n")
    _script(here, "_helper", "raise SystemExit('helpers never run')\n")
    # a result left by an earlier hand-made run of a script that will fail now
    (here / "results" / "mseed.json").write_text(json.dumps({"ratio_fieldpick_over_obspy": 2.5}))
    (here / "results" / "mseed.md").write_text("# miniSEED\n")
    assert mod.scripts() == ["interpreter", "mseed"]
    runs, manifest = _run(mod, mod.scripts())
    assert runs["interpreter"]["status"] == "ok" and runs["mseed"]["rc"] == 4
    assert runs["mseed"]["last_line"] == "decoder exploded"
    report = open(mod.build_report(runs, manifest, "quick")).read()
    assert "**Budget of this run: quick**" in report
    assert "| interpreter | budget **quick**, `benchmarks/interpreter.py`, ran " in report
    assert ("| mseed | **failed in this run** (4): decoder exploded; the result shown is older: not written by "
            "make bench" in report)
    assert "| station | **missing**: benchmarks/station.py does not exist yet" in report
    assert "Not written yet: benchmarks/accuracy.py, benchmarks/zoo.py" in report
    assert "\n### Interpreter\n" in report  # the script's own markdown, nested under the section
    assert os.path.exists(str(here / "results" / "plots" / "interpreter_latency.png"))
    assert "![Interpreter latency against the other runtimes](results/plots/interpreter_latency.png)" in report
    assert "_No plot: no result has rows with both a duty-cycle and a recall column" in report


def test_a_script_that_writes_nothing_is_stale_not_vouched_for(run_all):
    mod, here = run_all
    _script(here, "mseed", "pass\n")  # runs fine but writes nothing new
    (here / "results" / "mseed.json").write_text(json.dumps({"ratio_fieldpick_over_obspy": 2.5}))
    runs, manifest = _run(mod, ["mseed"])
    assert runs["mseed"]["status"] == "stale"
    assert "sha256" not in manifest["mseed"]  # the old file is not recorded as this run's
    report = open(mod.build_report(runs, manifest, "quick")).read()
    assert "| mseed | **stale**: it ran, but exited 0 but wrote no new results/mseed.json; the result shown is " \
           "older: not written by make bench" in report
    assert "ratio_fieldpick_over_obspy 2.5" in report  # the headline still shows, marked as older


def test_skipped_script_says_why_and_keeps_the_older_result(run_all):
    mod, here = run_all
    _script(here, "zoo", "import sys\nprint('SKIPPED: no NCEDC windows at /nope')\nsys.exit(75)\n")
    _script(here, "mseed", GOOD.replace("interpreter", "mseed"))
    runs, manifest = _run(mod, ["mseed"], budget="full")  # an earlier full run wrote mseed
    runs, manifest = _run(mod, ["zoo"])
    assert runs["zoo"]["status"] == "skipped"
    report = open(mod.build_report(runs, manifest, "quick")).read()
    assert "| zoo | **skipped in this run**: no NCEDC windows at /nope; no result to show |" in report
    assert "| mseed | not run this time; budget **full**, `benchmarks/mseed.py`, ran " in report


def test_the_manifest_vouches_only_for_unchanged_results(run_all, monkeypatch):
    mod, here = run_all
    _script(here, "interpreter", GOOD)
    _script(here, "mseed", GOOD.replace("interpreter", "mseed"))
    _run(mod, ["interpreter", "mseed"], budget="full")
    (here / "results" / "mseed.json").write_text(json.dumps({"rows": [], "edited": True}))
    (here / "results" / "plots").mkdir(exist_ok=True)
    (here / "results" / "plots" / "pareto.png").write_bytes(b"a script's own plot")
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--report-only"])
    assert mod.main() == 0
    report = open(mod.REPORT).read()
    assert "| interpreter | budget **full**, `benchmarks/interpreter.py`, ran " in report
    assert "| mseed | **changed by hand or by another run since make bench wrote it**" in report
    assert "budget **full**: interpreter" in report and "made by hand; each states its own command or budget): mseed" in report
    assert (here / "results" / "plots" / "pareto.png").read_bytes() == b"a script's own plot"


def test_report_only_from_json(run_all, monkeypatch):
    mod, here = run_all
    (here / "results" / "estimator.json").write_text(json.dumps({
        "validation": [{"workload": "w", "measured_s": 1e-3, "predicted_s": 1.2e-3}],
        "boards": [{"board": "rpi4b", "runtime": "numpy", "model": "m", "latency_s": 0.01}],
        "mean_abs_error": 0.2}))
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--report-only"])
    assert mod.main() == 0
    report = open(mod.REPORT).read()
    assert "mean_abs_error 0.2" in report
    assert os.path.exists(str(here / "results" / "plots" / "estimator_validation.png"))
    assert os.path.exists(str(here / "results" / "plots" / "estimator_boards.png"))


def test_unknown_benchmark_is_refused(run_all, monkeypatch, capsys):
    mod, here = run_all
    _script(here, "mseed", "pass\n")
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", "msed"])
    with pytest.raises(SystemExit):
        mod.main()
    assert "unknown benchmark 'msed'; available: mseed" in capsys.readouterr().err


def test_every_budget_option_is_one_its_script_defines():
    spec = importlib.util.spec_from_file_location("run_all_budgets", os.path.join(REPO, "benchmarks", "run_all.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.BUDGETS) == {"quick", "full"} and set(mod.TIMEOUTS) == set(mod.BUDGETS)
    for budget, per_script in mod.BUDGETS.items():
        for name, args in per_script.items():
            with open(os.path.join(REPO, "benchmarks", name + ".py")) as f:
                source = f.read()
            for opt in (a for a in args if a.startswith("--")):
                assert '"%s"' % opt in source, "%s budget: benchmarks/%s.py has no option %s" % (budget, name, opt)
    assert not set(mod.EXTERNAL) & set(mod.BUDGETS["quick"])  # what make bench does not run has no budget
