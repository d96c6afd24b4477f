"""``fieldpick bundle``: what goes into the one file, that it runs, and that its selftest is honest."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest

from fieldpick.boards import bundle
from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec
from fieldpick.edge.errors import CardError, ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    pyz = bundle.build_bundle("rpi4b", str(out), model=None, built="2026-11-22")
    return out, pyz


def _run(pyz, args, cache, env_extra=None):
    env = dict(os.environ, FIELDPICK_BUNDLE_CACHE=str(cache))
    env.pop("PYTHONPATH", None)
    env.update(env_extra or {})
    # from an empty folder, so that nothing but the bundle can provide fieldpick
    return subprocess.run([sys.executable, pyz] + args, capture_output=True, text=True, env=env,
                          cwd=str(cache), timeout=120)


def test_bundle_holds_the_station_code_and_nothing_else(built):
    out, pyz = built
    with open(pyz, "rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"
    names = zipfile.ZipFile(pyz).namelist()
    assert "__main__.py" in names
    assert "fieldpick/__init__.py" in names
    assert "fieldpick/edge/card.py" in names and "fieldpick/edge/cli.py" in names
    for n in ("selftest.py", "bench.py", "estimate.py", "profiles/rpi4b.json", "bundle.json"):
        assert "fieldpick/boards/" + n in names
    assert "fieldpick/boards/profiles/rpi5.json" not in names  # only this board's profile
    assert "fieldpick/boards/bundle.py" not in names  # the builder stays on the workstation
    for n in names:
        assert not n.startswith(("fieldpick/train/", "fieldpick/export/", "tests/", "fieldpick/tests/"))
        assert "__pycache__" not in n and not n.endswith(".pyc")
    manifest = json.loads(zipfile.ZipFile(pyz).read("fieldpick/boards/bundle.json"))
    assert manifest["board"] == "rpi4b" and manifest["model"] is None
    assert "python3-numpy" in manifest["requires"]
    data = zipfile.ZipFile(pyz).read("fieldpick/edge/card.py")
    assert manifest["files"]["fieldpick/edge/card.py"] == hashlib.sha256(data).hexdigest()
    assert os.path.exists(os.path.join(str(out), "fieldpick-rpi4b.service"))
    from fieldpick.edge.config import StationConfig

    cfg = StationConfig.load(os.path.join(str(out), "fieldpick-rpi4b.station.json"))  # the station's own loader
    assert cfg.model == "default" and cfg.sources[0].startswith("seedlink://")


def test_bundle_is_reproducible(built, tmp_path):
    _, pyz = built
    again = bundle.build_bundle("rpi4b", str(tmp_path), model=None, built="2026-11-22")
    assert open(again, "rb").read() == open(pyz, "rb").read()


def test_selftest_without_a_model_is_incomplete_not_passed(built, tmp_path):
    _, pyz = built
    res = _run(pyz, ["selftest"], tmp_path)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "PASS python" in res.stdout
    assert "PASS numpy" in res.stdout
    assert "PASS bundle files" in res.stdout
    assert "PASS imports" in res.stdout
    assert "SKIP model card    no model in fieldpick/edge/models" in res.stdout
    assert "selftest INCOMPLETE" in res.stdout and "PASSED" not in res.stdout


def test_selftest_json_and_machine_check(built, tmp_path):
    _, pyz = built
    res = _run(pyz, ["selftest", "--json", "--expect-machine", "not-a-cpu"], tmp_path)
    report = json.loads(res.stdout)
    assert res.returncode == 1 and report["status"] == 1
    python = [c for c in report["checks"] if c["name"] == "python"][0]
    assert python["status"] == "FAIL" and "expected machine 'not-a-cpu'" in python["detail"]


def test_selftest_catches_an_altered_file(built, tmp_path):
    _, pyz = built
    assert _run(pyz, ["selftest"], tmp_path).returncode == 3  # unpacks into the cache
    (unpacked,) = [d for d in os.listdir(str(tmp_path)) if d.startswith("fieldpick-rpi4b-")]
    victim = os.path.join(str(tmp_path), unpacked, "fieldpick", "edge", "picks.py")
    with open(victim, "a") as f:
        f.write("\n# changed on the card\n")
    res = _run(pyz, ["selftest"], tmp_path)
    assert res.returncode == 1
    assert "FAIL bundle files  1 of" in res.stdout and "fieldpick/edge/picks.py altered" in res.stdout
    assert "selftest FAILED" in res.stdout


def test_bundle_says_it_needs_the_boards_numpy(built, tmp_path):
    _, pyz = built
    fake = tmp_path / "nonumpy" / "numpy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('numpy is not installed on this board')\n")
    res = _run(pyz, ["selftest"], tmp_path, {"PYTHONPATH": str(tmp_path / "nonumpy")})
    assert res.returncode == 3
    assert "sudo apt install python3-numpy" in res.stderr


def test_other_verbs_go_to_the_command_line(built, tmp_path):
    _, pyz = built
    res = _run(pyz, ["--version"], tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("fieldpick ")
    res = _run(pyz, ["train"], tmp_path)  # a workstation verb is not in a station bundle
    assert res.returncode == 3 and "fieldpick train" in res.stderr


TINY = os.path.join(REPO, "tests", "edge", "data", "tiny_int8.tflite")  # 16 samples x 3, int8 in and out


def _model(tmp_path, payload=None):
    """A model file and its card in tmp_path: the committed tiny int8 picker, or ``payload`` bytes."""
    path = tmp_path / "tiny.tflite"
    path.write_bytes(payload if payload is not None else open(TINY, "rb").read())
    card = ModelCard(name="tiny", architecture="test", input=InputSpec(100.0, 16),
                     output=OutputSpec("probabilities", ["N", "P", "S"]),
                     thresholds={"P": 0.5, "S": 0.5}, flops_per_window=10**4).attach(str(path))
    card.save(str(tmp_path / "tiny.json"))
    return str(path)


@pytest.mark.skipif(not os.path.exists(TINY), reason="tests/edge/data/tiny_int8.tflite is not in this checkout")
def test_model_travels_and_runs_bit_identical_to_the_build(tmp_path):
    model = _model(tmp_path)
    pyz = bundle.build_bundle("rpi5", str(tmp_path / "dist"), model=model, built="2026-11-22")
    z = zipfile.ZipFile(pyz)
    assert "fieldpick/edge/models/tiny.tflite" in z.namelist() and "fieldpick/edge/models/tiny.json" in z.namelist()
    manifest = json.loads(z.read("fieldpick/boards/bundle.json"))
    assert len(manifest["interpreter"]["tiny"]["sha256"]) == 64  # the build recorded the model's outputs
    res = _run(pyz, ["selftest"], tmp_path)
    assert "PASS model card    tiny sha256" in res.stdout
    assert "PASS interpreter   tiny output (1, 8, 3) int8 bit-identical to the build" in res.stdout
    # a toy model: whatever the demo makes of it, the verdict is never a pass without every check passing
    assert ("selftest PASSED" in res.stdout) == (res.returncode == 0)


def test_a_model_that_cannot_run_is_refused_at_build_time(tmp_path):
    model = _model(tmp_path, payload=b"TFL3 not really a model")
    with pytest.raises(ConfigError, match="the model or the demo stream failed inside the new bundle"):
        bundle.build_bundle("rpi4b", str(tmp_path / "dist"), model=model)


def test_a_card_that_does_not_match_its_model_is_refused_at_build_time(tmp_path):
    model = _model(tmp_path, payload=b"0123456789")
    with open(model, "ab") as f:
        f.write(b"x")
    with pytest.raises(CardError, match="has 11 bytes but its card says 10"):
        bundle.build_bundle("rpi4b", str(tmp_path / "dist"), model=model)


def test_selftest_fails_when_the_demo_picks_differ_from_the_build(built, tmp_path):
    _, pyz = built
    assert _run(pyz, ["selftest"], tmp_path).returncode == 3
    (unpacked,) = [d for d in os.listdir(str(tmp_path)) if d.startswith("fieldpick-rpi4b-")]
    path = os.path.join(str(tmp_path), unpacked, "fieldpick", "boards", "bundle.json")
    manifest = json.load(open(path))
    assert manifest["demo"]["picks"], "the demo stream should pick something"
    manifest["demo"]["picks"][0][1] += 10 ** 9  # pretend the build picked it a second later
    json.dump(manifest, open(path, "w"))
    res = _run(pyz, ["selftest"], tmp_path)
    assert res.returncode == 1
    assert "FAIL demo" in res.stdout and "differs from the build: pick 0" in res.stdout


@pytest.mark.parametrize("change, match", [
    (lambda g: g["picks"].pop(), "1 picks, recorded 2"),
    (lambda g: g["picks"][1].__setitem__(0, "P"), "pick 1 is P, recorded S"),
    (lambda g: g["picks"][0].__setitem__(1, g["picks"][0][1] + 21 * 10 ** 6), r"pick 0 \(P\) at \+0.021 s"),
    (lambda g: g["picks"][0].__setitem__(2, 0.5), "pick 0 \\(P\\) probability 0.500, recorded 0.900"),
    (lambda g: g.__setitem__("model", "other"), "model 'other', recorded 'm'"),
])
def test_demo_comparison(change, match):
    from fieldpick.boards.selftest import compare_demo

    rec = {"model": "m", "picks": [["P", 10 ** 18, 0.9], ["S", 10 ** 18 + 5 * 10 ** 9, 0.8]]}
    same = json.loads(json.dumps(rec))
    same["picks"][0][1] += 20 * 10 ** 6  # 2 samples at 100 Hz: still the same pick
    same["picks"][1][2] -= 0.04
    assert compare_demo(rec, same) == []
    got = json.loads(json.dumps(rec))
    change(got)
    diffs = compare_demo(rec, got)
    assert diffs and any(__import__("re").search(match, d) for d in diffs), diffs


def test_cli_errors_name_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="unknown board 'pi6'; choose one of: jetson_nano, .*rpizero2w"):
        bundle.main(["--board", "pi6", "--no-model", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="--model .*missing.tflite does not exist"):
        bundle.main(["--board", "rpi4b", "--model", str(tmp_path / "missing.tflite"), "--out", str(tmp_path)])


def test_default_model_is_the_only_one(tmp_path):
    assert bundle.default_model(str(tmp_path)) is None
    (tmp_path / "a.tflite").write_bytes(b"a")
    assert bundle.default_model(str(tmp_path)) == str(tmp_path / "a.tflite")
    (tmp_path / "b.tflite").write_bytes(b"b")
    with pytest.raises(ConfigError, match="edge/models holds 2 models \\(a.tflite, b.tflite\\); choose one with --model"):
        bundle.default_model(str(tmp_path))


def test_systemd_unit_runs_the_station_from_the_bundle():
    unit = bundle.systemd_unit("rpi4b", "fieldpick-rpi4b.pyz")
    assert "ExecStart=/usr/bin/python3 /opt/fieldpick/fieldpick-rpi4b.pyz run --config /etc/fieldpick/station.json" in unit
    assert "ExecStartPre=/usr/bin/python3 /opt/fieldpick/fieldpick-rpi4b.pyz selftest" in unit
    assert "Restart=always" in unit and "[Install]" in unit


@pytest.mark.parametrize("args, match", [
    ([], "give the bundle to check"),
    (["/nonexistent/fieldpick-x.pyz"], "bundle /nonexistent/fieldpick-x.pyz does not exist"),
])
def test_emulate_script_refuses_bad_arguments(args, match):
    res = subprocess.run(["bash", os.path.join(REPO, "boards", "emulate.sh")] + args,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert match in res.stderr
