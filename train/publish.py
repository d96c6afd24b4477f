"""Choosing the final model of a training run and publishing it.

After a validation run (and optionally a cross-validation), a final model
may be retrained on all stations: its epoch count and pick thresholds come
from the fold models when there are any (:func:`final_epochs`,
:func:`final_thresholds`); :func:`publish` writes it with its card.
"""

from __future__ import annotations

import os

import numpy as np

from fieldpick.train.loop import best_epoch

__all__ = ["final_epochs", "final_thresholds", "publish", "metric_set"]


def final_epochs(fold_epochs, history, stage="train"):
    """The epoch count of a final retrain on all stations, and the rule that chose it.

    The median of the fold models' best epochs when the recipe was
    cross-validated (five validation splits), else the validation run's own.
    """
    fold_epochs = [e for e in fold_epochs if e]
    if fold_epochs:
        return int(np.ceil(np.median(fold_epochs))), "median of the %d fold models' best epochs %s" % (
            len(fold_epochs), fold_epochs)
    return best_epoch(history, stage), "best epoch of the validation run"


def final_thresholds(fold_thresholds, own):
    """The pick thresholds of a final model, and the rule that chose them.

    Per phase, the median of the fold models' tuned thresholds when the
    recipe was cross-validated (five validation splits of ~25 windows each,
    whose choices scatter by 0.3), else ``own``, the validation run's.
    """
    fold_thresholds = [t for t in fold_thresholds if t]
    if not fold_thresholds:
        return dict(own), "tuned on the validation stations"
    out = {ph: float(np.median([t[ph] for t in fold_thresholds])) for ph in sorted(fold_thresholds[0])}
    return out, "median of the %d fold models' tuned thresholds %s" % (len(fold_thresholds), fold_thresholds)


def publish(model, card, prefix):
    """Write ``model`` as PREFIX.pt and its ``card`` as PREFIX.json (``--publish``); returns ``prefix``."""
    from fieldpick.train.checkpoint import save_checkpoint

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    save_checkpoint(prefix + ".pt", model, card)
    card.save(prefix + ".json")
    return prefix


def metric_set(split, values):
    from fieldpick.edge.card import MetricSet

    return MetricSet(data="ncedc", split=split,
                     values={k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and np.isfinite(v)})
