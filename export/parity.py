"""Parity gates: does an exported file compute what the PyTorch model computes?

Two kinds of figure:
- numeric: max |diff| of the outputs over the parity windows (ONNX and
  TFLite float32 must stay below 1e-4 of PyTorch);
- pick-level (int8 against float32): run the station's picker
  (:func:`fieldpick.edge.picker.extract_picks`) on both outputs and require
  that at least 99 % of the picks agree (same phase, within 2 samples) and
  that F1 against the labelled arrivals (:mod:`fieldpick.lab.scoring`
  rules: 0.5 s matching) moves by at most 0.01, per phase and overall.

A gate that is missed raises :class:`ParityError` with the measured number,
the limit and the number of windows; the export stops there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict

import numpy as np

from fieldpick.edge.errors import ModelError

__all__ = [
    "NUMERIC_LIMIT",
    "PICK_AGREEMENT_MIN",
    "PICK_TOLERANCE_SAMPLES",
    "F1_DELTA_MAX",
    "ParityError",
    "PickParity",
    "align",
    "max_abs_diff",
    "gate_numeric",
    "argmax_agreement",
    "picker_available",
    "pick_parity",
    "gate_picks",
]

log = logging.getLogger(__name__)

NUMERIC_LIMIT = 1e-4          # max |diff| of ONNX / TFLite fp32 against PyTorch
PICK_AGREEMENT_MIN = 0.99     # share of picks that must agree, int8 vs fp32
PICK_TOLERANCE_SAMPLES = 2    # samples (0.02 s at 100 Hz)
F1_DELTA_MAX = 0.01           # |F1(int8) - F1(fp32)|


class ParityError(ModelError):
    """An exported model misses a parity gate (the message holds the measured figure)."""


def align(ref, test, what):
    """Bring a PyTorch output (N, C, L) into the layout of a TFLite output (N, L, C) when needed."""
    ref = np.asarray(ref)
    test = np.asarray(test)
    if ref.shape == test.shape:
        return ref
    if ref.ndim == 3 and ref.transpose(0, 2, 1).shape == test.shape:
        return ref.transpose(0, 2, 1)
    raise ParityError("%s: output shapes differ: reference %s, exported %s" % (what, ref.shape, test.shape))


def max_abs_diff(ref_outputs, test_outputs, what="parity"):
    """Largest |ref - test| over all outputs (aligned to the test layout)."""
    if len(ref_outputs) != len(test_outputs):
        raise ParityError("%s: %d reference outputs but %d exported" % (what, len(ref_outputs), len(test_outputs)))
    worst = 0.0
    for r, t in zip(ref_outputs, test_outputs):
        r = align(r, t, what)
        if not np.isfinite(t).all():
            raise ParityError("%s: the exported model returns NaN or inf" % what)
        worst = max(worst, float(np.max(np.abs(r.astype(np.float64) - t.astype(np.float64)))))
    return worst


def gate_numeric(what, diff, n_windows, limit=NUMERIC_LIMIT):
    """Raise :class:`ParityError` when ``diff`` (max |diff|) is not below ``limit``."""
    if not diff < limit:
        raise ParityError(
            "%s: max |diff| %.3e on %d windows is not below the gate %.0e" % (what, diff, n_windows, limit)
        )
    log.info("%s: max |diff| %.3e on %d windows (gate %.0e)", what, diff, n_windows, limit)
    return diff


def argmax_agreement(ref, test, class_channels):
    """Share of output steps where the class argmax agrees; outputs in (N, L, C) layout."""
    ref = np.asarray(ref)[..., :class_channels]
    test = np.asarray(test)[..., :class_channels]
    return float(np.mean(ref.argmax(-1) == test.argmax(-1)))


# ------------------------------------------------------------------ pick level
def picker_available():
    """True when the station picker (fieldpick.edge.picker) is installed."""
    try:
        from fieldpick.edge.picker import extract_picks  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PickParity:
    """Pick-level agreement of a test output (int8) with a reference (fp32).

    f1_ref / f1_test map 'P', 'S' and 'all' to F1 against the labels
    (:mod:`fieldpick.lab.scoring` rules; NaN when undefined).
    """

    windows: int
    ref_picks: int
    test_picks: int
    matched: int
    agreement: float
    f1_ref: Dict[str, float] = field(default_factory=dict)
    f1_test: Dict[str, float] = field(default_factory=dict)
    by_source: Dict[str, float] = field(default_factory=dict)

    @property
    def f1_delta(self):
        """Largest |F1 change| over P, S and all (NaN entries skipped; 0.0 when none)."""
        d = [abs(self.f1_test[k] - self.f1_ref[k]) for k in self.f1_ref
             if np.isfinite(self.f1_ref[k]) and np.isfinite(self.f1_test.get(k, np.nan))]
        return max(d) if d else 0.0


def _match(a, b, tol):
    """Greedy one-to-one matching of sample times within ``tol``; returns the number of pairs."""
    b = list(b)
    used = [False] * len(b)
    n = 0
    for t in sorted(a):
        best, best_d = -1, None
        for j, u in enumerate(b):
            d = abs(u - t)
            if not used[j] and d <= tol and (best_d is None or d < best_d):
                best, best_d = j, d
        if best >= 0:
            used[best] = True
            n += 1
    return n


def _picks(extract, output, card):
    """{phase: [sample, ...]} of one window's output (L, C)."""
    fs = card.input.sampling_rate_hz
    out = {"P": [], "S": []}
    for p in extract(output, card, start_ns=0):
        out[p.phase].append(p.time_ns * fs / 1e9)
    return out


