"""Tiny TFLite test models ("the zoo"), built with TF 2.19's converter.

Each model is a small Keras network shaped like the project's pickers or
exercising a family of operators.  :func:`build_zoo` converts every one three
ways into a folder:

- ``<name>_fp32.tflite``: float32 throughout;
- ``<name>_int8.tflite``: full int8 (per-channel weights, int8 input/output);
- ``<name>_int8f.tflite``: int8 inside, float32 input/output (adds QUANTIZE
  and DEQUANTIZE at the edges).

Conversion is slow (seconds per model), so the tests build the zoo once and
cache it keyed by this file's hash (see ``tflite_zoo`` in
tests/edge/test_tflite_exact.py).  Run as a script to build into a folder:
``.venv/bin/python tests/edge/tflite_models.py OUTDIR``.
"""

import os
import sys

import numpy as np

T = 64  # samples per window in the zoo (small: the tests stay fast)
C = 3  # components


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def _seed(tf, seed):
    tf.keras.utils.set_random_seed(seed)


def conv_picker(tf):
    """1-D conv picker: plain, dilated, strided and depthwise separable convs."""
    L = tf.keras.layers
    x = inp = L.Input((T, C), batch_size=1)
    x = L.Conv1D(8, 7, padding="same", activation="relu")(x)
    x = L.Conv1D(8, 3, padding="same", dilation_rate=2, activation="relu6")(x)
    x = L.SeparableConv1D(12, 5, padding="same", activation="relu")(x)
    x = L.Conv1D(12, 4, strides=2, padding="same", activation="tanh")(x)
    x = L.Conv1D(16, 3, strides=2, padding="valid")(x)
    x = L.DepthwiseConv1D(3, padding="same", depth_multiplier=1, activation="relu")(x)
    x = L.Conv1D(3, 1, padding="same")(x)
    x = L.Softmax(axis=-1)(x)
    return tf.keras.Model(inp, x)


def unet(tf):
    """PhaseNet-like U-Net: down by strided conv, up by Conv1DTranspose, skip concatenation."""
    L = tf.keras.layers
    x = inp = L.Input((T, C), batch_size=1)
    e1 = L.Conv1D(8, 7, padding="same", activation="relu")(x)
    e2 = L.Conv1D(12, 7, strides=4, padding="same", activation="relu")(e1)
    e3 = L.Conv1D(16, 7, strides=4, padding="same", activation="relu")(e2)
    d2 = L.Conv1DTranspose(12, 7, strides=4, padding="same", activation="relu")(e3)
    d2 = L.Concatenate(axis=-1)([d2, e2])
    d1 = L.Conv1DTranspose(8, 7, strides=4, padding="same", activation="relu")(d2)
    d1 = L.Concatenate(axis=-1)([e1, d1])
    x = L.Conv1D(3, 1, padding="same")(d1)
    x = L.Softmax(axis=-1)(x)
    return tf.keras.Model(inp, x)


def lppn(tf, t=T, width=8, stride=8, name=None):
    """LPPN-like stride classifier: per stride of ``stride`` samples, class softmax + offset.

    Depthwise separable blocks, downsampling by strided convs to one
    vector per stride; two heads: noise/P/S softmax and a sigmoid offset.
    """
    L = tf.keras.layers
    x = inp = L.Input((t, C), batch_size=1)
    x = L.Conv1D(width, 7, padding="same", activation="relu")(x)
    ch = width
    s = 1
    while s < stride:
        ch = ch * 2 if ch < 8 * width else ch
        x = L.DepthwiseConv1D(5, strides=2, padding="same")(x)
        x = L.Conv1D(ch, 1, activation="relu")(x)
        y = L.SeparableConv1D(ch, 5, padding="same", activation="relu")(x)
        x = L.Add()([x, y])
        s *= 2
    cls = L.Conv1D(3, 1)(x)
    cls = L.Softmax(axis=-1)(cls)
    off = L.Conv1D(1, 1, activation="sigmoid")(x)
    return tf.keras.Model(inp, [cls, off], name=name)


