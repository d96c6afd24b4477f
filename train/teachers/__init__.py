"""Pretrained pickers of other groups as teachers on the workstation.

One interface for every family::

    from fieldpick.train.teachers import load_teacher
    t = load_teacher("lppnm")        # weights from $FIELDPICK_TEACHERS
    probs = t.predict(waves, fs=100.0)   # (N, 3, T) Z, N, E raw units -> (N, 2, T) P, S per sample

Each adapter does its model's own channel order, normalisation and
windowing.  The weights are never part of fieldpick: point
``FIELDPICK_TEACHERS`` at the folder that holds them (``phasenet/``,
``phasenetlight_ethz/``, ``pnsn/``, ``gpd/``).  Heavy libraries
(onnxruntime, torch, TensorFlow, scipy) are imported only by the adapter
that needs them.
"""

from __future__ import annotations

from .base import ENV, FixedWindowTeacher, Teacher
from .ensemble import ENSEMBLE_NAMES, Ensemble
from .registry import (
    ADAPTER_VERSION,
    DEFAULT_DIR,
    EXTRA_TEACHERS,
    TEACHER_FACTS,
    TEACHER_NAMES,
    TEACHERS_DIR,
    load_teacher,
    teachers_dir,
)

__all__ = ["load_teacher", "teachers_dir", "ADAPTER_VERSION", "TEACHER_NAMES", "EXTRA_TEACHERS", "TEACHERS_DIR", "TEACHER_FACTS",
           "Teacher", "FixedWindowTeacher", "Ensemble", "ENSEMBLE_NAMES", "ENV", "DEFAULT_DIR"]
