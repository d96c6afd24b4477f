"""PyTorch -> ONNX: one static file, checked, run by onnxruntime, and the numeric gate."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from fieldpick.edge.errors import ModelFormatError
from fieldpick.export.onnx import check_onnx, export_onnx, run_onnx, run_torch
from fieldpick.export.parity import ParityError, align, argmax_agreement, gate_numeric, max_abs_diff


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 5, padding=2)

    def forward(self, x):
        return torch.softmax(self.conv(x), dim=1)


class _Branchy(nn.Module):
    """Data-dependent control flow: tracing freezes one branch, so ONNX differs from PyTorch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 1)

    def forward(self, x):
        if float(x[0, 0, 0]) > 0:
            return self.conv(x) + 1.0
        return self.conv(x)


@pytest.mark.parametrize("opset", [17, 18])
def test_export_onnx_matches_torch(tmp_path, rng, opset):
    torch.manual_seed(0)
    model = _Tiny().eval()
    path = str(tmp_path / "m.onnx")
    names = export_onnx(model, path, 3, 64, opset=opset)
    assert names == ["y0"]
    assert os.listdir(tmp_path) == ["m.onnx"]  # one file, no .data side file, no temp left
    x = rng.standard_normal((5, 3, 64)).astype(np.float32)
    ref = run_torch(model, x)
    got = run_onnx(path, x)
    assert got[0].shape == (5, 3, 64)
    assert max_abs_diff(ref, got) < 1e-5


def test_export_onnx_wrong_input_shape_is_named(tmp_path):
    path = str(tmp_path / "m.onnx")
    export_onnx(_Tiny().eval(), path, 3, 64)
    with pytest.raises(ModelFormatError, match=r"input has shape \(1, 3, 64\); expected \(1, 3, 100\)"):
        check_onnx(path, (1, 3, 100))


def test_export_onnx_unknown_opset(tmp_path):
    with pytest.raises(ModelFormatError, match="ONNX opset 12; allowed: 17, 18"):
        export_onnx(_Tiny().eval(), str(tmp_path / "m.onnx"), 3, 64, opset=12)


def test_export_onnx_traced_branch_misses_the_gate_with_its_number(tmp_path, rng):
    model = _Branchy().eval()
    path = str(tmp_path / "m.onnx")
    export_onnx(model, path, 3, 16)  # traced with zeros: the "+ 1" branch is not in the graph
    x = rng.standard_normal((8, 3, 16)).astype(np.float32)
    x[:, 0, 0] = 1.0  # PyTorch takes the other branch on every window
    diff = max_abs_diff(run_torch(model, x), run_onnx(path, x))
    assert diff == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ParityError, match=r"ONNX vs PyTorch: max \|diff\| 1\.000e\+00 on 8 windows is not below the gate 1e-04"):
        gate_numeric("ONNX vs PyTorch", diff, 8)


def test_export_parity_align_transposes_torch_layout():
    ref = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # (N, C, T)
    assert align(ref, ref.transpose(0, 2, 1), "x").shape == (2, 4, 3)
    with pytest.raises(ParityError, match=r"output shapes differ: reference \(2, 3, 4\), exported \(2, 5\)"):
        align(ref, np.zeros((2, 5)), "test")


def test_export_parity_nan_output_fails():
    with pytest.raises(ParityError, match="returns NaN or inf"):
        max_abs_diff([np.zeros((1, 2, 3))], [np.full((1, 2, 3), np.nan)], "int8")


def test_export_parity_argmax_agreement_hand_count():
    ref = np.zeros((1, 4, 3))
    ref[0, :, 1] = 1.0  # class 1 everywhere
    test = ref.copy()
    test[0, 0] = [1.0, 0.0, 0.0]  # one of four steps changes class
    assert argmax_agreement(ref, test, 3) == 0.75