def ops_a(tf):
    """Elementwise and activation operators on a 1-D feature map."""
    L = tf.keras.layers
    x = inp = L.Input((T, C), batch_size=1)
    x = L.Conv1D(8, 3, padding="same")(x)
    a = L.LeakyReLU(negative_slope=0.1)(x)
    b = L.Activation("hard_swish")(x)
    c = L.Activation("sigmoid")(x)
    d = L.Activation("tanh")(x)
    e = L.ReLU()(x)
    f = L.ReLU(max_value=6.0)(x)
    s = L.Subtract()([a, b])
    m = L.Multiply()([c, d])
    y = L.Add()([s, m])
    y = L.Concatenate()([y, e, f])
    y = L.ZeroPadding1D((2, 3))(y)
    y = L.MaxPooling1D(3, strides=2, padding="valid")(y)
    y = L.AveragePooling1D(3, strides=1, padding="same")(y)
    y = L.Conv1D(4, 3, padding="valid")(y)
    return tf.keras.Model(inp, y)


def ops_b(tf):
    """Shape operators, dense layers, mean and nearest-neighbour resize."""
    L = tf.keras.layers

    class Shuffle(L.Layer):
        def call(self, x):
            y = x[:, 2:-2:2, :]  # STRIDED_SLICE
            y = tf.slice(y, [0, 1, 0], [1, 24, 8])  # SLICE
            y = tf.gather(y, [7, 0, 3, 3, 1, 6, 2, 5], axis=2)  # GATHER
            y = tf.transpose(y, [0, 2, 1])  # TRANSPOSE: (1, 8, 24)
            y = tf.reshape(y, (1, 24, 8))  # RESHAPE
            z = tf.image.resize(y[:, :, None, :], (48, 1), method="nearest")  # RESIZE_NEAREST_NEIGHBOR
            return tf.reshape(z, (1, 48, 8))

    x = inp = L.Input((T, C), batch_size=1)
    x = L.Conv1D(8, 3, padding="same", activation="relu")(x)
    y = Shuffle()(x)
    y = L.Conv1D(6, 3, padding="same")(y)
    g = L.GlobalAveragePooling1D()(y)  # MEAN
    g = L.Dense(10, activation="relu")(g)  # FULLY_CONNECTED
    g = L.Dense(4)(g)
    g = L.Softmax()(g)
    return tf.keras.Model(inp, [y, g])


def tiny(tf):
    """The smallest useful picker (16 samples): committed under tests/edge/data/ for numpy-only tests."""
    L = tf.keras.layers
    x = inp = L.Input((16, C), batch_size=1)
    x = L.Conv1D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = L.DepthwiseConv1D(3, padding="same")(x)
    x = L.Conv1D(3, 1)(x)
    x = L.Softmax(axis=-1)(x)
    return tf.keras.Model(inp, x)


ZOO = {
    "conv_picker": conv_picker,
    "unet": unet,
    "lppn": lppn,
    "ops_a": ops_a,
    "ops_b": ops_b,
}


def _representative(shape, seed=7):
    rng = np.random.default_rng(seed)

    def gen():
        for _ in range(24):
            # Seismic-like: mostly noise with a few bursts, unit-ish scale.
            x = rng.standard_normal(shape).astype(np.float32)
            x *= rng.uniform(0.3, 2.0)
            yield [x]

    return gen


def convert(tf, model, kind, input_shape):
    """Convert a Keras model; ``kind`` is 'fp32', 'int8' or 'int8f'."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = _representative(input_shape)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if kind == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


def build_zoo(outdir, names=None, kinds=("fp32", "int8", "int8f")):
    """Write every zoo model in every kind into ``outdir``; return the list of paths."""
    tf = _tf()
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for i, name in enumerate(names or ZOO):
        _seed(tf, 100 + i)
        model = ZOO[name](tf)
        _jitter_batchnorm_free(model, seed=200 + i)
        shape = tuple(model.inputs[0].shape)
        for kind in kinds:
            path = os.path.join(outdir, "%s_%s.tflite" % (name, kind))
            with open(path, "wb") as f:
                f.write(convert(tf, model, kind, shape))
            paths.append(path)
    return paths


def _jitter_batchnorm_free(model, seed):
    """Give biases non-zero values so that bias handling is exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w in ws:
            if w.ndim == 1:
                w = rng.normal(0.0, 0.1, w.shape).astype(w.dtype)
            new.append(w)
        layer.set_weights(new)


DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def build_data(outdir=DATA_DIR):
    """(Re)write the small committed models tests/edge/data/tiny_{fp32,int8}.tflite."""
    tf = _tf()
    os.makedirs(outdir, exist_ok=True)
    _seed(tf, 99)
    model = tiny(tf)
    _jitter_batchnorm_free(model, seed=98)
    paths = []
    for kind in ("fp32", "int8"):
        path = os.path.join(outdir, "tiny_%s.tflite" % kind)
        with open(path, "wb") as f:
            f.write(convert(tf, model, kind, tuple(model.inputs[0].shape)))
        paths.append(path)
    return paths


