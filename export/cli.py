"""``fieldpick export CHECKPOINT --out DIR``: ONNX, TFLite float32 and full int8, gated, with cards.

Exit status 0 when every file is written and every gate passed; a missed
gate or an unusable model raises a :class:`~fieldpick.edge.errors.FieldpickError`
(the ``fieldpick`` entry point prints it and exits 2).  With ``--install DIR
--install-despite-parity-miss`` a missed int8 parity gate still ships the
files (the miss is written into the cards) and the status is 1.  The files of the
steps that passed, and ``export_report.json`` with the measured figures,
stay in DIR either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["main"]


def _parser():
    p = argparse.ArgumentParser(
        prog="fieldpick export",
        description="Export a checkpoint to model.onnx, model_fp32.tflite and model_int8.tflite "
        "(with a model card .json beside each) and check parity at every step.",
        allow_abbrev=False,
    )
    p.add_argument("checkpoint", help="a fieldpick checkpoint (.pt) written by fieldpick.train")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--stem", default="model", help="file-name stem of the outputs (default: model)")
    p.add_argument("--ncedc", metavar="DIR", default=None,
                   help="folder of the NCEDC windows for calibration and parity "
                   "(default: $FIELDPICK_NCEDC)")
    p.add_argument("--no-ncedc", action="store_true", help="synthetic windows only")
    p.add_argument("--calibration-windows", type=int, default=200, metavar="N",
                   help="synthetic windows for int8 calibration (default 200)")
    p.add_argument("--parity-windows", type=int, default=200, metavar="N",
                   help="synthetic windows for the parity gates (default 200)")
    p.add_argument("--seed", type=int, default=20261122, help="seed of the synthetic windows")
    p.add_argument("--calibration-clip", type=float, default=99.9, metavar="PERCENTILE",
                   help="clip the calibration windows at this percentile of |x| so that spikes do not "
                   "set the int8 input range (default 99.9; 100: no clipping)")
    p.add_argument("--equalise", type=float, default=1.0, metavar="POWER",
                   help="rescale each activation tensor's channels towards one range before the int8 "
                   "conversion, so that per-tensor int8 steps fit small channels too (LPPN; exact in "
                   "float), power in (0, 1] (default 1: every channel gets the whole range; "
                   "docs/export.md, 'Activation equalisation')")
    p.add_argument("--no-equalise", dest="equalise", action="store_const", const=None,
                   help="convert the model's activations as they are")
    p.add_argument("--opset", type=int, choices=(17, 18), default=17,
                   help="ONNX opset: 17 (TorchScript exporter) or 18 (dynamo exporter)")
    p.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                   help="limit for the onnx2tf conversion (default 900 s)")
    p.add_argument("--install", metavar="DIR", default=None,
                   help="after a clean export, copy the int8 .tflite file and its card into DIR "
                   "(e.g. edge/models) as NAME.tflite and NAME.json")
    p.add_argument("--install-despite-parity-miss", action="store_true",
                   help="with --install: ship the files even when an int8 parity gate is missed (the miss "
                   "is recorded in the cards; exit status 1)")
    p.add_argument("--name", default=None, help="model name for --install (default: the card's name)")
    p.add_argument("--card-notes", metavar="FILE", default=None,
                   help="JSON object of {name: text} written into every card's provenance under 'notes' "
                   "(e.g. why this model is the shipped default)")
    p.add_argument("--allow-float-ops", action="store_true",
                   help="write the int8 file even when some operators stay float (it is then not full int8)")
    return p


def _ncedc_root(args):
    if args.no_ncedc:
        return None
    if args.ncedc:
        return args.ncedc
    from fieldpick.train.data.datasets import NCEDC_DIR

    return NCEDC_DIR if os.path.exists(os.path.join(NCEDC_DIR, "phasenet_ncedc_90s.npz")) else None


def _card_notes(path):
    """The --card-notes file: a JSON object whose values are all strings."""
    from fieldpick.edge.errors import ConfigError

    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            notes = json.load(f)
    except OSError as exc:
        raise ConfigError("--card-notes %s: cannot read it: %s" % (path, exc)) from None
    except ValueError as exc:
        raise ConfigError("--card-notes %s is not valid JSON: %s" % (path, exc)) from None
    if not isinstance(notes, dict):
        raise ConfigError("--card-notes %s holds a %s; expected a JSON object of {name: text}"
                          % (path, type(notes).__name__))
    bad = sorted(k for k, v in notes.items() if not isinstance(v, str))
    if bad:
        raise ConfigError("--card-notes %s: the value of %s is not a string; every note must be text"
                          % (path, ", ".join(repr(k) for k in bad)))
    return notes


def _card_name(out_dir, stem):
    with open(os.path.join(out_dir, stem + "_int8.json"), encoding="utf-8") as f:
        return json.load(f)["name"]


def main(argv):
    args = _parser().parse_args(argv)
    from .pipeline import ExportSettings, export_checkpoint, install

    settings = ExportSettings(
        calibration_windows=args.calibration_windows, parity_windows=args.parity_windows, seed=args.seed,
        ncedc_root=_ncedc_root(args), opset=args.opset, timeout_s=args.timeout, stem=args.stem,
        require_int8=not args.allow_float_ops, calibration_clip=args.calibration_clip,
        card_notes=_card_notes(args.card_notes), equalise=args.equalise,
    )
    command = "fieldpick export " + " ".join(argv)
    from .parity import ParityError

    try:
        report = export_checkpoint(args.checkpoint, args.out, settings, command=command)
    except ParityError as exc:
        if not (args.install and args.install_despite_parity_miss):
            raise
        with open(os.path.join(args.out, "export_report.json"), encoding="utf-8") as f:
            if json.load(f).get("sizes_bytes") is None:
                raise  # a float gate missed: there is no int8 file to ship
        cards = install(args.out, args.install, args.name or _card_name(args.out, args.stem), args.stem,
                        accept_parity_miss=True)
        sys.stdout.write("PARITY GATE MISSED, installed anyway (recorded in the cards): %s\n  installed: %s\n"
                         % (exc, ", ".join(cards)))
        return 1
    g = report["gates"]
    lines = [
        "%s (%s): %d parameters, %d FLOPs per window" % (
            report["name"], report["architecture"], report["parameters"], report["flops_per_window"]),
        "  onnx  max|diff| vs torch %.2e   %7d bytes" % (g["onnx_max_abs_diff"], report["sizes_bytes"]["onnx"]),
        "  fp32  max|diff| vs torch %.2e   %7d bytes   ops %s" % (
            g["fp32_max_abs_diff"], report["sizes_bytes"]["fp32"], json.dumps(report["ops_fp32"])),
        "  int8  max|diff| vs fp32  %.2e   %7d bytes   ops %s" % (
            g["max_abs_diff_vs_fp32"], report["sizes_bytes"]["int8"], json.dumps(report["ops_int8"])),
    ]
    if "pick_agreement" in g:
        lines.append("  int8 picks: %.2f %% of %d/%d picks agree with fp32; F1 (all) %s -> %s" % (
            100 * g["pick_agreement"], g["picks_fp32"], g["picks_int8"],
            "%.3f" % g["f1_all_fp32"] if "f1_all_fp32" in g else "-",
            "%.3f" % g["f1_all_int8"] if "f1_all_int8" in g else "-"))
    else:
        lines.append("  int8 pick-level parity: %s" % g["pick_parity"])
    flags = dict(report["red_flags_fp32"], **report["red_flags_int8"])
    if flags:
        lines.append("  red-flag ops (wasted work?): %s" % json.dumps(flags))
    lines.append("  cards: %s" % ", ".join(os.path.basename(p) for p in report["files"].values()))
    if args.install:
        cards = install(args.out, args.install, args.name or report["name"], args.stem)
        lines.append("  installed: %s" % ", ".join(cards))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
