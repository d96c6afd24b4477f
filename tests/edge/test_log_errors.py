"""One exception hierarchy, logging configured once, no print in library code."""

import ast
import io
import logging
import os

import pytest

from fieldpick.edge import errors
from fieldpick.edge.log import setup_logging

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_error_is_a_fieldpick_error():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.FieldpickError), name


@pytest.mark.parametrize("cls", [errors.ConfigError, errors.DataError, errors.CardError,
                                 errors.ModelFormatError, errors.PacketError])
def test_bad_value_errors_are_value_errors(cls):
    assert issubclass(cls, ValueError)


def test_setup_logging_installs_one_handler_and_sets_levels():
    buf = io.StringIO()
    logger = setup_logging(1, stream=buf)
    setup_logging(2, stream=buf)
    ours = [h for h in logger.handlers if getattr(h, "_fieldpick", False)]
    assert len(ours) == 1 and logger.level == logging.DEBUG
    setup_logging(-1)
    assert logger.level == logging.ERROR
    setup_logging(0)
    assert logger.level == logging.WARNING


def _library_files():
    for top in ("edge", "train", "export", "boards"):
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(root, f)


def test_library_code_never_prints():
    offenders = []
    for path in _library_files():
        tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append("%s:%d" % (os.path.relpath(path, REPO), node.lineno))
    assert offenders == [], "use logging (or sys.stdout.write in a CLI main): %s" % offenders


def test_library_code_never_raises_bare_exception():
    offenders = []
    for path in _library_files():
        tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id == "Exception":
                    offenders.append("%s:%d" % (os.path.relpath(path, REPO), node.lineno))
    assert offenders == []


def test_default_handler_follows_sys_stderr(monkeypatch):
    setup_logging(0)
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logging.getLogger("fieldpick.test").warning("one")
    first.close()  # e.g. a harness closes its capture
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    logging.getLogger("fieldpick.test").warning("two")
    assert "two" in second.getvalue()
