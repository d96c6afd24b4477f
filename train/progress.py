"""Progress bars for long workstation jobs: loss, F1 and time left, silent off a terminal.

One call, :func:`bar`, wraps tqdm so that every long job (training,
distillation, pruning sweeps, export calibration, benchmarks) shows the same
kind of bar on a terminal and writes nothing at all into a log file, a pipe
or a CI job::

    from fieldpick.train.progress import bar, show

    with bar(total=epochs * steps, desc="train", unit="step") as pb:
        for step in ...:
            pb.update(1)
            show(pb, loss=loss, f1=f1)

tqdm prints the elapsed time and the time left (``<``) itself once it knows
``total``.  ``FIELDPICK_PROGRESS=1`` forces bars on (e.g. under ``script``),
``FIELDPICK_PROGRESS=0`` forces them off.  Without tqdm installed the bar is a
silent stand-in with the same methods, so a job never fails for lack of it.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["enabled", "bar", "show", "note", "Silent"]

log = logging.getLogger(__name__)

_ENV = "FIELDPICK_PROGRESS"


def enabled(stream=None, want=True) -> bool:
    """Whether a bar should be drawn on ``stream`` (default stderr).

    want: the caller's own switch (e.g. ``TrainConfig.progress``); False
    always wins.  Otherwise ``FIELDPICK_PROGRESS`` ('0'/'1') decides when
    set, else whether ``stream`` is a terminal.
    """
    if not want:
        return False
    env = os.environ.get(_ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    if env:
        log.warning("%s=%r ignored; allowed: '0' (off) or '1' (on)", _ENV, env)
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Silent:
    """A bar that draws nothing: iterates its iterable and counts, nothing else."""

    def __init__(self, iterable=None, total=None, **_):
        self.iterable = iterable
        self.total = total
        self.n = 0
        self.postfix = {}

    def __iter__(self):
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.n += 1

    def __len__(self):
        return len(self.iterable) if self.iterable is not None else int(self.total or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n=1):
        self.n += n

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix = dict(ordered_dict or {}, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = {"": s}

    def set_description(self, desc=None, refresh=True):
        pass

    def close(self):
        pass


def bar(iterable=None, total=None, desc="", unit="it", leave=False, stream=None, want=True):
    """A tqdm bar on ``stream`` (stderr) when :func:`enabled`, else a :class:`Silent` one.

    iterable/total: what to count (``total`` defaults to ``len(iterable)``
    when it has one, which gives the time left).  unit: what one step is
    ('step', 'window', 'batch').  leave: keep the finished bar on screen.
    want: the caller's own on/off switch.
    """
    stream = sys.stderr if stream is None else stream
    if not enabled(stream, want):
        return Silent(iterable, total)
    try:
        from tqdm import tqdm
    except ImportError:
        log.debug("tqdm is not installed; progress bars are off")
        return Silent(iterable, total)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True)


def _fmt(value):
    if isinstance(value, float):
        return "%.4f" % value if abs(value) < 1000 else "%.4g" % value
    return str(value)


def show(pb, **metrics):
    """Put ``metrics`` (e.g. ``loss=0.1234, f1=0.91``) beside the bar; None values are left out."""
    pb.set_postfix({k: _fmt(v) for k, v in metrics.items() if v is not None}, refresh=False)


def note(pb, message):
    """A line of text above the bar (on a terminal) or in the log (otherwise)."""
    if isinstance(pb, Silent):
        log.info("%s", message)
        return
    pb.write(message, file=pb.fp)