def _f1(picks, card, p_idx, s_idx):
    from fieldpick.lab.scoring import evaluate_windows

    phases = [ph for ph in ("P", "S") if ph in card.output.labels]
    sc = evaluate_windows({"P": p_idx, "S": s_idx}, picks, fs=card.input.sampling_rate_hz, phases=phases)
    out = {ph: float(sc[ph].f1) for ph in phases}
    m = sum(sc[ph].matched for ph in phases)
    n = sum(sc[ph].n_true + sc[ph].n_picks for ph in phases)
    out["all"] = 2.0 * m / n if n else float("nan")
    return out


def pick_parity(ref_output, test_output, card, p_idx, s_idx, source=None):
    """Compare picks of two (N, L, C) outputs of the same windows.

    Picks come from :func:`fieldpick.edge.picker.extract_picks` with the
    card's thresholds.  Agreement is matched / max(ref picks, test picks)
    (same phase, within ``PICK_TOLERANCE_SAMPLES``), so missed and extra
    picks both count against it; with no picks at all it is 1.0 (the
    counts in the result say so).  ``p_idx``/``s_idx`` are the labelled
    arrivals (samples, NaN when absent) for F1.
    """
    from fieldpick.edge.picker import extract_picks

    source = np.asarray(source if source is not None else ["all"] * len(ref_output))
    n_ref = n_test = n_match = 0
    per_src = {}
    got = {"ref": {"P": [], "S": []}, "test": {"P": [], "S": []}}
    for i in range(len(ref_output)):
        r = _picks(extract_picks, ref_output[i], card)
        t = _picks(extract_picks, test_output[i], card)
        w_ref = w_test = w_match = 0
        for phase in ("P", "S"):
            got["ref"][phase].append(r[phase])
            got["test"][phase].append(t[phase])
            w_match += _match(r[phase], t[phase], PICK_TOLERANCE_SAMPLES)
            w_ref += len(r[phase])
            w_test += len(t[phase])
        n_ref += w_ref
        n_test += w_test
        n_match += w_match
        acc = per_src.setdefault(str(source[i]), [0, 0])
        acc[0] += w_match
        acc[1] += max(w_ref, w_test)
    agreement = n_match / float(max(n_ref, n_test)) if max(n_ref, n_test) else 1.0
    return PickParity(
        windows=len(ref_output), ref_picks=n_ref, test_picks=n_test, matched=n_match, agreement=agreement,
        f1_ref=_f1(got["ref"], card, p_idx, s_idx), f1_test=_f1(got["test"], card, p_idx, s_idx),
        by_source={k: (m / float(n) if n else 1.0) for k, (m, n) in per_src.items()},
    )


def gate_picks(what, pp):
    """Raise :class:`ParityError` when ``pp`` (a :class:`PickParity`) misses a pick-level gate."""
    if pp.agreement < PICK_AGREEMENT_MIN:
        raise ParityError(
            "%s: %.2f %% of picks agree (same phase, within %d samples; %d of max(%d, %d) on %d windows), "
            "below the gate %.0f %%" % (what, 100 * pp.agreement, PICK_TOLERANCE_SAMPLES, pp.matched,
                                        pp.ref_picks, pp.test_picks, pp.windows, 100 * PICK_AGREEMENT_MIN)
        )
    if pp.f1_delta > F1_DELTA_MAX:
        raise ParityError(
            "%s: F1 moved by %.4f (reference %s, exported %s on %d windows), above the gate %.2f"
            % (what, pp.f1_delta, _fmt_f1(pp.f1_ref), _fmt_f1(pp.f1_test), pp.windows, F1_DELTA_MAX)
        )
    return pp


def _fmt_f1(f1):
    return ", ".join("%s %.4f" % kv for kv in sorted(f1.items()))
