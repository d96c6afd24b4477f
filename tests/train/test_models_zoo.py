"""The picker zoo: shapes, output ranges, cards, export-friendly layers, checkpoints, FLOPs."""

import numpy as np
import pytest
import torch
from torch import nn

from fieldpick.edge.card import ModelCard
from fieldpick.edge.errors import ConfigError, ModelError
from fieldpick.export.flops import module_flops as count_flops
from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint
from fieldpick.train.crossval import flops_per_record
from fieldpick.train.models import REGISTRY, build
from fieldpick.train.models.blocks import count_parameters

torch.set_num_threads(1)

# small configs: quick, same code paths as the defaults
SMALL = {
    "phasenet": {"window_samples": 512, "filters": [4, 6, 8]},
    "lppn": {"window_samples": 512, "stride": 16, "width": 8, "context_blocks": 2},
    "leqnet": {"window_samples": 512, "width": 6, "levels": 2, "bottlenecks": 1},
    "leqnet_lstm": {"window_samples": 512, "width": 6, "levels": 2, "bottlenecks": 1, "recurrent": "lstm"},
    "cpic": {"window_samples": 64, "onset_sample": 32, "blocks": 2, "width": 4},
}
KIND = {"phasenet": "probabilities", "lppn": "stride_class_offset", "leqnet": "detection_probabilities",
        "cpic": "window_class"}


def make(name, seed=0):
    torch.manual_seed(seed)
    return build(name.split("_")[0], SMALL[name]).eval()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_shapes_ranges_and_card(name):
    model = make(name)
    arch = model.architecture
    t = model.config.window_samples
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, t)).astype(np.float32))
    y = model(x).detach().numpy()
    card = model.card()
    assert isinstance(card, ModelCard) and card.architecture == arch and card.output.kind == KIND[arch]
    assert card.input.window_samples == t and card.input.channels == ["Z", "N", "E"]
    assert card.parameters == count_parameters(model)
    ModelCard.from_dict(card.to_dict())  # the template is a valid card
    assert np.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()
    if arch in ("phasenet", "leqnet"):
        assert y.shape == (2, 3, t)
    if arch == "phasenet":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    if arch == "lppn":
        assert y.shape == (2, 4, t // 16) and card.output.stride_samples == 16
        np.testing.assert_allclose(y[:, :3].sum(axis=1), 1.0, atol=1e-5)
    if arch == "cpic":
        assert y.shape == (2, 3)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["phasenet", "lppn", "leqnet", "cpic"])
def test_export_friendly_layers(name):
    model = make(name)
    kinds = {type(m) for m in model.modules()}
    assert nn.Upsample not in kinds and nn.LSTM not in kinds and nn.GRU not in kinds
    # every convolution is followed by BatchNorm (foldable) except the output head
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
    assert all(c.bias is None for c in convs if c not in list(model.head.modules()))


def test_lstm_variant_is_the_only_one_with_an_lstm():
    assert any(isinstance(m, nn.LSTM) for m in make("leqnet_lstm").modules())


def test_default_sizes():
    assert 250_000 <= count_parameters(build("phasenet")) <= 290_000  # PhaseNet's ~270k
    assert count_parameters(build("lppn")) < 20_000
    assert count_parameters(build("leqnet")) < 30_000


@pytest.mark.parametrize("stem_stride", [1, 2])
@pytest.mark.parametrize("stride", [8, 16, 32])
def test_lppn_strides(stride, stem_stride):
    model = build("lppn", {"stride": stride, "width": 4, "context_blocks": 1, "window_samples": 1024,
                           "stem_stride": stem_stride}).eval()
    assert model(torch.zeros(1, 3, 1024)).shape == (1, 4, 1024 // stride)
    # the strided stem replaces the first separable stage: the output rate stays 1 / stride
    assert len(model.down) == (stride // stem_stride).bit_length() - 1
    assert model.stem[0].stride == (stem_stride,)


def test_lppn_strided_stem_spends_fewer_flops_at_the_same_width():
    from fieldpick.train.crossval import flops_per_record

    full, strided = (flops_per_record(build("lppn", {"width": 8, "stem_stride": s})) for s in (1, 2))
    assert 2.6e6 < full < 2.8e6 and strided < 0.6 * full  # the full-rate stem is ~40 % of a w8's FLOPs
    assert flops_per_record(build("lppn", {"width": 12, "stem_stride": 2})) < 3e6  # the student budget


@pytest.mark.parametrize("arch, cfg, message", [
    ("lppn", {"stride": 12}, "lppn stride 12; allowed: 8, 16, 32"),
    ("lppn", {"window_samples": 3000, "stride": 16}, "not a multiple of stride 16; use e.g. 3008"),
    ("lppn", {"stem_stride": 4}, "lppn stem_stride 4; allowed: 1, 2"),
    ("leqnet", {"recurrent": "gru"}, "leqnet recurrent 'gru'; allowed: conv, lstm"),
    ("phasenet", {"kernel": 6}, "phasenet kernel 6; it must be odd"),
    ("cpic", {"window_samples": 100, "blocks": 4}, "not a multiple of 2\\*\\*blocks = 16"),
    ("cpic", {"onset_sample": 400}, "cpic onset_sample 400; allowed: 0 .. 399"),
])
def test_config_errors(arch, cfg, message):
    with pytest.raises(ConfigError, match=message):
        build(arch, cfg)


def test_unknown_architecture_and_key():
    with pytest.raises(ConfigError, match="architecture 'unet'; allowed: phasenet, lppn, leqnet, cpic"):
        build("unet")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) depth"):
        build("lppn", {"depth": 3})


@pytest.mark.parametrize("name", sorted(SMALL))
def test_checkpoint_round_trip(tmp_path, name):
    model = make(name, seed=3)
    model.train()
    t = model.config.window_samples
    x = torch.randn(4, 3, t)
    model(x)  # move BatchNorm running statistics away from their defaults
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model, extra={"epoch": 7})
    back, card, extra = load_checkpoint(path)
    assert extra == {"epoch": 7} and card.architecture == model.architecture
    assert back.config == model.config
    with torch.no_grad():
        np.testing.assert_array_equal(back(x).numpy(), model(x).numpy())


