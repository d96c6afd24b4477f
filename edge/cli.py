"""The ``fieldpick`` command line: one entry point, one verb per job.

The top level reads only the verb; the verb's own module is imported when
that verb runs and parses the rest of the arguments itself.  So
``fieldpick run`` on a station imports numpy and the standard library and
nothing else, while ``fieldpick train`` pulls in torch only when asked.

A verb module exposes ``main(argv) -> int``.  Errors that a user caused
(:class:`~fieldpick.edge.errors.FieldpickError`, and OS errors on the files,
folders and sockets they named) print one clear line and exit with status 2
(``-v`` adds the traceback); a verb whose code is not in this build says so and
exits with status 3.
"""

import argparse
import importlib
import logging
import sys
import traceback
from collections import OrderedDict

from .errors import FieldpickError
from .log import setup_logging

__all__ = ["VERBS", "main"]

log = logging.getLogger(__name__)

# verb -> (module:function, one-line help, where it runs, extra that provides it)
VERBS = OrderedDict(
    [
        ("demo", ("fieldpick.edge.demo:main", "run the bundled model on a synthetic hour and score its picks", "station", None)),
        ("run", ("fieldpick.edge.run:main", "run a station from a JSON config (live sources, telemetry)", "station", None)),
        ("replay", ("fieldpick.edge.replay:main", "stream miniSEED files through the picker as fast as possible", "station", None)),
        ("receive", ("fieldpick.edge.telemetry.receive:main", "receive, acknowledge and decode pick packets", "network", None)),
        ("picks", ("fieldpick.network.cli:picks_main", "query the pick database (csv, json, quakeml, scml, earthworm)", "network", "network")),
        ("stations", ("fieldpick.network.cli:stations_main", "list stations (last seen, latency, SOH); import coordinates", "network", "network")),
        ("associate", ("fieldpick.network.cli:associate_main", "associate and locate stored picks into events", "network", "network")),
        ("card", ("fieldpick.edge.card_cli:main", "show and check a model card against its model file", "station", None)),
        ("train", ("fieldpick.train.fit:main", "train a picker from a config (PyTorch)", "workstation", "train")),
        ("distill", ("fieldpick.train.distill:main", "distil a small student from a teacher", "workstation", "train")),
        ("pseudo", ("fieldpick.train.pseudo:main", "label real continuous data where a teacher ensemble agrees", "workstation", "train")),
        ("prune", ("fieldpick.train.prune:main", "structured channel pruning with fine-tuning", "workstation", "train")),
        ("finetune", ("fieldpick.train.finetune:main", "move a model to a new region by training its head", "workstation", "train")),
        ("export", ("fieldpick.export.cli:main", "PyTorch -> ONNX -> TFLite fp32 and int8, with parity gates", "workstation", "export")),
        ("eval", ("fieldpick.train.evaluate:main", "score a picker or a classic baseline on a dataset", "workstation", "train")),
        ("explain", ("fieldpick.train.explain:main", "class activation maps (Grad-CAM, Grad-CAM++) of a picker over time", "workstation", "train")),
        ("plot", ("fieldpick.train.plot:main", "plot a window or stream with probabilities and picks", "workstation", "train")),
        ("bench", ("fieldpick.boards.bench:main", "measure latency and memory on this machine", "station", None)),
        ("bundle", ("fieldpick.boards.bundle:main", "build one file to copy to a station board", "workstation", None)),
    ]
)


def _parser():
    epilog = "verbs:\n" + "\n".join(
        "  %-9s %s [%s]" % (verb, text, where) for verb, (_, text, where, _) in VERBS.items()
    )
    epilog += "\n\n'fieldpick VERB --help' describes one verb."
    p = argparse.ArgumentParser(
        prog="fieldpick",
        description="On-station seismic phase picking.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("verb", nargs="?", metavar="VERB", help="one of: " + ", ".join(VERBS))
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="...", help="the verb's own arguments")
    return p


def _load(verb):
    """Import the verb's function; raise a clear error when it cannot be had."""
    target, text, where, extra = VERBS[verb]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            hint = " with the '%s' extra" % extra if extra else ""
            raise _Unavailable(
                "'fieldpick %s' (%s) is not part of this build; it runs on the %s: install fieldpick%s there"
                % (verb, text, where, hint)
            ) from None
        hint = "pip install 'fieldpick[%s]'" % extra if extra else "pip install %s" % missing.split(".")[0]
        raise _Unavailable(
            "'fieldpick %s' runs on the %s and needs the Python package %r, which is not "
            "installed here: %s" % (verb, where, missing.split(".")[0], hint)
        ) from None
    return getattr(module, func_name)


class _Unavailable(FieldpickError):
    pass


def os_message(exc: OSError) -> str:
    """One line for an OS error: what failed and on which file."""
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        where = str(exc.filename) + (" -> %s" % exc.filename2 if exc.filename2 is not None else "")
        return "%s: %s" % (where, why)
    return why


def _trace(verbose):
    """With -v, the traceback of the error being handled (to tell a bug from bad input)."""
    if verbose:
        traceback.print_exc(file=sys.stderr)


def main(argv=None):
    """Entry point of the ``fieldpick`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    # Top-level options come before the verb; everything after it is the verb's.
    ns = parser.parse_args(argv)
    if ns.version:
        from .. import __version__

        sys.stdout.write("fieldpick %s\n" % __version__)
        return 0
    if ns.verb is None:
        parser.print_help(sys.stderr)
        return 2
    if ns.verb not in VERBS:
        parser.error("unknown verb %r; choose one of: %s" % (ns.verb, ", ".join(VERBS)))
    setup_logging(-1 if ns.quiet else ns.verbose)
    try:
        func = _load(ns.verb)
        status = func(ns.args)
    except _Unavailable as exc:
        sys.stderr.write("fieldpick: %s\n" % exc)
        return 3
    except FieldpickError as exc:
        _trace(ns.verbose)
        sys.stderr.write("fieldpick %s: error: %s\n" % (ns.verb, exc))
        return 2
    except OSError as exc:  # a file, folder, device or socket the user named
        _trace(ns.verbose)
        sys.stderr.write("fieldpick %s: error: %s\n" % (ns.verb, os_message(exc)))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fieldpick %s: interrupted\n" % ns.verb)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
