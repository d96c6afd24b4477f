"""A weighted mean of several teachers' probability curves, behind the same ``predict`` interface."""

from __future__ import annotations

import numpy as np

from fieldpick.edge.errors import ConfigError

from .base import Teacher, check_waves

__all__ = ["Ensemble", "ENSEMBLE_NAMES"]

#: the default ensemble: the PNSN LPPN family, BRNN, EQTransformer and PhaseNetLight (PhaseNet is left
#: out because it was trained on northern California, where most labelled sets come from)
ENSEMBLE_NAMES = ("lppnt", "lppnm", "lppnl", "rnn", "eqt", "phasenetlight")


class Ensemble(Teacher):
    """Mean of the teachers ``names`` (names or loaded :class:`Teacher` objects), weighted by ``weights``.

    ``predict`` returns sum_i w_i p_i / sum_i w_i, (N, 2, T) float32.
    """

    family = "ensemble"
    licence = "as its members"

    def __init__(self, names=ENSEMBLE_NAMES, weights=None, root=None, threads=1):
        super().__init__(threads)
        from .registry import load_teacher

        names = list(names)
        if not names:
            raise ConfigError("an ensemble of no teachers; name at least one")
        if weights is None:
            weights = [1.0] * len(names)
        weights = [float(w) for w in weights]
        if len(weights) != len(names):
            raise ConfigError("%d weights for %d teachers; give one weight per teacher" % (len(weights), len(names)))
        if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError("ensemble weights %r; give finite weights >= 0 with a positive sum" % (weights,))
        self.members = [n if isinstance(n, Teacher) else load_teacher(n, root=root, threads=threads) for n in names]
        self.weights = weights
        self.name = "ensemble(%s)" % "+".join(m.name for m in self.members)
        self.trained_on = "; ".join(sorted({m.trained_on for m in self.members}))

    def predict(self, waves, fs=100.0):
        x = check_waves(waves)
        total = None
        for member, w in zip(self.members, self.weights):
            if w == 0:
                continue
            p = member.predict(x, fs=fs) * np.float32(w)
            total = p if total is None else total + p
        return (total / np.float32(sum(self.weights))).astype(np.float32)
