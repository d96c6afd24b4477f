"""int8 by post-training calibration: the recipe, and its check against float32.

The recipe (measured in ``benchmarks/pareto.py``; see ``docs/compression.md``):

1. Train in float32 (``fieldpick train`` / ``distill`` / ``prune``).  BatchNorm
   follows every convolution and folds into it at export, ReLU bounds the
   activations, and the outputs are a softmax and a sigmoid: ranges int8
   holds well.
2. Calibrate full int8 (per-channel weights, per-tensor activations, int8
   input and output) with onnx2tf on windows that look like what the station
   sees (:func:`calibration_windows`): synthetic events at many SNRs
   (-5..40 dB, half at the generator's own NCEDC-like SNRs) with real-world
   troubles (spikes, gaps, dead channels), synthetic noise, and the real
   NCEDC windows of the *training* stations only (events with P anywhere in
   the window, and their pre-event noise), all normalised as the card says.
   The test stations of a fold are never used for calibration.
3. Check: the int8 TFLite model picks the held-out stations' windows and its
   P and S F1 are compared with the float32 TFLite model's and PyTorch's
   (:func:`int8_scores`), with the same thresholds.

Measured on the 3k-parameter LPPN students (``benchmarks/results/pareto.md``):
the recipe kept one within 0.01 F1 of float32 (pooled over 5 station folds)
and not another (-0.035 P); clipping the calibration range did not fix it.
So calibration alone is not a guarantee: step 3 must be run on every model
to ship, and quantisation-aware training (not built yet) is the next step
where it fails.
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np

from fieldpick.edge.errors import DataError

__all__ = ["calibration_windows", "export_tflite", "tflite_outputs", "score_outputs", "int8_scores", "fake_round",
           "FakeQuant",
           "qat_finetune"]

log = logging.getLogger(__name__)


def calibration_windows(card, train_data=None, n_synthetic=200, seed=0, clip_percentile=None):
    """Normalised (N, C, T) calibration windows for ``card``: synthetic at many SNRs + real training stations.

    train_data: a :class:`~fieldpick.train.data.windows.RealData` of the stations the
    model trained on (its event traces are cropped with P at 10-50 % of the
    window, and its pre-P noise windows are added), or None for synthetic
    windows only.  Returns ``(windows, source)``, ``source`` an (N,) array
    of 'synthetic', 'ncedc-event' or 'ncedc-noise'.  clip_percentile: clip
    the windows to +-(that percentile of |x|), so that the int8 input scale
    (set by the calibration's extreme samples: spikes, clipped S) keeps
    resolution for onsets near the noise; larger inputs saturate at run time.
    """
    from fieldpick.export.calibrate import normalise, synthetic_windows
    from fieldpick.train.data.windows import pad_noise

    spec = card.input
    t = spec.window_samples
    x, _, _ = synthetic_windows(n_synthetic, t, spec.sampling_rate_hz, seed)
    parts, src = [x], ["synthetic"] * len(x)
    if train_data is not None and len(train_data.events):
        ev = train_data.events
        if ev.window_samples < t:
            raise DataError("training traces have %d samples; calibration needs %d" % (ev.window_samples, t))
        rng = np.random.default_rng(seed + 1)
        p = np.where(np.isfinite(ev.p_idx), ev.p_idx, ev.window_samples / 2.0)
        start = np.clip(p - rng.uniform(0.1, 0.5, len(ev)) * t, 0, ev.window_samples - t).astype(np.int64)
        idx = start[:, None] + np.arange(t)[None, :]
        crops = np.take_along_axis(ev.waveforms, np.broadcast_to(idx[:, None, :], (len(ev), 3, t)), -1)
        noise, _ = pad_noise(train_data.noise, t)
        parts += [crops, noise]
        src += ["ncedc-event"] * len(crops) + ["ncedc-noise"] * len(noise)
    windows = normalise(np.concatenate([np.asarray(q, dtype=np.float32) for q in parts]), spec.normalisation)
    if clip_percentile is not None:
        if not 50.0 < clip_percentile <= 100.0:
            raise DataError("clip_percentile %r; it must lie in (50, 100]" % (clip_percentile,))
        bound = float(np.percentile(np.abs(windows), clip_percentile))
        windows = np.clip(windows, -bound, bound)
    return windows, np.array(src)


def export_tflite(model, card, calibration, out_dir, stem="model", timeout_s=900, equalise=None):
    """PyTorch -> ONNX -> TFLite float32 and full int8 (calibrated on ``calibration``, (N, C, T)).

    Uses the export package's steps (export view, ONNX, onnx2tf); no parity
    gates here (``fieldpick export`` has them): the comparison that matters
    for this module is F1 (:func:`int8_scores`).  Returns ``{"onnx", "fp32",
    "int8"}`` paths.  equalise: the export's activation equalisation power
    (:func:`fieldpick.export.equalise.equalise`), or None.
    """
    from fieldpick.export import adapters
    from fieldpick.export import equalise as equalise_step
    from fieldpick.export import onnx as onnx_step
    from fieldpick.export import tflite as tflite_step

    os.makedirs(out_dir, exist_ok=True)
    view, _ = adapters.export_view(model)
    if equalise is not None:
        view, _ = equalise_step.equalise(view, calibration, equalise)
    spec = card.input
    onnx_path = os.path.join(out_dir, stem + ".onnx")
    onnx_step.export_onnx(view.eval(), onnx_path, len(spec.channels), spec.window_samples)
    made = tflite_step.convert(onnx_path, out_dir, calibration_ntc=calibration.transpose(0, 2, 1),
                               input_name=onnx_step.INPUT_NAME, timeout_s=timeout_s)
    paths = {"onnx": onnx_path, "fp32": os.path.join(out_dir, stem + "_fp32.tflite"),
             "int8": os.path.join(out_dir, stem + "_int8.tflite")}
    os.replace(made["float32"], paths["fp32"])
    os.replace(made["int8"], paths["int8"])
    shutil.rmtree(made["scratch"], ignore_errors=True)
    return paths


def tflite_outputs(path, windows):
    """Outputs of a .tflite model on normalised (N, C, T) windows, in PyTorch layout (N, C', L)."""
    from fieldpick.export.tflite import run_tflite

    out = run_tflite(path, np.ascontiguousarray(windows.transpose(0, 2, 1)))
    if len(out) != 1:
        raise DataError("%s has %d outputs; the zoo's per-window cards declare one" % (path, len(out)))
    return out[0].transpose(0, 2, 1)


def score_outputs(run, card, test, cfg):
    """Pick and score one model on the fixed windows of ``test`` (a RealData).

    run: a function from normalised (N, C, T) windows to outputs (N, C', L).
    Returns :func:`fieldpick.lab.scoring.score`'s dict plus, under
    ``"_raw"``, what pooling over folds needs.
    """
    from fieldpick.edge.stream.windows import normalise
    from fieldpick.lab.scoring import score
    from fieldpick.train.data.windows import eval_windows, pad_noise
    from fieldpick.train.score import picks_from_outputs

    t = card.input.window_samples
    events = eval_windows(test, t)
    norm = card.input.normalisation
    picks = picks_from_outputs(run(normalise(events.waveforms, norm)), card)
    noise, valid = pad_noise(test.noise, t)
    npicks = [[pk for pk in w if pk[1] < valid] for w in picks_from_outputs(run(normalise(noise, norm)), card)]
    seconds = len(noise) * valid / events.fs
    s = score(picks, events.p_idx, events.s_idx, events.fs, cfg.tolerance_s, npicks, seconds)
    s["_raw"] = (picks, events.p_idx, events.s_idx, npicks, seconds)
    return s


def int8_scores(model, card, train_data, test, cfg, out_dir, n_synthetic=200, seed=0, clip_percentile=None,
                qat_epochs=0, val_data=None, equalise=None):
    """Scores of ``model`` in PyTorch, TFLite float32 and TFLite full int8 on ``test``, same thresholds.

    The int8 model is calibrated on :func:`calibration_windows` of
    ``train_data``.  With ``qat_epochs``, the model is first fine-tuned
    (in place) under :class:`FakeQuant` on ``train_data`` with ``val_data``
    for its thresholds.  equalise: as :func:`export_tflite`.  Returns
    ``({"torch": s, "fp32": s, "int8": s}, paths)``.
    """
    import torch

    from fieldpick.export.onnx import run_torch

    calib, src = calibration_windows(card, train_data, n_synthetic, seed, clip_percentile)
    log.info("calibrating on %d windows (%s)", len(calib),
             ", ".join("%d %s" % (int(np.sum(src == k)), k) for k in np.unique(src)))
    if qat_epochs:
        qat_finetune(model, cfg, train_data, val_data, out_dir, qat_epochs, calib)
        card = model.card()  # the thresholds tuned under fake quantisation
    paths = export_tflite(model, card, calib, out_dir, equalise=equalise)
    paths["int8_bytes"] = os.path.getsize(paths["int8"])
    paths["fp32_bytes"] = os.path.getsize(paths["fp32"])
    model.eval()
    with torch.no_grad():
        runs = {"torch": lambda x: run_torch(model, x)[0],
                "fp32": lambda x: tflite_outputs(paths["fp32"], x),
                "int8": lambda x: tflite_outputs(paths["int8"], x)}
        return {k: score_outputs(f, card, test, cfg) for k, f in runs.items()}, paths


def fake_round(x, scale, lo, hi):
    """``x`` (a tensor) rounded to int8 steps of ``scale`` within [lo, hi] steps, as full-int8 TFLite holds it.

    The gradient passes the rounding unchanged (straight-through estimator).
    """
    q = (x / scale).round().clamp(lo, hi) * scale
    return x + (q - x).detach()


class FakeQuant:
    """Quantisation-aware fine-tuning hooks: int8 rounding of the input and of every ReLU output.

    The forward pass sees what the int8 TFLite model computes at the places
    where it loses most: the input (int8 with the scale the calibration
    windows give, ``max|x| / 127``; larger samples saturate) and each ReLU
    activation (per-tensor, 255 levels over [0, running max]).  Gradients
    pass the rounding unchanged (straight-through estimator; Jacob et al.
    2018).  Weights stay float: onnx2tf quantises them per channel, which
    costs little.  ``remove()`` takes the hooks off.
    """

    def __init__(self, model, calibration, momentum=0.05):
        import torch

        self.scale_in = float(np.abs(calibration).max()) / 127.0
        if not self.scale_in > 0:
            raise DataError("calibration windows are all zero; they cannot set an input scale")
        self.momentum = momentum
        self.maxima = {}
        self.handles = [model.register_forward_pre_hook(self._input)]
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.ReLU):
                self.handles.append(m.register_forward_hook(self._activation(name)))

    def _input(self, module, args):
        return (fake_round(args[0], self.scale_in, -128, 127),) + tuple(args[1:])

    def _activation(self, name):
        def hook(module, args, out):
            peak = float(out.detach().max())
            if module.training or name not in self.maxima:
                old = self.maxima.get(name, peak)
                self.maxima[name] = old + self.momentum * (peak - old) if name in self.maxima else peak
            scale = max(self.maxima[name], 1e-8) / 255.0
            return fake_round(out, scale, 0, 255)
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def qat_finetune(model, cfg, train_data, val_data, out_dir, epochs, calibration):
    """Fine-tune ``model`` in place for ``epochs`` epochs under :class:`FakeQuant`; returns the history.

    Uses the ordinary trainer (the model's own task, last epoch kept) with
    the hooks on, then tunes the thresholds on ``val_data`` with the hooks
    still on (the int8 model's view) and takes them off.
    """
    import torch

    from fieldpick.train.data.windows import real_source
    from fieldpick.train.loop import fit
    from fieldpick.train.tasks import record_samples
    from fieldpick.train.validate import tune_thresholds

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    fq = FakeQuant(model, calibration)
    try:
        source = real_source(cfg, train_data, record_samples(model, cfg), model.card().input.normalisation)
        history = fit(model, cfg, source, val_data, out_dir, epochs=epochs, stage="qat", select="last")
        if cfg.tune_thresholds:
            tune_thresholds(model, val_data, cfg)
    finally:
        fq.remove()
    return history
