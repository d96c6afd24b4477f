"""PhaseNet (Zhu & Beroza 2019) with its NCEDC-trained TensorFlow 1 checkpoint, as a teacher.

The checkpoint (``phasenet/model_95.ckpt.*``) is run by TensorFlow itself,
so its padding and layer conventions are exactly the ones it was trained
with: the inference part of the saved graph (from the placeholders ``X``,
``is_training``, ``drop_rate`` to ``preds/Reshape_1``, a softmax over noise,
P, S) is cut out of the meta graph, each variable replaced by its value from
the checkpoint, and the result imported into a private graph (the saved
training ops do not import into TensorFlow 2).  Input: 3000 samples at
100 Hz, shape (n, 3000, 1, 3), channels E, N, Z (``config.log``), each
window demeaned and divided by its per-channel standard deviation.
"""

from __future__ import annotations

import os

import numpy as np

from fieldpick.edge.errors import ModelFormatError

from .base import FixedWindowTeacher, teacher_file

__all__ = ["PhaseNetTeacher", "normalise", "WINDOW"]

WINDOW = 3000
_OUTPUT = "preds/Reshape_1"
_VARIABLES = ("VariableV2", "Variable")


def normalise(segs):
    """(B, 3, T) ZNE -> (B, T, 1, 3) ENZ, each channel demeaned and divided by its std (1 where flat)."""
    segs = segs - segs.mean(axis=-1, keepdims=True)
    std = segs.std(axis=-1, keepdims=True)
    segs = segs / np.where(std > 0, std, 1.0)
    return np.ascontiguousarray(segs[:, ::-1].transpose(0, 2, 1)[:, :, None, :], dtype=np.float32)


def _frozen_graph(meta_path, prefix):
    """The inference graph of the checkpoint with its variables turned into constants."""
    import tensorflow as tf

    meta = tf.compat.v1.MetaGraphDef()
    with open(meta_path, "rb") as f:
        meta.ParseFromString(f.read())
    names = {n.name for n in meta.graph_def.node}
    missing = [n for n in ("X", "is_training", "drop_rate", _OUTPUT) if n not in names]
    if missing:
        raise ModelFormatError("%s has no node %s; expected PhaseNet's X, is_training, drop_rate, %s"
                               % (meta_path, ", ".join(missing), _OUTPUT))
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, [_OUTPUT])
    reader = tf.train.load_checkpoint(prefix)
    for node in graph_def.node:
        node.attr.pop("_output_shapes", None)
        if node.op in _VARIABLES:
            value = reader.get_tensor(node.name)
            node.op = "Const"
            for key in list(node.attr):
                del node.attr[key]
            node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return graph_def


class PhaseNetTeacher(FixedWindowTeacher):
    """PhaseNet NCEDC on 3000-sample windows at 50 % overlap, overlaps combined by an edge taper."""

    window = WINDOW

    def __init__(self, name, root, threads=1, family="", trained_on="", licence=""):
        super().__init__(threads)
        self.name, self.family, self.trained_on, self.licence = name, family, trained_on, licence
        meta = teacher_file(root, "phasenet", "model_95.ckpt.meta")
        teacher_file(root, "phasenet", "model_95.ckpt.index")
        self.path = meta[:-len(".meta")]
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        graph_def = _frozen_graph(meta, self.path)
        self.graph = tf.Graph()
        for node in graph_def.node:
            # the checkpoint's dropout ops (idle at inference) have no seed, and TensorFlow refuses unseeded
            # random ops once op determinism is on (the export turns it on in the same process)
            if node.op.startswith("Random") and node.attr["seed"].i == 0 and node.attr["seed2"].i == 0:
                node.attr["seed"].i, node.attr["seed2"].i = 1, 1
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self.threads, inter_op_parallelism_threads=1)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)

    def _run(self, segs):
        y = self.session.run(_OUTPUT + ":0", {"X:0": normalise(segs), "is_training:0": False, "drop_rate:0": 0.0})
        return y[:, :, 0, 1:3].transpose(0, 2, 1)

    def close(self):
        self.session.close()
