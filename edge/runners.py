"""The model seam: runners (anything with ``card`` and ``run(batch)``) and loading the bundled one.

:class:`InterpreterRunner` puts the TFLite interpreter (any back end) behind
the seam; :class:`EnergyRatioRunner` is a classic, untrained stand-in;
:func:`load_runner` builds a runner from a card path or ``'default'``, and
:func:`default_card_path` says which bundled card is the default.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .card import ModelCard
from .errors import BackendError, ConfigError

__all__ = ["Runner", "InterpreterRunner", "EnergyRatioRunner", "load_runner", "default_card_path",
           "DEFAULT_CARD", "AUTO_ORDER"]

log = logging.getLogger(__name__)


class Runner:
    """The model seam: anything with ``card`` and ``run(batch) -> outputs``.

    batch: float32 windows in the card's input layout (``(B, T, C)`` for
    'NTC').  outputs: an array or a list of arrays with B first, as
    :func:`~fieldpick.edge.picker.output_traces` reads them.
    """

    card: ModelCard

    def run(self, batch):  # pragma: no cover - interface
        raise NotImplementedError


class InterpreterRunner(Runner):
    """The TFLite interpreter (any back end) behind the runner seam."""

    def __init__(self, model_path, card, backend="numpy"):
        from .tflite.interpreter import Interpreter

        self.card = card
        self.interpreter = Interpreter(model_path, backend=backend)

    def run(self, batch):
        return self.interpreter.run(batch, dequantize=True)


class EnergyRatioRunner(Runner):
    """A classic, untrained picker behind the runner seam (tests, benchmarks, baselines).

    For each window (B, T, C) it computes, per sample, the log10 ratio of the
    mean energy in the ``after_s`` seconds from the sample on to the mean
    energy in the ``before_s`` seconds before it, on Z for P and on the
    horizontals for S (S only where the horizontals carry most of the energy
    after the sample).  The ratio peaks at an onset; it is mapped to a
    "probability" by ``clip((log10 ratio - lo) / (hi - lo), 0, 1)``.  Outputs
    are per-sample traces in the card's label order and output layout.  It is
    deterministic and needs only numpy; it is NOT a trained network.
    """

    def __init__(self, card, before_s=3.0, after_s=0.5, lo=0.7, hi=1.7):
        if card.output.kind != "probabilities":
            raise ConfigError("EnergyRatioRunner writes per-sample 'probabilities'; card kind is %r"
                              % card.output.kind)
        self.card = card
        fs = card.input.sampling_rate_hz
        self.nb, self.na = max(1, int(before_s * fs)), max(1, int(after_s * fs))
        self.lo, self.hi = lo, hi
        self._z = card.input.channels.index("Z") if "Z" in card.input.channels else 0
        self._h = [i for i, c in enumerate(card.input.channels) if c != "Z"]

    def _ratio(self, e):
        """log10(mean e[t:t+na] / mean e[t-nb:t]) along the last axis, (B, T); 0 where a
        window would leave the data.  Also the mean energy after each sample."""
        B, T = e.shape
        nb, na = self.nb, self.na
        c = np.zeros((B, T + 1))
        np.cumsum(e, axis=1, out=c[:, 1:])
        r = np.zeros((B, T))
        after = np.zeros((B, T))
        hi = T - na + 1
        if hi > nb:
            mid = c[:, nb:hi]
            after[:, nb:hi] = (c[:, nb + na:T + 1] - mid) / na
            before = (mid - c[:, 0:hi - nb]) / nb
            r[:, nb:hi] = np.log10((after[:, nb:hi] + 1e-12) / (before + 1e-12))
        return r, after

    def run(self, batch):
        x = np.asarray(batch, dtype=np.float64)
        if self.card.input.layout == "NTC":
            x = np.transpose(x, (0, 2, 1))
        x = x - x.mean(axis=-1, keepdims=True)
        e = x * x
        rp, ez = self._ratio(e[:, self._z])
        p = np.clip((rp - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        if self._h:
            rs, eh = self._ratio(e[:, self._h].sum(axis=1))
            horiz = eh / (eh + ez * len(self._h) + 1e-12)
            s_ = np.clip((rs - self.lo) / (self.hi - self.lo), 0.0, 1.0) * (horiz > 0.8)
        else:
            s_ = np.zeros_like(p)
        p = p * (1.0 - s_)
        out = []
        for lab in self.card.output.labels:
            out.append(p if lab == "P" else s_ if lab == "S" else np.clip(1.0 - p - s_, 0.0, 1.0))
        y = np.stack(out, axis=1).astype(np.float32)  # (B, K, T)
        return y if self.card.output.layout == "NCT" else np.ascontiguousarray(np.transpose(y, (0, 2, 1)))


DEFAULT_CARD = "fieldpick-default.json"


def default_card_path(models_dir=None):
    """The bundled model's card, or None when edge/models/ holds no card.

    Which card is the default is said, never guessed from file order: the
    file ``DEFAULT`` in the folder names it (one line, a card file name);
    without it, the card named :data:`DEFAULT_CARD`; without that, the only
    card there.  Several cards and nothing naming one is a ConfigError.
    models_dir: the folder (edge/models/ when None).
    """
    here = models_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
    if not os.path.isdir(here):
        return None
    cards = sorted(n for n in os.listdir(here) if n.endswith(".json"))
    marker = os.path.join(here, "DEFAULT")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            name = f.read().strip()
        if name not in cards:
            raise ConfigError("%s names the default card %r, which is not there; allowed: %s"
                              % (marker, name, ", ".join(cards) or "(no .json card in the folder)"))
        return os.path.join(here, name)
    if DEFAULT_CARD in cards:
        return os.path.join(here, DEFAULT_CARD)
    if len(cards) > 1:
        raise ConfigError("%s holds %d cards (%s) and none is named %r; write the default's file name "
                          "into %s or give the card path" % (here, len(cards), ", ".join(cards), DEFAULT_CARD, marker))
    return os.path.join(here, cards[0]) if cards else None


_BACKEND_NAMES = {"numpy": "numpy", "litert": "litert", "tflite-runtime": "tflite", "onnxruntime": "onnx"}


#: what ``backend: "auto"`` tries, fastest first; numpy is always there
AUTO_ORDER = ("litert", "tflite-runtime", "numpy")


def load_runner(model, backend="numpy"):
    """Card + interpreter from a card path (or 'default'); returns an :class:`InterpreterRunner`.

    backend 'auto': ai-edge-litert where it is installed, else tflite-runtime,
    else the numpy runtime (the choice is logged).  The optimised TFLite
    kernels may differ from the reference (and numpy) by a few output steps.
    """
    path = default_card_path() if model == "default" else model
    if path is None:
        raise ConfigError("model is 'default' but no model is bundled in edge/models/; give a card path")
    if backend == "auto":
        for name in AUTO_ORDER:
            try:
                runner = load_runner(path, name)
            except BackendError as exc:
                log.debug("backend auto: %s not available (%s)", name, exc)
                continue
            log.info("backend auto: using %s", name)
            return runner
    card = ModelCard.load(path)
    model_path = card.model_path(path)
    if backend == "onnxruntime":
        model_path = os.path.splitext(model_path)[0] + ".onnx"
    return InterpreterRunner(model_path, card, _BACKEND_NAMES[backend])

