"""The training recipe: one dataclass, filled from a TOML/JSON file and the command line.

``TrainConfig`` holds every knob of a run.  A recipe file (``configs/*.toml``
or ``.json``) sets any of its fields; ``--field value`` on the command line
overrides the file; ``--model key=value`` sets one key of the model's own
config.  Unknown keys are an error that lists the allowed ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict

from fieldpick.edge.errors import ConfigError

__all__ = ["TrainConfig", "load_config", "add_arguments", "config_from_args", "SCHEDULES"]

SCHEDULES = ("cosine", "onecycle", "constant")
DATASETS = ("ncedc", "synthetic", "corpus")


@dataclass
class TrainConfig:
    """Everything one training run needs.  Units are in the comments."""

    name: str = "model"                 # run name; the card's name
    architecture: str = "lppn"          # one of fieldpick.train.models.REGISTRY
    model: Dict[str, Any] = field(default_factory=dict)  # the model's Config fields
    data: str = "ncedc"                 # 'ncedc' (real windows), 'synthetic' or 'corpus' (several sets)
    datasets: str = "ncedc"             # data='corpus': comma list of sets ('ncedc', a labelled set's name
                                        # or an .npz path in the labelled format, e.g. teacher pseudo-labels)
    holdout: str = ""                   # data='corpus': comma list of sets left out of training entirely
    complete_labels: str = ""           # data='corpus': comma list of teachers whose mean fills the P or S labels
                                        # a set lacks where it peaks above 0.5 (fieldpick.train.pseudo); '' off
    soft_teachers: str = ""             # data='corpus': comma list of teachers whose mean P/S curves are soft
                                        # targets for every training trace (offline distillation); '' off
    soft_target_weight: float = 0.5     # share of the loss on those soft targets (the rest on the labels)
    set_weight_power: float = 0.5       # data='corpus': sets drawn in proportion to (event traces) ** power
    polarity_fraction: float = 0.5      # data='corpus': share of windows with their sign flipped
    swap_fraction: float = 0.5          # data='corpus': share of windows with N and E exchanged
    drop_one_fraction: float = 0.05     # data='corpus': share of windows with one horizontal zeroed
    data_dir: str = ""                  # NCEDC folder ('' = $FIELDPICK_NCEDC)
    out_dir: str = "runs/model"         # checkpoints, cards and history go here
    seed: int = 0
    threads: int = 1                    # torch CPU threads
    # --- optimisation
    epochs: int = 30
    steps_per_epoch: int = 0            # 0: one pass over the training windows
    batch_size: int = 16                # windows
    lr: float = 3e-3                    # peak learning rate (AdamW)
    weight_decay: float = 1e-4
    schedule: str = "cosine"            # 'cosine' (with warm-up), 'onecycle' or 'constant'
    warmup_epochs: float = 1.0
    patience: int = 8                   # epochs without a better validation F1 before stopping
    ema_decay: float = 0.0              # validate, keep and ship an exponential moving average of the weights
                                        # (per step; 0.99: about the last 100 steps); 0: the weights themselves
    # --- synthetic pre-training (fieldpick.lab.synthetic)
    pretrain_windows: int = 0           # synthetic event windows; 0: no pre-training
    pretrain_epochs: int = 0
    synthetic: Dict[str, Any] = field(default_factory=dict)  # fieldpick.lab.synthetic.SynthConfig overrides
    # --- data, labels and augmentation
    val_fraction: float = 0.2           # of the stations, held out for early stopping
    label_shape: str = "gaussian"       # 'gaussian' or 'triangle'
    label_width: float = 10.0           # samples (sigma or half width)
    positive_weight: float = 10.0       # P/S class weight against noise (stride and window classes)
    noise_fraction: float = 0.2         # share of training windows that are real noise only
    noise_add_fraction: float = 0.2     # share of event windows with a real noise window added
    vertical_only_fraction: float = 0.15  # share of windows with N and E zeroed
    # --- int8 headroom
    logit_bound: float = 0.0            # class logits beyond +-bound pay a squared penalty; 0: off
    logit_penalty: float = 1.0          # weight of that penalty (mean over cells and classes)
    offset_neighbours: float = 0.0      # stride models: weight of an offset loss on the cells either side of
                                        # an arrival (target: their edge nearest it); 0: off
    stability: float = 0.0              # stride models: weight of a consistency loss between each window and a
                                        # second pass with int8-sized rounding noise at the input and every ReLU
    p_range: tuple = (0.1, 0.75)        # where P may land in a random training crop (fraction of T)
    # --- scoring
    tolerance_s: float = 0.5            # a pick matches an arrival within this many seconds
    record_samples: int = 3000          # samples of each evaluation record a window classifier scans
    tune_thresholds: bool = True        # choose per-phase pick thresholds on the validation windows
    resume: bool = False                # continue from out_dir/last.pt
    progress: bool = True               # progress bars on stderr

    def validate(self):
        from fieldpick.train.models import REGISTRY

        if self.architecture not in REGISTRY:
            raise ConfigError("architecture %r; allowed: %s" % (self.architecture, ", ".join(REGISTRY)))
        if self.schedule not in SCHEDULES:
            raise ConfigError("schedule %r; allowed: %s" % (self.schedule, ", ".join(SCHEDULES)))
        if self.data not in DATASETS:
            raise ConfigError("data %r; allowed: %s" % (self.data, ", ".join(DATASETS)))
        if self.label_shape not in ("gaussian", "triangle"):
            raise ConfigError("label_shape %r; allowed: gaussian, triangle" % (self.label_shape,))
        for name in ("epochs", "batch_size", "threads", "record_samples"):
            if getattr(self, name) < 1:
                raise ConfigError("%s is %r; it must be >= 1" % (name, getattr(self, name)))
        for name in ("steps_per_epoch", "patience", "pretrain_windows", "pretrain_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError("%s is %r; it must be >= 0" % (name, getattr(self, name)))
        if not 0.0 <= self.soft_target_weight <= 1.0:
            raise ConfigError("soft_target_weight is %r; it must lie in [0, 1]" % (self.soft_target_weight,))
        if self.set_weight_power < 0:
            raise ConfigError("set_weight_power is %r; it must be >= 0" % (self.set_weight_power,))
        for name in ("lr", "label_width", "tolerance_s", "positive_weight"):
            if not getattr(self, name) > 0:
                raise ConfigError("%s is %r; it must be > 0" % (name, getattr(self, name)))
        for name in ("logit_bound", "logit_penalty", "offset_neighbours", "stability"):
            if getattr(self, name) < 0:
                raise ConfigError("%s is %r; it must be >= 0" % (name, getattr(self, name)))
        for name in ("noise_fraction", "noise_add_fraction", "vertical_only_fraction", "polarity_fraction",
                     "swap_fraction", "drop_one_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError("%s is %r; it must lie in [0, 1]" % (name, getattr(self, name)))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay is %r; it must lie in [0, 1) (0: off)" % (self.ema_decay,))
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("val_fraction is %r; it must lie in (0, 1)" % (self.val_fraction,))
        lo, hi = self.p_range
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError("p_range is %r; need 0 <= low < high <= 1" % (self.p_range,))
        if self.synthetic:
            from fieldpick.lab import synthetic

            synthetic.config(**self.synthetic)  # unknown or impossible generator options: named here
        if self.pretrain_windows and not self.pretrain_epochs:
            raise ConfigError("pretrain_windows is %d but pretrain_epochs is 0; give both" % self.pretrain_windows)
        return self

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["p_range"] = list(self.p_range)
        return d

    @classmethod
    def from_dict(cls, data, where="config"):
        """Build from a plain dict; unknown keys and wrong types are errors."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError("%s has unknown key(s) %s; allowed: %s" % (where, ", ".join(unknown), ", ".join(names)))
        kwargs = {}
        defaults = cls()
        for key, value in data.items():
            kwargs[key] = _coerce(key, getattr(defaults, key), value, where)
        return cls(**kwargs).validate()