def test_loaded_checkpoint_picks_with_the_cards_thresholds(tmp_path):
    model = make("lppn", seed=3)
    card = model.card()
    card.thresholds = {"P": 0.37, "S": 0.61}  # as tuned on validation stations
    path = save_checkpoint(tmp_path / "m.pt", model, card=card)
    back, card_back, _ = load_checkpoint(path)
    assert card_back.thresholds == {"P": 0.37, "S": 0.61}
    assert back.thresholds == {"P": 0.37, "S": 0.61}


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "fieldpick-checkpoint", "version": 9}, tmp_path / "new.pt")
    with pytest.raises(ModelError, match="checkpoint version 9; this fieldpick reads version 1"):
        load_checkpoint(tmp_path / "new.pt")


def test_cpic_scan_positions():
    model = make("cpic")
    x = torch.randn(2, 3, 200)
    hop = model.config.scan_hop
    out = model.scan(x)
    steps = (200 - 64) // hop + 1
    assert out.shape == (2, 3, steps)
    # step j classifies the window starting at j * hop, normalised on its own
    j = 3
    win = x[:, :, j * hop:j * hop + 64]
    win = (win - win.mean(-1, keepdim=True)) / (win.std(-1, keepdim=True, unbiased=False) + 1e-10)
    with torch.no_grad():
        np.testing.assert_allclose(out[:, :, j].numpy(), model(win).numpy(), atol=1e-5)


def test_count_flops_by_hand():
    conv = nn.Sequential(nn.Conv1d(3, 4, 5, padding=2), nn.Conv1d(4, 4, 3, padding=1, groups=4))
    # 2 * (T * Cout * Cin * K) + 2 * (T * 4 * 1 * 3)
    assert count_flops(conv, torch.zeros(1, 3, 100)) == 2 * 100 * 4 * 3 * 5 + 2 * 100 * 4 * 3
    lin = nn.Linear(10, 3)
    assert count_flops(lin, torch.zeros(1, 10)) == 60
    up = nn.ConvTranspose1d(2, 3, 4, stride=2, padding=1)
    assert count_flops(up, torch.zeros(1, 2, 10)) == 2 * 2 * 10 * 3 * 4


def test_flops_per_record_cpic_counts_every_scan_position():
    model = make("cpic")
    one = count_flops(model, torch.zeros(1, 3, 64))
    assert flops_per_record(model, 3000) == one * ((3000 - 64) // model.config.scan_hop + 1)


def test_registry_lists_four():
    assert sorted(REGISTRY) == ["cpic", "leqnet", "lppn", "phasenet"]


@pytest.mark.parametrize("name", ["phasenet", "lppn", "leqnet", "cpic"])
def test_onnx_graph_is_edge_friendly_and_matches(tmp_path, name):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = make(name)
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((1, 3, model.config.window_samples)).astype(np.float32))
    path = str(tmp_path / "m.onnx")
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert not ops & {"Resize", "Upsample", "Gather", "LSTM", "GRU"}, ops
    sess = ort.InferenceSession(path)
    y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(y, model(x).numpy(), atol=1e-5)


def test_lppn_activation_names_the_allowed_one():
    with pytest.raises(ConfigError, match="activation 'gelu'; allowed: relu"):
        build("lppn", {"window_samples": 256, "activation": "gelu"})
