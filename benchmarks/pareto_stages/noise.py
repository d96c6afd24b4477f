"""Where int8 loses: fake-quantise one activation at a time and measure what it moves."""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from .common import load, log, publish, setup


def run(args):
    """Where int8 loses: fake-quantise one activation at a time and measure what it moves.

    The model (``--checkpoint``, a file) runs in float on the export parity
    windows (:func:`fieldpick.export.calibrate.export_windows`, the export's
    seed and NCEDC half), once exact and once with int8 rounding at one
    place: the input (scale max|x| / 127 over the calibration windows), one
    ReLU output, or the residual stream where a context block or the
    head reads it (255 levels over [0, its calibration maximum]), as
    full-int8 TFLite holds them.  Then all places at once, which is what
    the int8 file does up to BatchNorm folding and weight rounding; the same
    with one step per channel (each channel's own maximum: what activation
    equalisation, :mod:`fieldpick.export.equalise`, reaches at power 1);
    all but the stream; the stream alone.  For each: the largest
    probability change, the mean change near picks (cells where P or S
    exceeds 0.3), the mean offset change there, and pick parity against the
    exact run (the export gate's rule: same phase within 2 samples).
    Writes ``benchmarks/results/<--out or int8_noise>.json`` and ``.md``.
    """
    from fieldpick.export import calibrate
    from fieldpick.export.pipeline import ExportSettings
    from fieldpick.train.data.datasets import NCEDC_DIR

    model, _, _ = load(args.checkpoint)
    model.eval()
    card = model.card()
    if card.output.kind != "stride_class_offset":
        raise SystemExit("noise: %s is a %r model; this stage reads per-stride (lppn) outputs"
                         % (args.checkpoint, card.output.kind))
    seed = ExportSettings().seed
    root = NCEDC_DIR if os.path.exists(os.path.join(NCEDC_DIR, "phasenet_ncedc_90s.npz")) else None
    x, p_idx, s_idx, src = calibrate.export_windows(card, 200, seed, root, half=1)
    cal, _, _, _ = calibrate.export_windows(card, 200, seed + 1000, root, half=0)
    r = _Rounding(model, x, cal)
    rows = []
    acts, stream = r.acts, r.stream
    everything = {"input"} | {n for n, _ in acts} | {n for n, _ in stream}
    rows.append(r.row(card, p_idx, s_idx, "all at once", everything))
    rows.append(r.row(card, p_idx, s_idx, "all at once, one step per channel (what equalisation reaches)", everything,
                      per_channel=True))
    rows.append(r.row(card, p_idx, s_idx, "all but the stream", everything - {n for n, _ in stream}))
    rows.append(r.row(card, p_idx, s_idx, "the stream alone", {n for n, _ in stream}))
    rows.append(r.row(card, p_idx, s_idx, "input", {"input"}, r.scale_in * 127.0))
    for n, _ in acts + stream:
        rows.append(r.row(card, p_idx, s_idx, n, {n}, r.peak[n]))
    out = args.out or "int8_noise"
    meta = {"command": "benchmarks/pareto.py noise --checkpoint %s%s" % (args.checkpoint,
                                                                       " --out " + out if args.out else ""),
            "windows": {str(k): int(np.sum(src == k)) for k in np.unique(src)}, "thresholds": dict(card.thresholds),
            "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    publish(out, meta, rows, _markdown(meta, rows))


class _Rounding:
    """The model with int8-sized rounding switched on at chosen places (calibrated on ``cal``)."""

    def __init__(self, model, x, cal):
        import torch

        self.model, self.x = model, x
        self.acts = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ReLU)]
        # the residual stream: what each context block reads (and adds its output to), and what the head reads;
        # in the int8 file these are the ADD outputs, one scale each
        self.stream = [("stream: context.%d in" % i, blk) for i, blk in enumerate(getattr(model, "context", []))]
        if isinstance(getattr(model, "head", None), torch.nn.Module):
            self.stream.append(("stream: head in", model.head))
        self.peak, self.chan = {}, {}
        hooks = [m.register_forward_hook(lambda mod, a, o, n=n: self._keep(n, o)) for n, m in self.acts]
        hooks += [m.register_forward_pre_hook(lambda mod, a, n=n: self._keep(n, a[0])) for n, m in self.stream]
        with torch.no_grad():
            model(torch.from_numpy(cal))
        for h in hooks:
            h.remove()
        self.scale_in = float(np.abs(cal).max()) / 127.0
        self.exact = self.run(set())

    def _keep(self, name, value):
        import torch

        v = value.detach().abs().amax(dim=(0, 2))
        self.chan[name] = torch.maximum(self.chan[name], v) if name in self.chan else v
        self.peak[name] = float(self.chan[name].max())

    def step(self, name, per_channel):  # 255 levels over [0, max]: ReLU outputs and the stream are >= 0
        return (self.chan[name][None, :, None] if per_channel else self.peak[name]) / 255.0

    def run(self, places, per_channel=False):
        """The model's outputs on ``x`` with rounding at ``places`` (names, or 'input')."""
        import torch

        from fieldpick.train.quantize import fake_round

        model, step, scale_in = self.model, self.step, self.scale_in
        hooks = []
        if "input" in places:
            hooks.append(model.register_forward_pre_hook(lambda mod, a: (fake_round(a[0], scale_in, -128, 127),)))
        hooks += [m.register_forward_hook(lambda mod, a, o, n=n: fake_round(o, step(n, per_channel), 0, 255))
                  for n, m in self.acts if n in places]
        hooks += [m.register_forward_pre_hook(lambda mod, a, n=n: (fake_round(a[0], step(n, per_channel), 0, 255),))
                  for n, m in self.stream if n in places]
        try:
            with torch.no_grad():
                return model(torch.from_numpy(self.x)).numpy()
        finally:
            for h in hooks:
                h.remove()

    def row(self, card, p_idx, s_idx, name, places, maximum=None, per_channel=False):
        """What rounding at ``places`` moves, against the exact run."""
        from fieldpick.export.parity import pick_parity

        exact = self.exact
        out = self.run(places, per_channel)
        d = np.abs(out[:, 1:3] - exact[:, 1:3])
        near = np.maximum(out[:, 1:3], exact[:, 1:3]) > 0.3
        cells = exact[:, 1:3].max(axis=1) > 0.3
        pp = pick_parity(exact.transpose(0, 2, 1), out.transpose(0, 2, 1), card, p_idx, s_idx)  # the gate's rule
        row = {"place": name, "calibration_max": maximum, "max_abs_dp": float(d.max()),
               "near_pick_mean_abs_dp": float(d[near].mean()) if near.any() else 0.0,
               "near_pick_mean_abs_doffset": float(np.abs(out[:, 3] - exact[:, 3])[cells].mean())
               if cells.any() else 0.0,
               "pick_parity": pp.agreement, "picks": max(pp.ref_picks, pp.test_picks), "f1_delta": pp.f1_delta}
        log.info("%-24s parity %.3f  near-pick |dp| %.4f", name, row["pick_parity"], row["near_pick_mean_abs_dp"])
        return row