if __name__ == "__main__":
    # tflite_models.py --data        rewrite tests/edge/data/tiny_*.tflite
    # tflite_models.py OUTDIR [NAME]  build the zoo into OUTDIR
    if sys.argv[1:2] == ["--data"]:
        built = build_data()
    else:
        built = build_zoo(sys.argv[1] if len(sys.argv) > 1 else "tflite_zoo", names=sys.argv[2:] or None)
    for p in built:
        print(p, os.path.getsize(p))


# ---------------------------------------------------------------------------
# The onnx2tf route (how the project's real models reach TFLite).


def torch_lppn(width=16, stride=8, t=3000):
    """An LPPN-like torch picker (~15k parameters): per stride of 8 samples, noise/P/S + offset.

    Input (B, 3, T) -> class probabilities (B, 3, T / stride) and offsets (B, 1, T / stride).
    """
    import torch
    from torch import nn

    class SepBlock(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.down = nn.Conv1d(cin, cin, 5, stride=2, padding=2, groups=cin)
            self.pw = nn.Conv1d(cin, cout, 1)
            self.dw = nn.Conv1d(cout, cout, 5, padding=2, groups=cout)
            self.pw2 = nn.Conv1d(cout, cout, 1)

        def forward(self, x):
            x = torch.relu(self.pw(self.down(x)))
            return x + torch.relu(self.pw2(self.dw(x)))

    class LPPNLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv1d(3, width, 7, padding=3)
            chans = [width, 2 * width, 3 * width, 4 * width]
            blocks, s, i = [], 1, 0
            while s < stride:
                blocks.append(SepBlock(chans[i], chans[i + 1]))
                s, i = s * 2, i + 1
            self.blocks = nn.Sequential(*blocks)
            self.cls = nn.Conv1d(chans[i], 3, 1)
            self.off = nn.Conv1d(chans[i], 1, 1)

        def forward(self, x):
            x = self.blocks(torch.relu(self.stem(x)))
            return torch.softmax(self.cls(x), dim=1), torch.sigmoid(self.off(x))

    torch.manual_seed(0)
    model = LPPNLike().eval()
    with torch.no_grad():
        for p in model.parameters():  # spread the weights a little beyond the default init
            p.mul_(1.5)
    return model


def build_onnx2tf(outdir, t=3000, name="lppn_torch"):
    """torch -> ONNX -> onnx2tf float32 and full int8 .tflite; returns (onnx, fp32, int8) paths.

    onnx2tf rewrites its input in place, so it converts a copy.  Calibration
    data are NWC (N, T, C), mean 0 and std 1 (no ImageNet defaults).  About
    a minute on a laptop core.
    """
    import shutil
    import subprocess

    import torch

    torch.set_num_threads(1)
    os.makedirs(outdir, exist_ok=True)
    model = torch_lppn(t=t)
    onnx_path = os.path.join(outdir, name + ".onnx")
    x = torch.zeros(1, 3, t)
    torch.onnx.export(model, (x,), onnx_path, dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["cls", "off"], external_data=False)
    work = os.path.join(outdir, name + "_work")
    os.makedirs(work, exist_ok=True)
    copy = os.path.join(work, "copy.onnx")
    shutil.copy(onnx_path, copy)
    rng = np.random.default_rng(11)
    calib = (rng.standard_normal((16, t, 3)) * rng.uniform(0.3, 2.0, (16, 1, 1))).astype(np.float32)
    calib_path = os.path.join(work, "calib_nwc.npy")
    np.save(calib_path, calib)
    exe = os.path.join(os.path.dirname(sys.executable), "onnx2tf")
    subprocess.run([exe, "-i", copy, "-o", os.path.join(work, "out"), "-oiqt", "-qt", "per-channel",
                    "-cind", "x", calib_path, "[[[0,0,0]]]", "[[[1,1,1]]]"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    fp32 = os.path.join(outdir, name + "_fp32.tflite")
    int8 = os.path.join(outdir, name + "_int8.tflite")
    shutil.copy(os.path.join(work, "out", "copy_float32.tflite"), fp32)
    shutil.copy(os.path.join(work, "out", "copy_full_integer_quant.tflite"), int8)
    return onnx_path, fp32, int8
