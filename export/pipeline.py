"""One model from checkpoint to shipped files: ONNX, TFLite float32, TFLite full int8, cards.

:func:`export_checkpoint` writes into ``out_dir``::

    model.onnx          + model.json        (NCT input, float32)
    model_fp32.tflite   + model_fp32.json   (NTC input, float32)
    model_int8.tflite   + model_int8.json   (NTC input, int8 in and out)
    export_report.json  (parity figures, operator histograms, red flags, timings)

Each step is gated; a missed gate raises with the measured number and the
files of the steps that passed stay where they are.  Parity is measured on
windows drawn with another seed (and other NCEDC stations) than the int8
calibration windows.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from fieldpick.edge.card import MetricSet, ModelCard, Quantisation, TensorSpec
from fieldpick.edge.errors import ConfigError, FieldpickError

from . import adapters, calibrate, equalise, flops, parity
from . import onnx as onnx_step
from . import tflite as tflite_step

__all__ = ["ExportSettings", "export_checkpoint", "export_model"]

log = logging.getLogger(__name__)

REPORT_FORMAT = "fieldpick-export-report"
REPORT_VERSION = 1


@dataclass
class ExportSettings:
    """What an export run may vary; the command line parses into this and nothing else.

    calibration_windows / parity_windows: synthetic windows (NCEDC ones are
    added when ``ncedc_root`` holds them).  seed: of the parity windows (the
    calibration windows use seed + 1000).  opset: 17 or 18.  timeout_s:
    seconds for onnx2tf.  stem: output file-name stem.  require_int8: stop
    when an operator stays float.  converter: command prefix replacing the
    installed ``onnx2tf``.  calibration_clip: percentile of |x| at which the
    calibration windows are clipped (None or 100: not clipped).  99.9 by
    default: on the default recipe's LPPN it raised int8 pick agreement from
    81.6 % to 86.9 % and cut the F1 change from 0.025 to 0.009
    (docs/export.md).  card_notes: {name: text} written into every card's
    provenance under ``notes`` (why the model was chosen, what its training
    record leaves out).  equalise: power of the activation equalisation
    (:func:`fieldpick.export.equalise.equalise`, LPPN) or None (off); 1 by
    default: on the shipped student it raised int8 pick agreement from
    92.45 % to 96.09 % (docs/export.md).
    """

    calibration_windows: int = 200
    parity_windows: int = 200
    seed: int = 20261122
    ncedc_root: Optional[str] = None
    opset: int = 17
    timeout_s: float = 900.0
    stem: str = "model"
    require_int8: bool = True
    converter: Optional[List[str]] = None
    calibration_clip: Optional[float] = 99.9
    card_notes: Optional[Dict[str, str]] = None
    equalise: Optional[float] = 1.0

    def __post_init__(self):
        for name in ("calibration_windows", "parity_windows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 8:
                raise ConfigError("%s %r; it must be an integer >= 8" % (name, value))
        if not self.stem or os.sep in self.stem:
            raise ConfigError("stem %r; give a plain file-name stem such as 'model'" % (self.stem,))
        if self.opset not in onnx_step.OPSETS:
            raise ConfigError("opset %r; allowed: %s" % (self.opset, ", ".join(map(str, onnx_step.OPSETS))))
        if not self.timeout_s > 0:
            raise ConfigError("timeout_s %r; it must be > 0 seconds" % (self.timeout_s,))
        if self.equalise is not None and not 0.0 < self.equalise <= 1.0:
            raise ConfigError("equalise %r; give a power in (0, 1] or None (off)" % (self.equalise,))
        if self.calibration_clip is not None and not 50.0 < self.calibration_clip <= 100.0:
            raise ConfigError("calibration_clip %r; give a percentile in (50, 100] or None" % (self.calibration_clip,))


def _versions():
    import importlib

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "ai_edge_litert"):
        try:
            out[mod] = getattr(importlib.import_module(mod), "__version__", "?")
        except Exception:  # a missing or broken stack must not stop the report
            out[mod] = None
    return out


def _specs(infos, role):
    return [TensorSpec(t.name, role, list(t.shape), t.dtype,
                       t.scale if t.dtype in ("int8", "uint8", "int16") else None,
                       t.zero_point if t.dtype in ("int8", "uint8", "int16") else None)
            for t in infos]


def _card(base, path, layout, scheme, tensors, params, n_flops, metrics, provenance, calibration=""):
    card = copy.deepcopy(base)
    card.input.layout = layout
    card.output.layout = layout
    card.quantisation = Quantisation(scheme=scheme, tensors=tensors, calibration=calibration)
    card.parameters = params
    card.flops_per_window = n_flops
    card.metrics = list(base.metrics) + metrics
    card.provenance = dict(base.provenance, **provenance)
    card.attach(path)
    card_path = os.path.splitext(path)[0] + ".json"
    card.save(card_path)
    return card_path


def export_model(model, base_card, out_dir, settings=None, command="", source=""):
    """Export a PyTorch zoo model whose contract is ``base_card``; returns the report dict."""
    import torch

    s = settings or ExportSettings()
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    t_start = time.time()
    params = int(sum(p.numel() for p in model.parameters()))
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "name": base_card.name,
              "architecture": base_card.architecture, "source": source, "command": command,
              "parameters": params, "files": {}, "timings_s": {}, "gates": {}, "error": None}
    try:
        _export(model, base_card, out_dir, s, command, source, params, report)
    except FieldpickError as exc:
        report["error"] = "%s: %s" % (type(exc).__name__, exc)
        report["timings_s"]["total"] = round(time.time() - t_start, 2)
        _write_report(out_dir, report)
        raise
    report["timings_s"]["total"] = round(time.time() - t_start, 2)
    _write_report(out_dir, report)
    return report


def _export(model, base_card, out_dir, s, command, source, params, report):
    spec = base_card.input
    c, t = len(spec.channels), spec.window_samples
    provenance = {"export_command": command, "export_source": source, "export_versions": _versions(),
                  "export_seed": s.seed}
    if s.card_notes:
        provenance["notes"] = dict(s.card_notes)
    view, note = adapters.export_view(model)  # parity is still measured against ``model`` itself
    report["export_view"] = note or None
    if note:
        provenance["export_view"] = note
    (par_x, par_p, par_s, par_src), cal_x, data, calibration = _windows(base_card, s, report)
    if s.equalise is not None:
        view, eq_note = equalise.equalise(view, cal_x, s.equalise)
        if eq_note:
            report["equalisation"] = eq_note
            provenance["export_equalisation"] = eq_note
    ref = onnx_step.run_torch(model, par_x)
    onnx_path, n_flops = _onnx(view, base_card, out_dir, s, (c, t), par_x, ref, data, params, provenance, report)
    fp32_path, int8_path = _convert(onnx_path, out_dir, s, cal_x, report)

    par_ntc = par_x.transpose(0, 2, 1)
    fp32_info = tflite_step.inspect_tflite(fp32_path)
    fp32_out = tflite_step.run_tflite(fp32_path, par_ntc)
    d_fp32 = parity.max_abs_diff(ref, fp32_out, "TFLite float32 vs PyTorch")
    report["gates"]["fp32_max_abs_diff"] = d_fp32
    report["ops_fp32"] = fp32_info.histogram
    report["red_flags_fp32"] = fp32_info.red_flags
    parity.gate_numeric("TFLite float32 vs PyTorch", d_fp32, len(par_x))
    m_fp32 = MetricSet(data, "export-parity", {"max_abs_diff_vs_torch": d_fp32, "windows": float(len(par_x))})
    report["files"]["fp32"] = _card(base_card, fp32_path, "NTC", "float32",
                                    _specs(fp32_info.inputs, "input") + _specs(fp32_info.outputs, "output"),
                                    params, n_flops, [m_fp32], provenance)

    # 3. full int8
    int8_info = tflite_step.inspect_tflite(int8_path)
    report["ops_int8"] = int8_info.histogram
    report["red_flags_int8"] = int8_info.red_flags
    report["full_integer"] = int8_info.full_integer
    if s.require_int8:
        tflite_step.require_full_integer(int8_info)
    int8_out = tflite_step.run_tflite(int8_path, par_ntc)
    values = {"max_abs_diff_vs_fp32": parity.max_abs_diff(fp32_out, int8_out, "TFLite int8 vs float32"),
              "windows": float(len(par_x))}
    classes = len(base_card.output.labels)
    values["argmax_agreement_vs_fp32"] = parity.argmax_agreement(fp32_out[0], int8_out[0], classes)
    class_gate, pp = _int8_parity(base_card, fp32_path, fp32_out, int8_out, int8_info, par_ntc,
                                  (par_p, par_s, par_src), values, report)
    report["numpy_runtime"] = {"fp32": _numpy_runtime(fp32_path, par_ntc[:16], fp32_out[0][:16]),
                               "int8": _numpy_runtime(int8_path, par_ntc[:16], int8_out[0][:16])}
    if isinstance(report["numpy_runtime"]["int8"], float):
        values["numpy_runtime_max_abs_diff_vs_litert"] = report["numpy_runtime"]["int8"]
    report["gates"].update({k: v for k, v in values.items() if k != "windows"})
    int8_prov = {"pick_parity": report["gates"]["pick_parity"]}
    # write the card before gating so a failed gate still leaves the measured figures on disk
    report["files"]["int8"] = _card(base_card, int8_path, "NTC", "int8",
                                    _specs(int8_info.inputs, "input") + _specs(int8_info.outputs, "output"),
                                    params, n_flops, [MetricSet(data, "export-parity", values)],
                                    dict(provenance, **int8_prov), calibration=calibration)
    report["sizes_bytes"] = {k: os.path.getsize(p) for k, p in
                             (("onnx", onnx_path), ("fp32", fp32_path), ("int8", int8_path))}
    if class_gate is not None and class_gate < parity.PICK_AGREEMENT_MIN:
        raise parity.ParityError(
            "TFLite int8 vs float32: the window class agrees on %.2f %% of %d windows, below the gate %.0f %%"
            % (100 * class_gate, len(par_x), 100 * parity.PICK_AGREEMENT_MIN))
    if report["gates"]["pick_parity"] == "measured":
        parity.gate_picks("TFLite int8 vs float32 picks", pp)


def _windows(base_card, s, report):
    """Parity windows (seed) and calibration windows (seed + 1000, other NCEDC stations), and their descriptions.

    Returns ``((x, p_idx, s_idx, source), calibration_x, data, calibration)``.
    """
    par_x, par_p, par_s, par_src = calibrate.export_windows(base_card, s.parity_windows, s.seed, s.ncedc_root, half=1)
    cal_x, _, _, cal_src = calibrate.export_windows(base_card, s.calibration_windows, s.seed + 1000, s.ncedc_root, half=0)
    data = "%d synthetic windows (seed %d)%s" % (
        s.parity_windows, s.seed,
        " + %d NCEDC windows (every other station)" % int(np.sum(par_src == "ncedc")) if s.ncedc_root else "")
    calibration = "%d synthetic windows (seed %d; 40 %% default events, 40 %% SNR %g..%g dB, 20 %% noise)%s; normalised per card" % (
        s.calibration_windows, s.seed + 1000, calibrate.SNR_DB_RANGE[0], calibrate.SNR_DB_RANGE[1],
        " + %d NCEDC windows (the other stations)" % int(np.sum(cal_src == "ncedc")) if s.ncedc_root else "")
    report["parity_windows"] = {k: int(np.sum(par_src == k)) for k in np.unique(par_src)}
    report["calibration_windows"] = {k: int(np.sum(cal_src == k)) for k in np.unique(cal_src)}
    if s.calibration_clip is not None and s.calibration_clip < 100.0:
        # min/max calibration sets the int8 input range from the most extreme sample (a spike, a
        # clipped S); clipping the calibration data keeps resolution for onsets in the noise
        bound = float(np.percentile(np.abs(cal_x), s.calibration_clip))
        cal_x = np.clip(cal_x, -bound, bound)
        calibration += "; clipped to +-%.3g (the %g-th percentile of |x|)" % (bound, s.calibration_clip)
        report["calibration_clip"] = bound
    return (par_x, par_p, par_s, par_src), cal_x, data, calibration


def _onnx(view, base_card, out_dir, s, shape, par_x, ref, data, params, provenance, report):
    """Step 1: the ONNX file, its FLOPs, its parity against PyTorch and its card; returns (path, FLOPs)."""
    c, t = shape
    t0 = time.time()
    onnx_path = os.path.join(out_dir, s.stem + ".onnx")
    onnx_step.export_onnx(view, onnx_path, c, t, opset=s.opset)
    n_flops, by_op = flops.count_flops(onnx_path)
    ort_out = onnx_step.run_onnx(onnx_path, par_x)
    d_onnx = parity.max_abs_diff(ref, ort_out, "ONNX (onnxruntime) vs PyTorch")
    report["flops_per_window"] = n_flops
    report["flops_by_op"] = dict(by_op)
    report["gates"]["onnx_max_abs_diff"] = d_onnx
    parity.gate_numeric("ONNX (onnxruntime) vs PyTorch", d_onnx, len(par_x))
    onnx_tensors = [TensorSpec(onnx_step.INPUT_NAME, "input", [1, c, t], "float32")] + [
        TensorSpec("y%d" % k, "output", [1] + list(o.shape[1:]), "float32") for k, o in enumerate(ref)]
    m_onnx = MetricSet(data, "export-parity", {"max_abs_diff_vs_torch": d_onnx, "windows": float(len(par_x))})
    report["files"]["onnx"] = _card(base_card, onnx_path, "NCT", "float32", onnx_tensors, params, n_flops,
                                    [m_onnx], provenance)
    report["timings_s"]["onnx"] = round(time.time() - t0, 2)

    return onnx_path, n_flops


def _convert(onnx_path, out_dir, s, cal_x, report):
    """Step 2: TFLite float32 and int8 in one onnx2tf run; returns their paths."""
    t0 = time.time()
    made = tflite_step.convert(onnx_path, out_dir, calibration_ntc=cal_x.transpose(0, 2, 1),
                               input_name=onnx_step.INPUT_NAME, timeout_s=s.timeout_s, command=s.converter)
    report["timings_s"]["onnx2tf"] = round(time.time() - t0, 2)
    fp32_path = os.path.join(out_dir, s.stem + "_fp32.tflite")
    int8_path = os.path.join(out_dir, s.stem + "_int8.tflite")
    os.replace(made["float32"], fp32_path)
    os.replace(made["int8"], int8_path)
    shutil.rmtree(made["scratch"], ignore_errors=True)

    return fp32_path, int8_path


def _int8_parity(base_card, fp32_path, fp32_out, int8_out, int8_info, par_ntc, labels, values, report):
    """Pick parity of the int8 file against float32 (or the class agreement of a window classifier).

    Adds its figures to ``values``; returns ``(class agreement to gate on or None, the pick parity or None)``.
    """
    par_p, par_s, par_src = labels
    class_gate, pp = None, None
    if base_card.output.kind == "window_class":
        # one class per window: no arrival times to pick; the class decision is what must agree
        report["gates"]["pick_parity"] = ("not applicable: output kind 'window_class' has no arrival times; "
                                          "gated on window class agreement instead")
        class_gate = values["argmax_agreement_vs_fp32"]
    elif parity.picker_available():
        pp = parity.pick_parity(fp32_out[0], int8_out[0], base_card, par_p, par_s, par_src)
        values.update({"pick_agreement": pp.agreement, "picks_fp32": float(pp.ref_picks),
                       "picks_int8": float(pp.test_picks), "f1_delta": pp.f1_delta})
        # context, not a gate: how far the fp32 model's own picks move when only its input is
        # rounded to the int8 input grid (a model whose picks move here cannot pass the gate)
        q = int8_info.inputs[0]
        rounded = (np.clip(np.round(par_ntc / q.scale) + q.zero_point, -128, 127) - q.zero_point) * q.scale
        fp32_rounded = tflite_step.run_tflite(fp32_path, rounded.astype(np.float32))
        values["pick_agreement_fp32_on_int8_input_grid"] = parity.pick_parity(
            fp32_out[0], fp32_rounded[0], base_card, par_p, par_s).agreement
        for k in pp.f1_ref:
            if np.isfinite(pp.f1_ref[k]) and np.isfinite(pp.f1_test[k]):
                values["f1_%s_fp32" % k] = pp.f1_ref[k]
                values["f1_%s_int8" % k] = pp.f1_test[k]
        for k, v in pp.by_source.items():
            values["pick_agreement_" + k] = v
        report["gates"]["pick_parity"] = "measured"
    else:
        log.warning("pick-level parity is PENDING: fieldpick.edge.picker is not installed; "
                    "only numeric int8 figures are recorded")
        report["gates"]["pick_parity"] = "pending: fieldpick.edge.picker not installed"
    return class_gate, pp


def _numpy_runtime(path, windows_ntc, reference):
    """Max |diff| of the station's numpy runtime against ai-edge-litert on a few windows.

    Returns the number, or a string saying why it could not run (the export
    does not stop: the station's runtime has its own tests, and a gap there
    must be visible, not fatal).
    """
    try:
        from fieldpick.edge.tflite.interpreter import Interpreter
    except ImportError as exc:
        return "pending: fieldpick.edge.tflite.interpreter not importable (%s)" % exc
    try:
        got = Interpreter(path).run(windows_ntc, dequantize=True)[0]
    except FieldpickError as exc:
        log.warning("the numpy runtime cannot run %s: %s", path, exc)
        return "cannot run: %s: %s" % (type(exc).__name__, exc)
    diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - reference)))
    log.info("numpy runtime vs ai-edge-litert on %s: max |diff| %.3g on %d windows", os.path.basename(path), diff,
             len(windows_ntc))
    return diff


def _write_report(out_dir, report):
    path = os.path.join(out_dir, "export_report.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False, default=float)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def export_checkpoint(checkpoint, out_dir, settings=None, command=""):
    """Load a checkpoint (``fieldpick.train.checkpoint``) and export it; returns the report dict."""
    from fieldpick.edge.card import sha256_file
    from fieldpick.train.checkpoint import load_checkpoint

    model, card, _ = load_checkpoint(checkpoint)
    source = "%s (sha256 %s)" % (os.path.basename(str(checkpoint)), sha256_file(checkpoint)[:16])
    if not isinstance(card, ModelCard):
        raise ConfigError("checkpoint %s holds no model card" % checkpoint)
    return export_model(model, card, out_dir, settings, command=command, source=source)


def install(out_dir, dest, name, stem="model", accept_parity_miss=False):
    """Copy an export's TFLite files and cards into ``dest`` (e.g. edge/models/) as the shipped model.

    ``<stem>_int8.tflite`` becomes ``<name>.tflite`` (the station's model)
    with its card ``<name>.json`` re-pointed at the new file name.  Only the
    int8 file is shipped: edge/models holds exactly one model (the bundle
    builder and the station take "the" model from there); the fp32 file stays
    in ``out_dir``.  The report must show a clean
    export, except that ``accept_parity_miss`` lets a missed int8 parity gate
    through (every file was written and converted) and records the miss in
    both cards' provenance (``export_gate_missed``).  Returns the card paths.
    """
    with open(os.path.join(out_dir, "export_report.json"), encoding="utf-8") as f:
        report = json.load(f)
    error = report.get("error")
    missed = bool(error) and error.startswith("ParityError: ") and report.get("sizes_bytes") is not None
    if error and not (missed and accept_parity_miss):
        raise ConfigError("%s holds a failed export (%s); fix it before installing" % (out_dir, error))
    if missed:
        log.warning("installing %s although it missed a parity gate: %s", name, error)
    os.makedirs(dest, exist_ok=True)
    written = []
    for kind, target in (("int8", name),):
        card = ModelCard.load(os.path.join(out_dir, "%s_%s.json" % (stem, kind)))
        model_path = os.path.join(dest, target + ".tflite")
        tmp = model_path + ".tmp"
        shutil.copyfile(os.path.join(out_dir, "%s_%s.tflite" % (stem, kind)), tmp)
        os.replace(tmp, model_path)
        card.name = name
        if missed:
            card.provenance["export_gate_missed"] = error
        card.attach(model_path)
        written.append(card.save(os.path.join(dest, target + ".json")))
    log.info("installed %s into %s", name, dest)
    return written
