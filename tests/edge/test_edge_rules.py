"""The rules that keep edge/ (and lab/, which the bundle carries for the demo) deployable:
numpy + standard library only, Python 3.8 syntax.

Each check is also run against a deliberately bad package, so these tests
prove they can fail.
"""

import ast
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDGE = os.path.join(REPO, "edge")
LAB = os.path.join(REPO, "lab")  # synthetic data and scoring: the demo runs them on the station
BLOCKED = ["torch", "scipy", "onnx", "onnxruntime", "tensorflow", "h5py", "obspy",
           "matplotlib", "pandas", "tflite_runtime", "ai_edge_litert", "tqdm", "seisbench"]

# Runs in a fresh interpreter: refuse the heavy packages, import every module of
# the package, then list any third-party top-level module that got loaded anyway.
CHECK = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    BLOCKED = set(%r)

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked on the station: %%s" %% name)
            return None

    sys.meta_path.insert(0, Refuse())
    pkg = importlib.import_module(sys.argv[1])
    names = [sys.argv[1]]
    for info in pkgutil.walk_packages(pkg.__path__, sys.argv[1] + "."):
        names.append(info.name)
    for name in names:
        importlib.import_module(name)
    # cython_runtime is created by numpy's compiled modules, not imported from a package
    allowed = set(sys.stdlib_module_names) | {"numpy", "fieldpick", "cython_runtime", sys.argv[1].split(".")[0]}
    extra = sorted({m.split(".")[0] for m in sys.modules} - allowed)
    extra = [m for m in extra if not m.startswith("_") and not m.startswith("__editable__")]
    if extra:
        sys.exit("third-party modules loaded: %%s" %% extra)
    print("imported %%d modules" %% len(names))
    """
) % (BLOCKED,)


def _isolated_import(package, cwd=None):
    env = dict(os.environ)
    if cwd:
        env["PYTHONPATH"] = cwd
    return subprocess.run([sys.executable, "-c", CHECK, package], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("package", ["fieldpick.edge", "fieldpick.lab"])
def test_edge_imports_with_heavy_packages_blocked(package):
    res = _isolated_import(package)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "imported" in res.stdout


def test_isolation_check_catches_a_heavy_import(tmp_path):
    pkg = tmp_path / "badedge"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("import torch\n")
    res = _isolated_import("badedge", cwd=str(tmp_path))
    assert res.returncode != 0
    assert "blocked on the station: torch" in res.stderr


def test_isolation_check_catches_an_unlisted_third_party_import(tmp_path):
    pkg = tmp_path / "badedge2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import pytest\n")  # installed, but not stdlib or numpy
    res = _isolated_import("badedge2", cwd=str(tmp_path))
    assert res.returncode != 0
    assert "third-party modules loaded" in res.stderr and "pytest" in res.stderr


def _edge_sources():
    for top in (EDGE, LAB):
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(root, f)


def _parse_errors_38(paths):
    """Files that do not parse with the Python 3.8 grammar."""
    bad = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        try:
            ast.parse(src, filename=path, feature_version=(3, 8))
        except SyntaxError as exc:
            bad.append("%s:%s: %s" % (os.path.relpath(path, REPO), exc.lineno, exc.msg))
    return bad


def test_edge_parses_as_python_38():
    assert _parse_errors_38(_edge_sources()) == []


def test_py38_grammar_check_catches_match_statement(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f(x):\n    match x:\n        case 1:\n            return 1\n")
    assert len(_parse_errors_38([str(bad)])) == 1


def _new_annotations(paths):
    """Annotations that Python 3.8 cannot evaluate: ``X | Y`` and ``list[int]``-style generics.

    Flagged even under ``from __future__ import annotations``: dataclasses and
    ``typing.get_type_hints`` evaluate them anyway.
    """
    builtins_generic = {"list", "dict", "tuple", "set", "frozenset", "type"}
    bad = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        annotations = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                args += [a for a in (node.args.vararg, node.args.kwarg) if a]
                annotations += [a.annotation for a in args if a.annotation is not None]
                if node.returns is not None:
                    annotations.append(node.returns)
            elif isinstance(node, ast.AnnAssign):
                annotations.append(node.annotation)
        for ann in annotations:
            for sub in ast.walk(ann):
                union = isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.BitOr)
                generic = isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id in builtins_generic
                if union or generic:
                    bad.append("%s:%d: %s" % (os.path.relpath(path, REPO), sub.lineno, ast.dump(sub)[:60]))
    return bad


def test_edge_annotations_evaluate_on_python_38():
    assert _new_annotations(_edge_sources()) == []


@pytest.mark.parametrize("snippet", ["def f(a: int | None): return a\n", "x: list[int] = []\n",
                                     "from __future__ import annotations\ndef f() -> dict[str, int]: ...\n"])
def test_annotation_check_catches_310_style(tmp_path, snippet):
    bad = tmp_path / "new.py"
    bad.write_text(snippet)
    assert len(_new_annotations([str(bad)])) == 1


def _vermin(paths):
    exe = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(exe):
        pytest.skip("vermin is not installed in this environment (workstation env has it)")
    return subprocess.run([exe, "--no-tips", "--violations", "-t=3.8-", "--no-parse-comments", "--eval-annotations"] + list(paths),
                          capture_output=True, text=True, timeout=300)


def test_edge_needs_no_more_than_python_38():
    res = _vermin([EDGE, LAB])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-1000:]


@pytest.mark.parametrize(
    "snippet, what",
    [
        ("s = 'ab'.removeprefix('a')\n", "removeprefix"),
        ("import functools\n@functools.cache\ndef f(): return 1\n", "cache"),
        ("x = list(zip([1], [2], strict=True))\n", "strict"),
    ],
)
def test_vermin_check_catches_newer_python(tmp_path, snippet, what):
    bad = tmp_path / "new.py"
    bad.write_text(snippet)
    res = _vermin([str(bad)])
    assert res.returncode != 0, "vermin missed %s: %s" % (what, res.stdout)
