"""FLOPs counted from the ONNX graph, checked against hand counts."""

import pytest
import torch
from torch import nn

from fieldpick.edge.errors import UnsupportedOperatorError
from fieldpick.export.flops import count_flops
from fieldpick.export.onnx import export_onnx


def _export(tmp_path, module, channels, samples):
    torch.manual_seed(0)
    path = str(tmp_path / "m.onnx")
    export_onnx(module.eval(), path, channels, samples)
    return count_flops(path)


@pytest.mark.parametrize(
    "module, channels, samples, expected",
    [
        # 400 out samples * 8 out channels * (3 in * 7 taps) MACs * 2; bias adds are not counted
        (nn.Conv1d(3, 8, 7, padding=3), 3, 400, 2 * 400 * 8 * 3 * 7),
        # no padding: 394 output samples; no bias
        (nn.Conv1d(3, 8, 7, bias=False), 3, 400, 2 * 394 * 8 * 3 * 7),
        # stride 2: 200 output samples
        (nn.Conv1d(3, 4, 5, stride=2, padding=2), 3, 400, 2 * 200 * 4 * 3 * 5),
        # depthwise: each output sees 1 input channel * 7 taps
        (nn.Conv1d(6, 6, 7, padding=3, groups=6), 6, 100, 2 * 100 * 6 * 1 * 7),
        # transposed conv: every input sample scatters to Cout * kernel outputs
        (nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1), 4, 50, 2 * 50 * 4 * 2 * 4),
    ],
)
def test_export_flops_convolutions_match_hand_count(tmp_path, module, channels, samples, expected):
    total, by_op = _export(tmp_path, module, channels, samples)
    assert total == expected
    assert set(by_op) == {"Conv" if isinstance(module, nn.Conv1d) else "ConvTranspose"}


class _ConvReluSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 1)

    def forward(self, x):
        return torch.softmax(torch.relu(self.conv(x)), dim=1)


def test_export_flops_activations_cost_nothing(tmp_path):
    total, by_op = _export(tmp_path, _ConvReluSoftmax(), 3, 10)
    # conv: 10 * 3 * 3 MACs * 2; relu and softmax have no multiply-accumulates
    assert by_op == {"Conv": 2 * 10 * 3 * 3, "Relu": 0, "Softmax": 0}
    assert total == 180


class _Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_export_flops_linear_is_two_per_mac(tmp_path):
    total, by_op = _export(tmp_path, _Dense(), 3, 4)
    assert total == 2 * 12 * 5
    assert by_op["Flatten"] == 0


def test_export_flops_unknown_op_is_an_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4])
    node = helper.make_node("Hardmax", ["x"], ["y"], name="hm")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    with pytest.raises(UnsupportedOperatorError, match="cannot count FLOPs of ONNX op 'Hardmax'.*counted ops: Conv"):
        count_flops(model)


class _LSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True, bidirectional=True)

    def forward(self, x):  # (B, 3, T) -> (B, 10, T)
        return self.lstm(x.transpose(1, 2))[0].transpose(1, 2)


def test_export_flops_lstm_counts_both_directions(tmp_path):
    total, by_op = _export(tmp_path, _LSTM(), 3, 20)
    # 20 steps * 2 directions * 4 gates * 5 units * (3 inputs + 5 recurrent) MACs, * 2
    assert by_op["LSTM"] == 2 * 20 * 2 * 20 * (3 + 5)
    assert by_op.get("Transpose", 0) == 0 and total >= by_op["LSTM"]
