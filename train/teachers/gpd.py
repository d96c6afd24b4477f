"""GPD (Ross et al. 2018, BSSA 108, 2894-2901) with its southern California weights, as a teacher.

GPD classifies a 4 s window (400 samples at 100 Hz) as P, S or noise; the
class stands for the window's centre sample.  The network, read from
``gpd/model_pol.json`` and ``gpd/model_pol_best.hdf5`` (Keras 2; the weights
of the inner Sequential are read with h5py, the optimizer state ignored):
four blocks of 'same' Conv1D (32, 64, 128, 256 filters; kernels 21, 15, 11,
9) + BatchNorm (eps 1e-3) + ReLU + max-pool 2, flatten (time-major), two
Dense 200 + BatchNorm + ReLU, Dense 3 + softmax over P, S, noise.

The published recipe, followed here: the three components in the order
N, E, Z; the whole trace linearly detrended and band-passed 3-20 Hz (a
causal 4-pole Butterworth, as ObsPy's ``bandpass`` does by default, started
in its steady state so that the trace start has no step transient); a
window every 10 samples, each divided by its largest absolute sample over
all three components.  The per-sample curve is the windows' probabilities
placed at their centres and interpolated linearly; the trace is mirrored
by half a window at both ends so that every sample is some window's centre
(zero padding made the step from zeros to data look like a P at sample 0).
"""

from __future__ import annotations

import numpy as np

from fieldpick.edge.errors import ModelFormatError

from .base import Teacher, teacher_file

__all__ = ["GpdTeacher", "build_gpd", "WINDOW", "HOP"]

WINDOW = 400
HOP = 10          # samples between window centres
BAND_HZ = (3.0, 20.0)
_CONV = [(3, 32, 21), (32, 64, 15), (64, 128, 11), (128, 256, 9)]


def build_gpd():
    """The PyTorch module (untrained): (B, 3, 400) normalised N, E, Z -> (B, 3) softmax P, S, noise."""
    import torch
    from torch import nn

    class Gpd(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv1d(i, o, k, padding=k // 2) for i, o, k in _CONV)
            self.conv_bns = nn.ModuleList(nn.BatchNorm1d(o, eps=1e-3) for _, o, _ in _CONV)
            self.dense = nn.ModuleList([nn.Linear(6400, 200), nn.Linear(200, 200), nn.Linear(200, 3)])
            self.dense_bns = nn.ModuleList([nn.BatchNorm1d(200, eps=1e-3), nn.BatchNorm1d(200, eps=1e-3)])

        def forward(self, x):
            for conv, bn in zip(self.convs, self.conv_bns):
                x = nn.functional.max_pool1d(torch.relu(bn(conv(x))), 2)
            x = x.transpose(1, 2).flatten(1)            # Keras flattens (time, channel)
            for dense, bn in zip(self.dense[:2], self.dense_bns):
                x = torch.relu(bn(dense(x)))
            return torch.softmax(self.dense[2](x), dim=1)

    return Gpd()


def load_keras_weights(model, path):
    """Copy the Keras 2 weights of ``path`` (model_pol_best.hdf5) into :func:`build_gpd`'s module."""
    import h5py
    import torch

    with h5py.File(path, "r") as f:
        if "model_weights" not in f:
            raise ModelFormatError("%s has no model_weights group; expected GPD's Keras 2 weights file" % path)
        groups = [g for g in f["model_weights"].values() if isinstance(g, h5py.Group)]
        values = {}
        for g in groups:
            g.visititems(lambda name, obj: values.__setitem__(name.split("/")[-2] + "/" + name.split("/")[-1],
                                                              np.asarray(obj)) if hasattr(obj, "shape") else None)

    def get(layer, what):
        for key in (layer + "_1/" + what + ":0", layer + "/" + what + ":0"):
            if key in values:
                return torch.from_numpy(np.ascontiguousarray(values[key]))
        raise ModelFormatError("%s has no %s/%s; expected GPD's layers" % (path, layer, what))

    def set_bn(bn, layer):
        bn.weight.data, bn.bias.data = get(layer, "gamma"), get(layer, "beta")
        bn.running_mean.data, bn.running_var.data = get(layer, "moving_mean"), get(layer, "moving_variance")

    with torch.no_grad():
        for i, (conv, bn) in enumerate(zip(model.convs, model.conv_bns), start=1):
            conv.weight.data = get("conv1d_%d" % i, "kernel").permute(2, 1, 0).contiguous()
            conv.bias.data = get("conv1d_%d" % i, "bias")
            set_bn(bn, "batch_normalization_%d" % i)
        for i, dense in enumerate(model.dense, start=1):
            dense.weight.data = get("dense_%d" % i, "kernel").t().contiguous()
            dense.bias.data = get("dense_%d" % i, "bias")
        for i, bn in enumerate(model.dense_bns, start=5):
            set_bn(bn, "batch_normalization_%d" % i)
    return model


def preprocess(x):
    """(N, 3, T) ZNE at 100 Hz -> (N, 3, T) N, E, Z linearly detrended and band-passed 3-20 Hz (causal)."""
    from scipy.signal import butter, detrend, sosfilt, sosfilt_zi

    x = detrend(x.astype(np.float64), axis=-1, type="linear")
    sos = butter(4, BAND_HZ, btype="bandpass", fs=100.0, output="sos")
    # start the filter in its steady state for the first sample: no step transient at the trace start
    zi = sosfilt_zi(sos)[:, None, None, :] * x[None, :, :, :1]
    return sosfilt(sos, x, axis=-1, zi=zi)[0][:, [1, 2, 0]].astype(np.float32)


class GpdTeacher(Teacher):
    """GPD on a 4 s window every 10 samples; each window's class placed at its centre."""

    batch = 512

    def __init__(self, name, root, threads=1, family="", trained_on="", licence=""):
        super().__init__(threads)
        self.name, self.family, self.trained_on, self.licence = name, family, trained_on, licence
        teacher_file(root, "gpd", "model_pol.json")
        self.path = teacher_file(root, "gpd", "model_pol_best.hdf5")
        self.model = load_keras_weights(build_gpd(), self.path).eval()

    def _predict100(self, x):
        import torch

        n, _, length = x.shape
        half = WINDOW // 2
        y = np.pad(preprocess(x), ((0, 0), (0, 0), (half, half)), mode="reflect")
        centres = np.arange(0, length + HOP - 1, HOP)
        centres[-1] = min(centres[-1], length - 1)
        offsets = np.arange(WINDOW) - half
        out = np.empty((n, len(centres), 2), np.float32)
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            per = max(1, self.batch // n)
            for b in range(0, len(centres), per):
                c = centres[b:b + per]
                segs = y[:, :, half + c[:, None] + offsets]                 # (N, 3, k, W)
                segs = segs.transpose(0, 2, 1, 3).reshape(-1, 3, WINDOW)
                segs = segs / (np.abs(segs).max(axis=(1, 2), keepdims=True) + 1e-10)
                with torch.inference_mode():
                    p = self.model(torch.from_numpy(np.ascontiguousarray(segs, dtype=np.float32))).numpy()
                out[:, b:b + len(c)] = p[:, :2].reshape(n, len(c), 2)
        finally:
            torch.set_num_threads(before)
        samples = np.arange(length)
        result = np.empty((n, 2, length), np.float32)
        for i in range(n):
            for k in range(2):
                result[i, k] = np.interp(samples, centres, out[i, :, k])
        return result
