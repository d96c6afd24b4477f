"""Structured pruning: channels physically removed, equal to zeroed channels, smaller export, reload, verb."""

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import ConfigError
from fieldpick.train.models import build
from fieldpick.train.models.blocks import count_parameters
from fieldpick.train.prune import (
    load_pruned,
    main,
    prune_model,
    rebuild_from_state,
    save_pruned,
    soft_prune,
)

torch.set_num_threads(1)

T = 512


def lppn(width=16, seed=0):
    """An LPPN with random BatchNorm statistics, so removed channels would matter if mishandled."""
    torch.manual_seed(seed)
    m = build("lppn", {"window_samples": T, "stride": 16, "width": width, "context_blocks": 2}).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                n = mod.num_features
                mod.running_mean.copy_(0.4 * torch.rand(n, generator=g) - 0.2)
                mod.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                mod.weight.copy_(0.5 + torch.rand(n, generator=g))
                mod.bias.copy_(0.6 * torch.rand(n, generator=g) - 0.3)
    return m


def windows(n=3, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 3, T)).astype(np.float32))


@pytest.mark.parametrize("ratio, width", [(0.25, 12), (0.5, 8), (0.75, 4)])
def test_uniform_ratio_gives_the_narrower_network(ratio, width):
    # every group loses the same share, so a pruned width-16 LPPN has a width-(16 * (1 - ratio)) shape
    pruned, removed = prune_model(lppn(), ratio)
    narrow = build("lppn", {"window_samples": T, "stride": 16, "width": width, "context_blocks": 2})
    assert count_parameters(pruned) == count_parameters(narrow)
    assert {k: tuple(v.shape) for k, v in pruned.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in narrow.state_dict().items()}
    assert removed["stem.1"] and len(removed["stem.1"]) == 16 - width
    assert pruned.head.out_channels == 4  # the head keeps its outputs


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_removing_equals_zeroing_the_channels(ratio):
    model = lppn()
    pruned, removed = prune_model(model, ratio)
    x = windows()
    with torch.no_grad():
        got, want, before = pruned(x), soft_prune(model, removed)(x), model(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert (got - before).abs().max() > 1e-3  # and the channels did carry signal


def test_ratio_zero_is_an_unchanged_copy_and_the_input_model_is_untouched():
    model = lppn()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    same, removed = prune_model(model, 0.0)
    assert removed == {} and same is not model
    pruned, _ = prune_model(model, 0.5)
    assert pruned is not model
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_bad_ratio(ratio):
    with pytest.raises(ConfigError, match="pruning ratio %r; it must lie in \\[0, 1\\)" % ratio):
        prune_model(lppn(), ratio)


def test_save_and_load_rebuild_the_pruned_shapes(tmp_path):
    pruned, removed = prune_model(lppn(), 0.5)
    pruned.thresholds = {"P": 0.3, "S": 0.4}
    path = save_pruned(str(tmp_path / "p.pt"), pruned, pruned.card(), 0.5, removed)
    back, card, _ = load_pruned(path)
    x = windows()
    with torch.no_grad():
        torch.testing.assert_close(back(x), pruned(x))
    assert card.parameters == count_parameters(pruned) == count_parameters(back)
    assert card.provenance["pruned"]["ratio"] == 0.5
    assert back.thresholds == {"P": 0.3, "S": 0.4}


def test_rebuild_keeps_depthwise_layers_depthwise():
    pruned, _ = prune_model(lppn(), 0.5)
    fresh = rebuild_from_state(build("lppn", {"window_samples": T, "stride": 16, "width": 16, "context_blocks": 2}),
                               pruned.state_dict())
    dw = fresh.down[0][0][0]
    assert (dw.in_channels, dw.out_channels, dw.groups) == (8, 8, 8)


def test_exported_model_is_smaller(tmp_path):
    from fieldpick.export.onnx import export_onnx

    model = lppn()
    pruned, _ = prune_model(model, 0.5)
    sizes = []
    for name, m in (("full", model), ("pruned", pruned)):
        path = str(tmp_path / (name + ".onnx"))
        export_onnx(m, path, 3, T)
        sizes.append((tmp_path / (name + ".onnx")).stat().st_size)
    # float32 weights dominate the file: at least 80 % of 4 bytes per removed parameter is gone
    removed = count_parameters(model) - count_parameters(pruned)
    assert removed > 0.6 * count_parameters(model)
    assert sizes[0] - sizes[1] > 0.8 * 4 * removed


@pytest.mark.parametrize("argv, message", [
    (["--crossval", "3"], "--crossval needs --source-folds DIR"),
    ([], "give --checkpoint CKPT"),
    (["--checkpoint", "x.pt", "--ratios", "0.5,1.2"], "pruning ratio 1.2; each must lie in \\[0, 1\\)"),
    (["--checkpoint", "x.pt", "--finetune-epochs", "-1"], "--finetune-epochs -1; it must be >= 0"),
])
def test_cli_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        main(argv)


@pytest.mark.slow
def test_pruned_model_fine_tunes_by_distillation_and_keeps_its_shape(tmp_path):
    from fieldpick.train.config import TrainConfig
    from fieldpick.train.data.datasets import WindowSet
    from fieldpick.train.data.windows import RealData
    from fieldpick.train.distill import DistillConfig
    from fieldpick.train.prune import finetune_pruned

    rng = np.random.default_rng(0)
    n, length = 8, 1400
    w = (0.01 * rng.standard_normal((n, 3, length))).astype(np.float32)
    p = rng.integers(400, 600, n).astype(float)
    for i in range(n):
        w[i, :, int(p[i]):] += 1.0
    st = np.array(["NC.S%d" % (i // 2) for i in range(n)])
    noise = WindowSet((0.01 * rng.standard_normal((n, 3, 600))).astype(np.float32), np.full(n, np.nan),
                      np.full(n, np.nan), st)
    data = RealData(WindowSet(w, p, p + 150, st), (p - 100).astype(np.int64), noise)
    held = np.isin(st, ["NC.S0"])
    cfg = TrainConfig.from_dict(dict(architecture="lppn", epochs=1, steps_per_epoch=2, batch_size=4, progress=False,
                                     out_dir=str(tmp_path), patience=0))
    pruned, _ = prune_model(lppn(), 0.5)
    shapes = {k: tuple(v.shape) for k, v in pruned.state_dict().items()}
    torch.manual_seed(0)
    teacher = build("phasenet", {"window_samples": T, "filters": [4, 6, 8]}).eval()
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    history = finetune_pruned(pruned, cfg, data.subset(~held), data.subset(held), str(tmp_path), 1, teacher,
                              DistillConfig(teacher_layer="up_same.0", feature_channels=3, unlabeled_per_batch=0,
                                            selection_windows=4))
    assert [h["stage"] for h in history] == ["distill"]
    assert {k: tuple(v.shape) for k, v in pruned.state_dict().items()} == shapes
    assert any(not torch.equal(v, before[k]) for k, v in pruned.state_dict().items())
