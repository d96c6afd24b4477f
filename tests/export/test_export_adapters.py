"""Export views of zoo models compute exactly what the models compute, without the shapes onnx2tf mistakes."""

import numpy as np
import onnx
import pytest
import torch

from fieldpick.export.adapters import export_view
from fieldpick.export.onnx import export_onnx
from fieldpick.train.models import build


@pytest.mark.parametrize(
    "arch, config",
    [
        ("lppn", {"window_samples": 512, "width": 4, "context_blocks": 1}),
        ("lppn", {"window_samples": 512, "stride": 8, "width": 4}),
        ("lppn", {"window_samples": 512, "width": 4, "stem_stride": 2}),
        ("phasenet", {"window_samples": 1000, "filters": [4, 8, 8]}),   # 1000 -> 250 -> 63: crops of 3 and 1
        ("phasenet", {"window_samples": 3000, "filters": [4, 4, 4, 4, 4]}),  # the default's length chain
        ("phasenet", {"window_samples": 1024, "filters": [4, 8], "kernel": 5, "stride": 2}),
        ("cpic", {"window_samples": 400, "width": 4}),
    ],
)
def test_export_view_is_exact(arch, config, tmp_path, rng):
    torch.manual_seed(1)
    model = build(arch, config).eval()
    view, note = export_view(model)
    assert view is not model and note.startswith(arch + ":")
    x = torch.from_numpy(rng.standard_normal((2, 3, config["window_samples"])).astype(np.float32))
    with torch.no_grad():
        diff = float((model(x) - view(x)).abs().max())
    assert diff < 1e-5
    path = str(tmp_path / "v.onnx")
    export_onnx(view, path, 3, config["window_samples"])
    ops = {n.op_type for n in onnx.load(path).graph.node}
    # the shapes onnx2tf mis-lays or pads with transposes
    assert not ops & {"Slice", "Unsqueeze", "Gemm", "MatMul", "Transpose"}


def test_export_view_leaves_other_models_alone():
    torch.manual_seed(0)
    model = build("leqnet", {})
    assert export_view(model) == (model, "")