def _markdown(meta, rows):
    lines = ["# Where full int8 loses: one activation rounded at a time", "",
             "The float model on the export's parity windows (%s), exact and with int8 rounding at one place "
             "(input: max|x| / 127 of the calibration windows; a ReLU output or the residual stream: 255 levels over "
             "[0, its calibration maximum], or over each channel's own maximum where the row says so). Parity: picks "
             "against the exact run, same phase within 2 samples." %
             ", ".join("%d %s" % (v, k) for k, v in sorted(meta["windows"].items())), "",
             "`%s` (%s)" % (meta["command"], meta["when"]), "",
             "| rounded | calibration max | max abs dp | mean abs dp near picks | mean abs d offset | pick parity "
             "| F1 change |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %s | %.3f | %.4f | %.4f | %.1f %% | %.3f |" % (
            r["place"], "-" if r["calibration_max"] is None else "%.1f" % r["calibration_max"], r["max_abs_dp"],
            r["near_pick_mean_abs_dp"], r["near_pick_mean_abs_doffset"], 100 * r["pick_parity"], r["f1_delta"]))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/pareto.py noise", allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="best.pt", help="the checkpoint file")
    ap.add_argument("--out", help="results file stem under benchmarks/results (default int8_noise)")
    args = ap.parse_args(argv)
    setup()
    run(args)
    return 0
