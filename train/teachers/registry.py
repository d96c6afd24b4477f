"""The teachers this project knows: their names, facts, weights folder, and :func:`load_teacher`."""

from __future__ import annotations

import os

from fieldpick.edge.errors import ConfigError

from .base import ENV

__all__ = ["load_teacher", "teachers_dir", "ADAPTER_VERSION", "TEACHER_NAMES", "EXTRA_TEACHERS", "TEACHERS_DIR",
           "TEACHER_FACTS", "DEFAULT_DIR"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: changes whenever an adapter's output changes (window combining, padding, units): put it in the key of
#: any cache of teacher curves
ADAPTER_VERSION = 2

#: the teachers folder when ``FIELDPICK_TEACHERS`` is not set
DEFAULT_DIR = os.path.normpath(os.path.join(_REPO, "..", "shared", "data", "teachers"))

#: the teachers folder at import time (:func:`teachers_dir` reads the environment at each call)
TEACHERS_DIR = os.environ.get(ENV) or DEFAULT_DIR

_CHINA = "China national network 2009-2019"

#: name -> (family, trained on, licence)
TEACHER_FACTS = {
    "phasenet": ("PhaseNet (Zhu & Beroza 2019)", "NCEDC, northern California", "MIT"),
    "phasenetlight": ("PhaseNetLight (SeisBench; Zhu & Beroza 2019, reduced)", "ETHZ, Switzerland", "GPL-3.0"),
    "lppnt": ("LPPN tiny (PNSN)", _CHINA, "GPL-3.0"),
    "lppnm": ("LPPN medium (PNSN)", _CHINA, "GPL-3.0"),
    "lppnl": ("LPPN large (PNSN)", _CHINA, "GPL-3.0"),
    "rnn": ("BRNN (PNSN)", _CHINA, "GPL-3.0"),
    "eqt": ("EQTransformer (PNSN)", _CHINA, "GPL-3.0"),
    "unet": ("U-Net (PNSN)", _CHINA, "GPL-3.0"),
    "gpd": ("GPD (Ross et al. 2018)", "southern California network picks", "MIT"),
}

#: teachers that load but are not among :data:`TEACHER_NAMES`: GPD classifies 4 s windows, so as a
#: per-sample picker it fires through P and S codas (on 20 NCEDC windows of 45 s, P F1 0.26 at a
#: threshold of 0.3, 0.78 at its published 0.95, S F1 0.18 and 0.69), it costs about 100 CPU s per
#: station-hour (50 to 300 times the others), and its input recipe follows its authors' published
#: prediction script, which was not checked against the paper's text
EXTRA_TEACHERS = ("gpd",)

#: the teachers to use: every one :func:`load_teacher` knows but :data:`EXTRA_TEACHERS`
TEACHER_NAMES = tuple(n for n in TEACHER_FACTS if n not in EXTRA_TEACHERS)


def teachers_dir(root=None):
    """``root``, else ``$FIELDPICK_TEACHERS``, else ``shared/data/teachers`` beside the repository."""
    return root or os.environ.get(ENV) or DEFAULT_DIR


def load_teacher(name, root=None, threads=1):
    """The teacher called ``name`` (one of :data:`TEACHER_NAMES` or :data:`EXTRA_TEACHERS`), weights from ``root``.

    threads: intra-op threads of its runtime (onnxruntime, torch, TensorFlow).
    Raises :class:`ConfigError` for an unknown name, :class:`DataError` when
    its files are absent.
    """
    if name not in TEACHER_FACTS:
        raise ConfigError("teacher %r; allowed: %s" % (name, ", ".join(TEACHER_NAMES + EXTRA_TEACHERS)))
    family, trained_on, licence = TEACHER_FACTS[name]
    root = teachers_dir(root)
    facts = dict(family=family, trained_on=trained_on, licence=licence)
    if name == "phasenet":
        from .phasenet import PhaseNetTeacher

        return PhaseNetTeacher(name, root, threads, **facts)
    if name == "gpd":
        from .gpd import GpdTeacher

        return GpdTeacher(name, root, threads, **facts)
    if name == "phasenetlight":
        from .phasenetlight import PhaseNetLightTeacher

        return PhaseNetLightTeacher(name, root, threads, **facts)
    from .pnsn import PnsnTeacher

    return PnsnTeacher(name, root, threads, **facts)
