"""The `fieldpick` entry point: verbs, errors, and lazy imports."""

import json
import os
import subprocess
import sys

import pytest

from fieldpick.edge import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fp(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fieldpick"] + list(args), capture_output=True, text=True,
                          timeout=120, env=env)


def test_version_and_help():
    res = fp("--version")
    assert res.returncode == 0 and res.stdout.startswith("fieldpick ")
    res = fp("--help")
    assert res.returncode == 0
    for verb in cli.VERBS:
        assert verb in res.stdout


def test_issue_verbs_are_all_registered():
    wanted = {"demo", "run", "replay", "train", "distill", "prune", "finetune", "export", "eval",
              "bench", "bundle", "explain", "receive"}
    assert wanted <= set(cli.VERBS)


def test_unknown_verb_is_an_error_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["pick-everything"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown verb 'pick-everything'" in err and "replay" in err


def test_unknown_top_level_option_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--colour", "demo"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_no_verb_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "verbs:" in capsys.readouterr().err


def test_verb_missing_from_build_exits_3(monkeypatch, capsys):
    monkeypatch.setitem(cli.VERBS, "ghost", ("fieldpick.edge.no_such_module:main", "a ghost", "station", None))
    assert cli.main(["ghost"]) == 3
    assert "'fieldpick ghost' (a ghost) is not part of this build" in capsys.readouterr().err


def test_verb_needing_an_absent_package_names_the_install(monkeypatch, capsys, tmp_path):
    mod = tmp_path / "fp_needs_absent.py"
    mod.write_text("import no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.VERBS, "heavy", ("fp_needs_absent:main", "heavy", "workstation", "train"))
    assert cli.main(["heavy"]) == 3
    err = capsys.readouterr().err
    assert "'no_such_package_xyz'" in err and "pip install 'fieldpick[train]'" in err


def test_fieldpick_error_becomes_one_line_and_status_2(monkeypatch, capsys, tmp_path):
    mod = tmp_path / "fp_raises.py"
    mod.write_text("from fieldpick.edge.errors import ConfigError\n"
                   "def main(argv):\n    raise ConfigError('key %r; allowed: a, b' % argv[0])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.VERBS, "raiser", ("fp_raises:main", "raises", "station", None))
    assert cli.main(["raiser", "zz"]) == 2
    assert capsys.readouterr().err.strip() == "fieldpick raiser: error: key 'zz'; allowed: a, b"


def test_verb_receives_its_own_arguments(monkeypatch, tmp_path):
    mod = tmp_path / "fp_echo.py"
    mod.write_text("import json, sys\ndef main(argv):\n    sys.stdout.write(json.dumps(argv))\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.VERBS, "echo", ("fp_echo:main", "echo", "station", None))
    assert cli.main(["-v", "echo", "--help", "-x", "1"]) == 7


def test_card_verb_checks_a_card(tmp_path):
    from fieldpick.edge.card import InputSpec, ModelCard, OutputSpec

    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3....")
    card = ModelCard("m", "phasenet", InputSpec(100.0, 3000), OutputSpec("probabilities", ["N", "P", "S"]),
                     {"P": 0.3, "S": 0.3}).attach(str(model))
    card.save(str(tmp_path / "m.json"))
    res = fp("card", str(tmp_path / "m.json"))
    assert res.returncode == 0, res.stderr
    assert "3000 samples at 100 Hz (30.00 s)" in res.stdout and "(checked)" in res.stdout
    res = fp("card", str(tmp_path / "m.json"), "--json")
    assert json.loads(res.stdout)["name"] == "m"
    model.write_bytes(b"TFL3...!")
    res = fp("card", str(tmp_path / "m.json"))
    assert res.returncode == 2 and "do not belong together" in res.stderr
    res = fp("card", str(tmp_path / "m.json"), "--bogus")
    assert res.returncode == 2 and "unrecognized arguments: --bogus" in res.stderr


STATION_VERBS = ["run", "replay", "demo", "receive", "card"]


@pytest.mark.parametrize("verb", STATION_VERBS)
def test_station_verbs_never_import_the_workstation_stack(verb):
    # `fieldpick VERB --help` with torch & co. refused: the verb must still load (or say it is not built yet).
    code = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch','scipy','onnx','onnxruntime','tensorflow','h5py','obspy','matplotlib'}:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from fieldpick.edge.cli import main\n"
        "try:\n"
        "    rc = main([%r, '--help'])\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "sys.exit(rc)\n" % verb
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "blocked:" not in res.stderr, res.stderr[-2000:]
    assert res.returncode in (0, 3), res.stderr[-2000:]


def test_demo_explains_itself():
    res = fp("demo", "--minutes", "1")
    assert "fieldpick demo will" in res.stdout or res.returncode == 0
