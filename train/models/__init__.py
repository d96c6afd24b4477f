"""The picker zoo: one network per file, each declaring its I/O contract.

Every model class:
- takes one ``@dataclass`` config (its hyperparameters) in its constructor;
- has a class attribute ``architecture`` (the registry name);
- reads (B, C, T) float32 normalised windows and returns what its card's
  ``output.kind`` says;
- returns its contract as a :class:`~fieldpick.edge.card.ModelCard`
  template from ``card()`` (no file fields yet: export fills those).

``build(architecture, config_dict)`` makes one from a plain dict, which is
what checkpoints store.
"""

from __future__ import annotations

import dataclasses
import importlib

from fieldpick.edge.errors import ConfigError

__all__ = ["REGISTRY", "build"]

#: architecture name -> "module:Class" (modules imported only when built)
REGISTRY = {
    "phasenet": "fieldpick.train.models.phasenet:PhaseNet",
    "lppn": "fieldpick.train.models.lppn:LPPN",
    "leqnet": "fieldpick.train.models.leqnet:LEQNet",
    "cpic": "fieldpick.train.models.cpic:CPIC",
}


def _class(architecture):
    if architecture not in REGISTRY:
        raise ConfigError("architecture %r; allowed: %s" % (architecture, ", ".join(REGISTRY)))
    module, name = REGISTRY[architecture].split(":")
    return getattr(importlib.import_module(module), name)


def build(architecture, config=None):
    """Build a model from its architecture name and a config dict (unknown keys are an error)."""
    cls = _class(architecture)
    config = dict(config or {})
    names = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ConfigError(
            "%s config has unknown key(s) %s; allowed: %s" % (architecture, ", ".join(unknown), ", ".join(sorted(names)))
        )
    return cls(cls.Config(**config))
