"""The China-network (PNSN) pickers as teachers: LPPN tiny/medium/large, BRNN, EQTransformer, U-Net (ONNX).

Facts read from the graphs (onnxruntime runs them; nothing of theirs is
copied here): input ``wave`` (L, 3) float32 in E, N, Z order of any length;
the graph cuts it into chunks of 6144 samples every 5888 samples (256 samples
shared by neighbours; the last chunk repeats the final sample past the end),
removes each chunk's per-channel mean and divides by its per-channel peak
plus 1e-6, and returns ``prob`` (M, C) (column 0 noise, 1 P, 2 S; LPPN
medium has four more columns that stay near zero) and ``time`` (M,), the
sample that each row stands for.  BRNN, EQTransformer and U-Net give one row
per sample of each chunk; the LPPN family one row per 8 samples, whose time
carries the model's in-stride offset (a real number).  A graph with a single
chunk (L <= 5888) fails, so shorter traces are padded.

From rows to a per-sample curve (:func:`rows_to_samples`): rows are split
into the graph's chunks (runs of rising time); within each chunk each row's
probability sits at its time and the curve between rows is linear (for the
per-sample models this is the rows themselves; for LPPN the peak of the
curve is the row with the largest probability, at its offset time, to the
nearest sample).  Rows whose time rounds to a sample outside the input
come from padding and are dropped (the curve holds the last real row's
value up to the input's end).  Where chunks overlap, their curves are
averaged with :func:`~fieldpick.train.teachers.base.edge_taper` weights
(a crossfade that trusts each chunk least at its edges).

The graph's chunks share only 256 samples, so an arrival near a seam is
seen by both chunks at their edges, with little context (a labelled set
with every P at sample 6000 has all of them inside the first seam).  Each trace
longer than one chunk step therefore runs twice: as it is, and from its
sample 2944 (half a chunk step) on, so that every seam of one pass lies in
the middle of a chunk of the other; the edge-taper weights (ramp of a
quarter chunk) let the pass that has a sample in a chunk's middle decide
it.  (Padding the second pass in front instead made the step from padding
to data look like an onset.)
"""

from __future__ import annotations

import numpy as np

from fieldpick.edge.errors import ModelError

from .base import Teacher, edge_taper, teacher_file

__all__ = ["PnsnTeacher", "rows_to_samples", "CHUNK_HOP", "CHUNK"]

#: samples between the starts of the graph's chunks; one chunk alone breaks the graph
CHUNK_HOP = 5888
#: samples per chunk of the graph
CHUNK = 6144
#: edge-taper ramp (samples) when chunks are combined
RAMP = CHUNK // 4


def _accumulate(prob, time, length, acc, wsum, offset=0, ramp=RAMP):
    """Add the tapered per-sample curves of rows ``prob`` (M, C) at ``time + offset`` into acc (C, L), wsum (L,)."""
    prob = np.asarray(prob, dtype=np.float32)
    time = np.asarray(time, dtype=np.float64)
    if prob.ndim != 2 or time.shape != (prob.shape[0],):
        raise ModelError("model rows %r with times %r; expected (M, C) and (M,)" % (prob.shape, time.shape))
    breaks = np.flatnonzero(np.diff(time) < 0) + 1
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(time)]):
        t, p = time[lo:hi] + offset, prob[lo:hi]
        if len(t) == 0:
            continue
        half = 0.5 * (float(np.median(np.diff(t))) if len(t) > 1 else 1.0)
        edges = (t[0] - half, t[-1] + half)          # the chunk's own extent, padding included
        keep = (t > -0.5) & (t < length - 0.5)       # rows whose nearest sample is inside the input
        t, p = t[keep], p[keep]
        first = max(0, int(np.ceil(edges[0])))
        last = min(length - 1, int(np.floor(edges[1])))
        if len(t) == 0 or last < first:
            continue
        samples = np.arange(first, last + 1, dtype=np.float64)
        w = edge_taper(np.minimum(samples - edges[0], edges[1] - samples), ramp)
        for k in range(p.shape[1]):
            acc[k, first:last + 1] += np.interp(samples, t, p[:, k]) * w
        wsum[first:last + 1] += w


def rows_to_samples(prob, time, length, ramp=RAMP):
    """Map model rows ``prob`` (M, C) at sample times ``time`` (M,) onto ``length`` samples: (C, length).

    See the module docstring.  Samples that no row covers get 0.
    """
    acc = np.zeros((np.shape(prob)[1] if np.ndim(prob) == 2 else 1, length), np.float32)
    wsum = np.zeros(length, np.float32)
    _accumulate(prob, time, length, acc, wsum, ramp=ramp)
    return acc / np.where(wsum > 0, wsum, 1.0)


class PnsnTeacher(Teacher):
    """One PNSN ONNX picker (``pnsn/<name>.onnx``) run by onnxruntime, one trace per call."""

    def __init__(self, name, root, threads=1, family="", trained_on="", licence=""):
        super().__init__(threads)
        self.name, self.family, self.trained_on, self.licence = name, family, trained_on, licence
        self.path = teacher_file(root, "pnsn", name + ".onnx")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])

    def _predict100(self, x):
        return np.stack([self._trace(tr) for tr in x])

    def _trace(self, tr):
        """(3, T) ZNE at 100 Hz -> (2, T) P, S."""
        length = tr.shape[-1]
        tr = tr - tr.mean(axis=-1, keepdims=True)
        # the graph divides each chunk by (peak + 1e-6): take the units out so that 1e-6 stays negligible
        # (a trace in m/s peaks near 1e-6); the per-channel scale itself does not change what the graph sees
        scale = tr.std(axis=-1, keepdims=True)
        tr = tr / np.where(scale > 0, scale, 1.0)
        wave = np.ascontiguousarray(tr[::-1].T, dtype=np.float32)      # (T, 3) E, N, Z
        acc = np.zeros((2, length), np.float32)
        wsum = np.zeros(length, np.float32)
        # the second pass starts half a chunk step in: each seam of the first lies in one of its chunks' middle
        offsets = (0, CHUNK_HOP // 2) if length > CHUNK_HOP else (0,)
        for offset in offsets:
            w = wave[offset:]
            if len(w) <= CHUNK_HOP:
                w = np.concatenate([w, np.repeat(w[-1:], CHUNK_HOP + 1 - len(w), axis=0)])
            prob, time = self.session.run(["prob", "time"], {"wave": w})
            if prob.ndim != 2 or prob.shape[1] < 3:
                raise ModelError("%s returned prob of shape %r; expected (M, >= 3) noise, P, S"
                                 % (self.path, prob.shape))
            _accumulate(prob[:, 1:3], time, length, acc, wsum, offset=offset)
        return acc / np.where(wsum > 0, wsum, 1.0)
