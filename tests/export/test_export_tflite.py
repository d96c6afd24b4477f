"""onnx2tf driving and TFLite inspection: loud, specific failures (no real conversion here).

The real conversion runs once per session in test_export_pipeline.py.
"""

import sys

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import ModelFormatError, NotAvailableError, UnsupportedOperatorError
from fieldpick.export.onnx import export_onnx
from fieldpick.export.tflite import (
    ConversionError,
    TensorInfo,
    TfliteInfo,
    convert,
    require_full_integer,
)


@pytest.fixture
def onnx_file(tmp_path):
    path = str(tmp_path / "m.onnx")
    export_onnx(torch.nn.Conv1d(3, 3, 1).eval(), path, 3, 16)
    return path


def test_export_tflite_missing_converter_names_the_install(tmp_path, onnx_file):
    with pytest.raises(NotAvailableError, match=r"cannot run /nonexistent/onnx2tf .*pip install 'fieldpick\[export\]'"):
        convert(onnx_file, str(tmp_path), command=["/nonexistent/onnx2tf"])


def test_export_tflite_converter_failure_shows_its_last_lines(tmp_path, onnx_file):
    script = "import sys; print('step one'); print('\\x1b[31mERROR:\\x1b[0m Dimension 1 must be equal'); sys.exit(3)"
    with pytest.raises(ConversionError, match=r"status 3 .*ERROR: Dimension 1 must be equal \(full log .*onnx2tf.log\)"):
        convert(onnx_file, str(tmp_path), command=[sys.executable, "-c", script])


def test_export_tflite_converter_timeout(tmp_path, onnx_file):
    script = "import time; print('converting', flush=True); time.sleep(30)"
    with pytest.raises(ConversionError, match=r"did not finish within 1 s .*last lines:\nconverting"):
        convert(onnx_file, str(tmp_path), timeout_s=1, command=[sys.executable, "-c", script])


def test_export_tflite_converter_copy_keeps_the_original(tmp_path, onnx_file):
    """onnx2tf rewrites its input: the converter must only ever see a copy."""
    before = open(onnx_file, "rb").read()
    script = "import sys; p = sys.argv[sys.argv.index('-i') + 1]; open(p, 'wb').write(b'rewritten')"
    with pytest.raises(ConversionError, match="wrote no float32 file model_float32.tflite"):
        convert(onnx_file, str(tmp_path), command=[sys.executable, "-c", script])
    assert open(onnx_file, "rb").read() == before


def test_export_tflite_bad_calibration_is_refused(tmp_path, onnx_file):
    calib = np.zeros((4, 16, 3), dtype=np.float32)
    calib[0, 0, 0] = np.nan
    with pytest.raises(ModelFormatError, match=r"calibration windows have shape \(4, 16, 3\) \(finite: False\)"):
        convert(onnx_file, str(tmp_path), calibration_ntc=calib, command=[sys.executable, "-c", "pass"])


def _info(in_dtype="int8", out_dtype="int8", float_ops=()):
    return TfliteInfo(
        "m_int8.tflite", ["RESHAPE", "CONV_2D", "SOFTMAX"] + list(float_ops),
        [TensorInfo("x", [1, 16, 3], in_dtype, 0.1, -2)], [TensorInfo("y", [1, 16, 3], out_dtype, 1 / 256.0, -128)],
        list(float_ops),
    )


def test_export_tflite_full_integer_passes():
    info = _info()
    assert info.full_integer
    assert require_full_integer(info) is info
    assert info.histogram == {"CONV_2D": 1, "RESHAPE": 1, "SOFTMAX": 1}
    assert info.red_flags == {}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"float_ops": ["UNIDIRECTIONAL_SEQUENCE_LSTM"]}, r"operator\(s\) computing in float: UNIDIRECTIONAL_SEQUENCE_LSTM"),
        ({"float_ops": ["FlexErf"]}, "computing in float: FlexErf"),
        ({"out_dtype": "float32"}, "tensor 'y' is float32, not int8"),
    ],
)
def test_export_tflite_not_full_integer_names_the_cause(kwargs, message):
    info = _info(**kwargs)
    assert not info.full_integer
    with pytest.raises(UnsupportedOperatorError, match="m_int8.tflite is not full int8: .*" + message):
        require_full_integer(info)


def test_export_tflite_red_flags_counted():
    info = TfliteInfo("m.tflite", ["TRANSPOSE", "CONV_2D", "GATHER", "TRANSPOSE"], [], [])
    assert info.red_flags == {"GATHER": 1, "TRANSPOSE": 2}
