"""Checkpoints: a trained model, its config and its card, in one file.

A checkpoint is a ``torch.save`` dict that starts with a format tag and a
version, like every file fieldpick writes::

    {"format": "fieldpick-checkpoint", "version": 1,
     "architecture": "lppn", "config": {...}, "state_dict": {...},
     "card": {...model card dict...}, "extra": {...}}

``extra`` holds what a resumable run needs (optimiser state, epoch,
history); it is optional.
"""

from __future__ import annotations

import dataclasses
import os

from fieldpick.edge.card import ModelCard
from fieldpick.edge.errors import ModelError

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "fieldpick-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path, model, card=None, extra=None):
    """Write ``model`` (a zoo model) with its config and card; atomic (write then rename)."""
    import torch

    card = card if card is not None else model.card()
    blob = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "architecture": model.architecture,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "card": card.to_dict(),
        "extra": extra or {},
    }
    tmp = str(path) + ".tmp"
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint: returns ``(model, card, extra)``.

    The model is in eval mode and its ``thresholds`` are the card's.
    """
    import torch

    from .models import build

    try:
        blob = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise ModelError("checkpoint %s does not exist" % path) from None
    except Exception as exc:  # torch raises many kinds on a corrupt file
        raise ModelError("checkpoint %s cannot be read (%s): truncated or not a checkpoint" % (path, exc)) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ModelError("%s is not a fieldpick checkpoint (format tag %r)" % (path, blob.get("format") if isinstance(blob, dict) else None))
    if blob.get("version") != CHECKPOINT_VERSION:
        raise ModelError(
            "%s is checkpoint version %r; this fieldpick reads version %d" % (path, blob.get("version"), CHECKPOINT_VERSION)
        )
    model = build(blob["architecture"], blob["config"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    card = ModelCard.from_dict(blob["card"], where="%s card" % os.path.basename(str(path)))
    # the card's thresholds were tuned on validation stations: a loaded model picks with them
    model.thresholds = dict(card.thresholds)
    return model, card, blob.get("extra", {})
