"""Logging for fieldpick: library modules log, only the command line configures.

Library code calls ``logging.getLogger(__name__)`` and never ``print``.  The
command-line entry point calls :func:`setup_logging` once; a program that
embeds fieldpick configures logging its own way.
"""

import logging
import sys

_ROOT = "fieldpick"
logging.getLogger(_ROOT).addHandler(logging.NullHandler())

_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    A plain StreamHandler keeps the stream it was made with; when a caller
    (a test harness, a daemon) swaps ``sys.stderr`` later, that stream may be
    closed.
    """

    def __init__(self):
        logging.StreamHandler.__init__(self, sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbosity=0, stream=None):
    """Configure the ``fieldpick`` logger once.

    verbosity: 0 warnings, 1 info (``-v``), 2 or more debug (``-vv``); a
    negative value shows errors only (``-q``).
    Calling it again replaces the handler: there is only ever one.
    Without ``stream`` it writes to whatever ``sys.stderr`` is when a record is logged.
    """
    level = logging.ERROR if verbosity < 0 else _LEVELS.get(min(verbosity, 2))
    logger = logging.getLogger(_ROOT)
    logger.setLevel(level)
    for h in [h for h in logger.handlers if getattr(h, "_fieldpick", False)]:
        logger.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler._fieldpick = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    return logger
