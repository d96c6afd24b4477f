"""Trigger gating: a Butterworth bandpass (biquad cascade) and recursive STA/LTA,
both computed incrementally, packet by packet.

The STA and the LTA are first-order linear recurrences ``y[n] = d * y[n-1] +
u[n]``.  A
per-sample Python loop would take seconds per station-day, so
:func:`recur` solves it in blocks with numpy: inside a block of ``L`` samples
the zero-state answer is ``d**n * cumsum(u[k] * d**-k)``, and the state
carried from block to block is added back as ``d**(n+1) * s``.  ``L`` is kept
small enough that ``|d|**-L`` stays below 1e6, so the answer agrees with the
sample-by-sample recursion to ~1e-10 relative.  :func:`recur_reference` is
the slow, obviously-correct twin the tests compare against.  The bandpass
runs as a state-space system in blocks of matrix products
(:class:`SosFilter`); :func:`sosfilt_reference` is its twin.  The STA/LTA
does the same with 16-sample blocks (:class:`_BlockRecursion`), using
:func:`recur` only for the states between blocks.

The STA/LTA follows ObsPy's ``recursive_sta_lta`` exactly (Withers et al.
1998): the first sample after a (re)start only seeds the state, the ratio is
zero for the first ``nlta`` samples, and ``lta`` starts at the smallest
positive float.  A gap resets everything (``reset()``) instead of inventing
signal.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..config import TRIGGER_WARMUPS as WARMUPS
from ..errors import ConfigError

__all__ = [
    "recur",
    "recur_reference",
    "butter_bandpass_sos",
    "SosFilter",
    "RecursiveStaLta",
    "TriggerState",
    "WARMUPS",
    "Trigger",
]

log = logging.getLogger(__name__)

_TINY = float(np.finfo(np.float64).tiny)  # where the LTA starts (as ObsPy)
_GROWTH_LIMIT = 1e6  # largest |d|**-k inside one block of recur()


def _block_len(d, limit=_GROWTH_LIMIT, cap=4096):
    r = abs(d)
    if r >= 1.0:
        raise ConfigError("recursion coefficient |d| = %r must be < 1 (a stable filter)" % r)
    if r == 0.0:
        return cap
    return int(max(1, min(cap, math.floor(math.log(limit) / -math.log(r)))))


def recur(u, d, state=0.0, gain=1.0, block=None):
    """Solve ``y[n] = d * y[n-1] + gain * u[n]`` with ``y[-1] = state``; numpy, blockwise.

    u: 1-D array (float64 or complex128).  d: the pole, ``|d| < 1``.
    Returns ``(y, last)`` where ``last = y[-1]`` (the state for the next call;
    ``state`` itself when ``u`` is empty).  The input is not modified.
    """
    u = np.asarray(u)
    n = len(u)
    cplx = np.iscomplexobj(u) or isinstance(d, complex) or isinstance(state, complex)
    dtype = np.complex128 if cplx else np.float64
    if n == 0:
        return np.zeros(0, dtype), state
    if d == 0:
        y = (gain * u).astype(dtype)
        return y, y[-1].item()
    L = min(block or _block_len(d), n)
    nb = -(-n // L)
    k, dk, w = _powers(d, L, gain)
    # (L, nb) Fortran-ordered view of the weighted input: numpy's cumsum runs fastest along axis 0
    U = np.empty(nb * L, dtype)
    V = U.reshape(nb, L).T
    if n == nb * L:
        np.multiply(u.reshape(nb, L).T, w, out=V)
    else:
        U[:n] = u
        U[n:] = 0
        V *= w
    # state entering each block, from the zero-state block sums (one read pass, no write)
    sums = V.sum(axis=0).tolist()
    dL1 = dk[-1, 0]  # d**(L-1)
    dL = dL1 * d
    carry = np.empty(nb, dtype)
    s = state
    for b in range(nb):
        carry[b] = s
        s = dL * s + dL1 * sums[b]
    # y[n] = d**n * (cumsum(u[k] d**-k) + d * s_in): fold the carry into the first row
    V[0] += d * carry
    np.cumsum(V, axis=0, out=V)
    V *= dk
    y = U[:n]
    return y, y[-1].item()


_POWERS = {}


def _powers(d, L, gain):
    """Cached (k, d**k, gain * d**-k) columns for a pole and block length."""
    key = (d, L, gain)
    got = _POWERS.get(key)
    if got is None:
        if len(_POWERS) > 64:
            _POWERS.clear()
        k = np.arange(L, dtype=np.float64)
        got = (k, np.power(d, k)[:, None], (gain * np.power(d, -k))[:, None])
        _POWERS[key] = got
    return got


class _BlockRecursion:
    """``y[n] = d * y[n-1] + gain * u[n]`` (real) in blocks of ``L`` samples (16: measured
    fastest of 8-64 here, ~1.6x :func:`recur`) as matrix
    products: zero-state block outputs ``X @ T.T`` with ``T[k, j] = gain d**(k-j)``,
    then the state entering each block (the last output of the one before) by
    :func:`recur` at the block level (pole ``d**L``), added as ``d**(k+1) * s``.
    Equal to :func:`recur` up to float rounding (all terms of one sign for the
    STA/LTA: no cancellation)."""

    def __init__(self, d, gain, L=16):
        k = np.arange(L)
        self.d, self.L = float(d), L
        lag = k[:, None] - k[None, :]
        T = np.where(lag >= 0, gain * np.power(self.d, np.maximum(lag, 0)), 0.0)
        self._TT = np.ascontiguousarray(T.T)
        self._O = np.power(self.d, k + 1.0)   # state s reaches sample k as d**(k+1) s
        self._dL = self.d ** L

    def run(self, u, state):
        """(y, last) for a 1-D float64 packet and the state before it."""
        n, L = len(u), self.L
        y = np.empty(n)
        nb = n // L
        s = state
        if nb:
            Y = y[: nb * L].reshape(nb, L)
            np.matmul(u[: nb * L].reshape(nb, L), self._TT, out=Y)
            ends, last = recur(Y[:, -1], self._dL, s)   # block end states
            entry = np.empty(nb)
            entry[0] = s
            entry[1:] = ends[:-1]
            Y += entry[:, None] * self._O
            s = last
        r = n - nb * L
        if r:
            y[nb * L:] = self._TT[:r, :r].T @ u[nb * L:] + self._O[:r] * s
            s = float(y[-1])
        return y, s


def recur_reference(u, d, state=0.0):
    """Sample-by-sample twin of :func:`recur` (slow; for tests)."""
    u = np.asarray(u)
    out = np.empty(len(u), np.complex128 if np.iscomplexobj(u) or isinstance(d, complex) else np.float64)
    s = state
    for i in range(len(u)):
        s = d * s + u[i]
        out[i] = s
    return out, s


# ------------------------------------------------------------------ bandpass design
def butter_bandpass_sos(low_hz, high_hz, fs, order=2):
    """Digital Butterworth bandpass as second-order sections.

    low_hz, high_hz: corners (Hz), ``0 < low < high < fs / 2``.  order: poles
    per corner (the bandpass has ``2 * order`` poles, ``order`` biquads).
    Returns (order, 6) float64 rows ``[b0, b1, b2, 1, a1, a2]`` like scipy's
    ``butter(order, [low, high], 'bandpass', fs=fs, output='sos')`` (same
    response; the pairing of zeros to sections may differ).  Analog prototype,
    lowpass-to-bandpass transform and bilinear transform with prewarping.
    """
    nyq = fs / 2.0
    if not (0 < low_hz < high_hz < nyq):
        raise ConfigError(
            "bandpass corners %r-%r Hz at %r Hz sampling; need 0 < low < high < %r Hz (Nyquist)"
            % (low_hz, high_hz, fs, nyq)
        )
    if not isinstance(order, int) or isinstance(order, bool) or not (1 <= order <= 8):
        raise ConfigError("bandpass order %r; allowed: an integer 1-8" % (order,))
    # prewarped analog corners (rad/s) for the bilinear transform with fs2 = 2 fs
    fs2 = 2.0 * fs
    w1 = fs2 * math.tan(math.pi * low_hz / fs)
    w2 = fs2 * math.tan(math.pi * high_hz / fs)
    bw, w0 = w2 - w1, math.sqrt(w1 * w2)
    m = np.arange(-order + 1, order, 2)
    p_lp = -np.exp(1j * np.pi * m / (2 * order))  # unit Butterworth poles
    # lowpass -> bandpass: each prototype pole gives two poles
    half = p_lp * bw / 2.0
    root = np.sqrt(half ** 2 - w0 ** 2)
    p_bp = np.concatenate([half + root, half - root])
    k_bp = bw ** order
    # bilinear transform: zeros at z=+1 (order of them, from s=0) and z=-1 (order, from s=inf)
    p_z = (fs2 + p_bp) / (fs2 - p_bp)
    k_z = k_bp * fs2 ** order * np.real(1.0 / np.prod(fs2 - p_bp))
    # pair conjugate poles into biquads; real poles (odd order, wide band) pair up in order
    upper = list(p_z[np.imag(p_z) > 1e-12])
    real = np.sort(np.real(p_z[np.abs(np.imag(p_z)) <= 1e-12]))
    sections = [(p, np.conj(p)) for p in upper] + [(real[i], real[i + 1]) for i in range(0, len(real), 2)]
    sections.sort(key=lambda pq: abs(pq[0]))
    sos = np.zeros((order, 6))
    for i, (p, q) in enumerate(sections):
        sos[i, :3] = [1.0, 0.0, -1.0]  # one zero at +1 and one at -1
        sos[i, 3:] = [1.0, -np.real(p + q), np.real(p * q)]
    # spread the gain: set each section's gain so the cascade matches k_z
    sos[0, :3] *= k_z
    return sos


def butter_highpass_sos(corner_hz, fs, order=2):
    """Digital Butterworth highpass of even ``order`` (2, 4, 6, 8) as second-order sections.

    Each biquad is the bilinear transform (prewarped at ``corner_hz``) of
    ``s^2 / (s^2 + s w / Q + w^2)`` with the Butterworth pole quality factors
    ``Q_k = 1 / (2 cos((2k + 1) pi / (2 order)))``; equal in response to
    scipy's ``butter(order, corner, 'highpass', fs=fs, output='sos')``.
    """
    nyq = fs / 2.0
    if not (0 < corner_hz < nyq):
        raise ConfigError("highpass corner %r Hz at %r Hz sampling; need 0 < corner < %r Hz (Nyquist)"
                          % (corner_hz, fs, nyq))
    if not isinstance(order, int) or isinstance(order, bool) or order not in (2, 4, 6, 8):
        raise ConfigError("highpass order %r; allowed: 2, 4, 6, 8" % (order,))
    k = math.tan(math.pi * corner_hz / fs)
    sos = np.zeros((order // 2, 6))
    for i in range(order // 2):
        q = 1.0 / (2.0 * math.cos((2 * i + 1) * math.pi / (2 * order)))
        norm = 1.0 / (1.0 + k / q + k * k)
        sos[i] = [norm, -2.0 * norm, norm, 1.0, 2.0 * (k * k - 1.0) * norm, (1.0 - k / q + k * k) * norm]
    return sos


def _state_space(sos):
    """(A, B, C, D) of a biquad cascade, each section in direct form II transposed.

    Section ``[b0 b1 b2 1 a1 a2]`` with state ``(z1, z2)``: ``y = b0 u + z1``,
    ``z1' = (b1 - a1 b0) u - a1 z1 + z2``, ``z2' = (b2 - a2 b0) u - a2 z1``;
    sections in series (each one's output is the next one's input).
    """
    A, B, C, D = np.zeros((0, 0)), np.zeros(0), np.zeros(0), 1.0
    for b0, b1, b2, _, a1, a2 in sos:
        Ai = np.array([[-a1, 1.0], [-a2, 0.0]])
        Bi = np.array([b1 - a1 * b0, b2 - a2 * b0])
        n = len(B)
        An = np.zeros((n + 2, n + 2))
        An[:n, :n] = A
        An[n:, :n] = np.outer(Bi, C)
        An[n:, n:] = Ai
        A, B, C, D = An, np.concatenate([B, Bi * D]), np.concatenate([b0 * C, [1.0, 0.0]]), b0 * D
    return A, B, C, D


class SosFilter:
    """A biquad cascade applied packet by packet (the state is explicit).

    The cascade is one linear system of ``N = 2 * sections`` states
    (:func:`_state_space`), run in blocks of ``L`` samples as matrix
    products (state-space block processing): for a block ``x`` entered with
    state ``s``, ``y = T x + O s`` and the state after it is
    ``A^L s + K x``, with ``T`` the (L, L) lower-triangular Toeplitz matrix of
    the impulse response, ``O`` rows ``C A^k``, ``K`` columns ``A^(L-1-j) B``.
    The states entering the blocks of a packet, ``t_b = A^L t_(b-1) + K x_b``,
    are a prefix scan solved by doubling (``log2(blocks)`` matrix products),
    so no Python loop runs per block.  Exact up to float rounding: agrees with
    the sample-by-sample :func:`sosfilt_reference` to ~1e-12 relative;
    ``filter(x)`` on consecutive packets equals one pass over their
    concatenation to the same rounding.
    """

    block = 32  # samples per block: T costs L multiply-adds per sample, the scan fewer blocks

    def __init__(self, sos):
        sos = np.asarray(sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6 or np.any(sos[:, 3] != 1.0):
            raise ConfigError("sos has shape %s; expected (n, 6) rows [b0 b1 b2 1 a1 a2]" % (sos.shape,))
        for a1, a2 in sos[:, 4:]:
            r = np.abs(np.roots([1.0, a1, a2]))
            if r.max() >= 1.0:
                raise ConfigError("biquad a1=%r a2=%r is unstable (|pole| = %r >= 1)" % (a1, a2, r.max()))
        self.sos = sos
        A, B, C, D = _state_space(sos)
        L, N = self.block, len(B)
        P = np.empty((L + 1, N, N))
        P[0] = np.eye(N)
        for k in range(1, L + 1):
            P[k] = A @ P[k - 1]
        self._P = P                                  # A^k, k = 0..L
        self._O = np.einsum("j,kjn->kn", C, P[:L])   # (L, N): row k is C A^k
        AkB = P[:L] @ B                              # (L, N): row m is A^m B
        h = np.concatenate([[D], AkB[:-1] @ C])      # impulse response h[0..L-1]
        i = np.arange(L)
        T = np.where(i[:, None] >= i[None, :], h[np.maximum(i[:, None] - i[None, :], 0)], 0.0)
        self._TT = np.ascontiguousarray(T.T)         # y_blocks = X @ T.T
        self._KT = np.ascontiguousarray(AkB[::-1])   # (L, N): row j is A^(L-1-j) B
        self._OT = np.ascontiguousarray(self._O.T)
        self.reset()

    def reset(self):
        """Forget the past (after a gap): zero state."""
        self._s = np.zeros(len(self._KT[0]))

    def filter(self, x):
        """Filter one packet (1-D); returns a new float64 array of the same length."""
        x = np.asarray(x, dtype=np.float64)
        n, L = len(x), self.block
        out = np.empty(n)
        s = self._s
        nb = n // L
        if nb:
            X = x[: nb * L].reshape(nb, L)
            t = X @ self._KT                  # (nb, N): each block's input -> its end state
            t[0] += self._P[L] @ s
            step, Mp = 1, self._P[L]
            while step < nb:                  # t_b = sum_(j<=b) (A^L)^(b-j) t_j, by doubling
                t[step:] += t[:-step] @ Mp.T
                Mp = Mp @ Mp
                step *= 2
            entry = np.empty_like(t)
            entry[0] = s
            entry[1:] = t[:-1]
            Y = out[: nb * L].reshape(nb, L)
            np.matmul(X, self._TT, out=Y)
            Y += entry @ self._OT
            s = t[-1].copy()
        r = n - nb * L
        if r:
            xt = x[nb * L:]
            out[nb * L:] = self._TT[:r, :r].T @ xt + self._O[:r] @ s
            s = self._P[r] @ s + self._KT[L - r:].T @ xt
        self._s = s
        return out


def sosfilt_reference(sos, x):
    """Direct-form II transposed biquads, sample by sample (slow; for tests)."""
    y = np.asarray(x, dtype=np.float64).copy()
    for b0, b1, b2, _, a1, a2 in np.asarray(sos):
        z1 = z2 = 0.0
        out = np.empty_like(y)
        for i, xi in enumerate(y):
            yi = b0 * xi + z1
            z1 = b1 * xi - a1 * yi + z2
            z2 = b2 * xi - a2 * yi
            out[i] = yi
        y = out
    return y


# ------------------------------------------------------------------ STA/LTA
class RecursiveStaLta:
    """Recursive STA/LTA (Withers et al. 1998), incremental; equals ObsPy's
    ``recursive_sta_lta(a, nsta, nlta)`` on the concatenated packets.

    nsta, nlta: window lengths in samples (``0 < nsta < nlta``).
    growing: over the first ``nlta`` samples, where ObsPy's ratio is zero,
    divide the STA by the mean of the squared samples seen so far instead
    (from ``3 * nsta`` samples on, once the STA has settled; zero before).
    From sample ``nlta`` on the ratio is ObsPy's either way.
    """

    def __init__(self, nsta, nlta, growing=False):
        for name, v in (("nsta", nsta), ("nlta", nlta)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError("%s %r; allowed: an integer number of samples >= 1" % (name, v))
        if nsta >= nlta:
            raise ConfigError("nsta %d must be shorter than nlta %d (samples)" % (nsta, nlta))
        self.nsta, self.nlta = int(nsta), int(nlta)
        self.growing = bool(growing)
        self._sta_rec = _BlockRecursion(1.0 - 1.0 / self.nsta, 1.0 / self.nsta)
        self._lta_rec = _BlockRecursion(1.0 - 1.0 / self.nlta, 1.0 / self.nlta)
        self.reset()

    def reset(self):
        """Start over (after a gap): the next sample seeds the state."""
        self._sta = 0.0
        self._lta = _TINY
        self._seen = 0  # samples since the (re)start
        self._sum = 0.0  # sum of the squared samples since the (re)start, while warming up

    def update(self, x):
        """Characteristic function of one packet (float64, same length)."""
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        sq = x * x
        if self._seen == 0 and n:
            sq[0] = 0.0  # ObsPy's loop starts at index 1
        sta, self._sta = self._sta_rec.run(sq, self._sta)
        lta, self._lta = self._lta_rec.run(sq, self._lta)
        warm = min(self.nlta - self._seen, n)
        if warm > 0 and self.growing:
            total = self._sum + np.cumsum(sq[:warm])
            self._sum = float(total[-1])
            count = self._seen + 1 + np.arange(warm)
            lta[:warm] = np.where(count >= 3 * self.nsta, np.maximum(total / count, _TINY), np.inf)
        cf = np.divide(sta, lta, out=sta)
        if warm > 0 and not self.growing:
            cf[:warm] = 0.0
        self._seen += n
        return cf


class HighpassInput:
    """A causal Butterworth highpass for one channel of a stream, packet by packet.

    After :meth:`reset` (the start of the stream or of the data after a gap)
    the first sample ``x0`` is taken as the level the channel has always
    been at: the filter runs on ``x - x0`` from rest, which is the steady
    state of a constant input, so a large DC offset (raw counts) gives no
    step transient.  :func:`highpass_traces` is the same filter over whole
    arrays (training, offline scoring).
    """

    def __init__(self, corner_hz, fs, order=2):
        self.corner_hz, self.fs, self.order = float(corner_hz), float(fs), int(order)
        self.sos = butter_highpass_sos(self.corner_hz, self.fs, self.order)
        self._filter = SosFilter(self.sos)
        self.reset()

    def reset(self):
        self._filter.reset()
        self._x0 = None

    def filter(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self._x0 is None and len(x):
            self._x0 = float(x[0])
        return self._filter.filter(x - (self._x0 or 0.0))


def highpass_traces(waves, corner_hz, fs, order=2):
    """Each channel of ``waves`` (..., T) through :class:`HighpassInput` from its first sample (float32)."""
    w = np.asarray(waves)
    flat = w.reshape(-1, w.shape[-1])
    out = np.empty(flat.shape, np.float32)
    f = HighpassInput(corner_hz, fs, order)
    for i, x in enumerate(flat):
        f.reset()
        out[i] = f.filter(x)
    return out.reshape(w.shape)


class TriggerState:
    """On/off hysteresis: on when ``cf >= on``, off when ``cf < off``."""

    def __init__(self, on, off):
        if not (on > 0 and off > 0 and off <= on):
            raise ConfigError("trigger thresholds on=%r off=%r; need 0 < off <= on" % (on, off))
        self.on, self.off = float(on), float(off)
        self.active = False

    def reset(self):
        self.active = False

    def update(self, cf):
        """Boolean array: trigger active at each sample of this packet."""
        cf = np.asarray(cf)
        if len(cf) == 0:
            return np.zeros(0, bool)
        # fast paths: quiet while off, or loud while on (most packets)
        if not self.active and cf.max() < self.on:
            return np.zeros(len(cf), bool)
        if self.active and cf.min() >= self.off:
            return np.ones(len(cf), bool)
        code = np.where(cf >= self.on, 1, np.where(cf < self.off, 0, -1))
        decisive = code >= 0
        idx = np.where(decisive, np.arange(len(cf)), -1)
        last = np.maximum.accumulate(idx) if len(idx) else idx
        out = np.where(last >= 0, code[np.maximum(last, 0)], 1 if self.active else 0).astype(bool)
        if len(out):
            self.active = bool(out[-1])
        return out


class Trigger:
    """Bandpass -> recursive STA/LTA -> on/off, for one channel, packet by packet.

    fs: Hz.  band_hz: (low, high) corners, or None for no filter.
    sta_s, lta_s: seconds.  on, off: STA/LTA thresholds.
    warmup: the first ``lta_s`` seconds after a (re)start, while the LTA is
    still filling and ObsPy's ``recursive_sta_lta`` is zero: 'growing' (the
    STA over the mean of what has been seen so far, from ``3 * sta_s`` on;
    the data enter the bandpass less their first sample, so a DC offset
    gives no step), 'blind' (ObsPy's: no trigger there) or 'open' (reported
    active throughout).  An arrival in the first seconds of a record or
    after a gap reaches the network with 'growing' or 'open'.
    ``update(x)`` returns ``(cf, active)`` for the packet; ``reset()`` after a gap.
    """

    def __init__(self, fs, band_hz=(1.0, 20.0), order=2, sta_s=0.5, lta_s=10.0, on=3.5, off=1.5,
                 warmup="blind"):
        if warmup not in WARMUPS:
            raise ConfigError("trigger warmup %r; allowed: %s" % (warmup, ", ".join(WARMUPS)))
        self.fs = float(fs)
        self.warmup = warmup
        self.filter = SosFilter(butter_bandpass_sos(band_hz[0], band_hz[1], fs, order)) if band_hz else None
        self.stalta = RecursiveStaLta(int(round(sta_s * fs)), int(round(lta_s * fs)), growing=warmup == "growing")
        self.state = TriggerState(on, off)
        self._x0 = None

    def reset(self):
        if self.filter is not None:
            self.filter.reset()
        self.stalta.reset()
        self.state.reset()
        self._x0 = None

    def update(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.warmup == "growing":
            if self._x0 is None and len(x):
                self._x0 = float(x[0])
            x = x - (self._x0 or 0.0)
        y = self.filter.filter(x) if self.filter is not None else x
        warm = self.stalta.nlta - self.stalta._seen
        cf = self.stalta.update(y)
        active = self.state.update(cf)
        if self.warmup == "open" and warm > 0:
            active[:warm] = True
        return cf, active
