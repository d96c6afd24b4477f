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


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tflite_zoo"
    for p in build_zoo(out, names=sys.argv[2:] or None):
        print(p, os.path.getsize(p))