def _coerce(key, default, value, where):
    """Check ``value`` against the type of the field's default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, tuple):
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)) and len(value) == len(default):
            try:
                return tuple(float(v) for v in value)
            except ValueError:
                pass
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError("%s: %s is %r; expected %s" % (where, key, value, type(default).__name__))


def load_config(path):
    """Read a recipe file (.toml or .json) into a :class:`TrainConfig`."""
    if not os.path.exists(path):
        raise ConfigError("config file %s does not exist" % path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config file %s is not valid TOML: %s" % (path, exc)) from None
    elif ext == ".json":
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except ValueError as exc:
            raise ConfigError("config file %s is not valid JSON: %s" % (path, exc)) from None
    else:
        raise ConfigError("config file %s has extension %r; allowed: .toml, .json" % (path, ext))
    return TrainConfig.from_dict(data, where=os.path.basename(path))


def add_arguments(parser: argparse.ArgumentParser):
    """One ``--field`` option per TrainConfig field (default: unset, so the file or the default wins)."""
    parser.add_argument("--config", metavar="FILE", help="recipe file (.toml or .json)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "model":
            parser.add_argument(flag, action="append", metavar="KEY=VALUE", default=None,
                                help="one model config key (repeatable), e.g. --model stride=16")
        elif f.name == "synthetic":
            parser.add_argument(flag, action="append", metavar="KEY=VALUE", default=None,
                                help="one synthetic-generator option for pre-training (repeatable), "
                                     "e.g. --synthetic sp_ratio_median=4.0")
        else:
            parser.add_argument(flag, dest=f.name, metavar=f.name.upper(), default=None,
                                help="(TrainConfig.%s, default %r)" % (f.name, getattr(TrainConfig(), f.name)))
    return parser


def _parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def config_from_args(args):
    """Merge the recipe file (if any) and the command-line overrides into one TrainConfig."""
    base = load_config(args.config).to_dict() if args.config else {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name in ("model", "synthetic"):
            merged = dict(base.get(f.name, {}))
            for item in value:
                if "=" not in item:
                    raise ConfigError("--%s %r; expected KEY=VALUE" % (f.name, item))
                key, text = item.split("=", 1)
                merged[key.strip()] = _parse_value(text)
            base[f.name] = merged
        else:
            base[f.name] = value
    return TrainConfig.from_dict(base, where="%s and the command line" % args.config if args.config else "command line")
