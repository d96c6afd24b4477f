"""Grad-CAM++ over time: the maps by hand, a network whose answer is known, the zoo, the verb."""

import dataclasses
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fieldpick.edge.errors import ConfigError, DataError  # noqa: E402
from fieldpick.train import explain as ex  # noqa: E402
from fieldpick.train.checkpoint import save_checkpoint  # noqa: E402
from fieldpick.train.models import build  # noqa: E402
from fieldpick.train.models.blocks import card_template  # noqa: E402

torch.set_num_threads(1)


# ---------------------------------------------------------------- class_map by hand
A = np.array([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]])  # (B=1, K=2, L=4)


@pytest.mark.parametrize("method, g0, expected", [
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3) = 1 / (2 + 1 * g); w0 = 4 * alpha * g
    ("gradcam++", 1.0, [4.0 / 3.0, 0, 0, 0]),     # alpha = 1/3, w0 = 4/3
    ("gradcam++", 2.0, [2.0, 0, 0, 0]),           # alpha = 1/4, w0 = 2
    # Grad-CAM: w = mean gradient = (g0, -1): relu(g0 * A0 - A1)
    ("gradcam", 1.0, [1.0, 0, 0, 0]),
    ("gradcam", 2.0, [2.0, 0, 0, 0]),
    # LayerCAM: relu(g) * A summed over channels, per cell
    ("layercam", 1.0, [1.0, 0, 0, 0]),
    ("layercam", 2.0, [2.0, 0, 0, 0]),
])
def test_class_map_by_hand(method, g0, expected):
    g = np.stack([np.full(4, g0), np.full(4, -1.0)])[None]  # channel 1 has only negative gradients
    np.testing.assert_allclose(ex.class_map(A, g, method)[0], expected, rtol=1e-12)


def test_class_map_negative_evidence_is_cut():
    """Grad-CAM's weighted sum goes negative where the negative channel dominates; the ReLU keeps 0 there."""
    g = np.stack([np.full(4, 0.5), np.full(4, -1.0)])[None]
    np.testing.assert_allclose(ex.class_map(A, g, "gradcam")[0], [0.5, 0, 0, 0])


def test_class_map_unknown_method():
    with pytest.raises(ConfigError, match=r"method 'cam'; allowed: gradcam\+\+, gradcam, layercam"):
        ex.class_map(A, A, "cam")


@pytest.mark.parametrize("saliency, onset, expected", [
    (np.ones(1000), 500, 201 / 1000),                    # flat: 2 s + 1 sample of 10 s at 100 Hz
    (np.eye(1, 1000, 300)[0], 300, 1.0),                 # all of it at the onset
    (np.eye(1, 1000, 300)[0], 401, 0.0),                 # 1.01 s away
    (np.eye(1, 1000, 300)[0], 400, 1.0),                 # exactly 1 s away counts
])
def test_saliency_mass_by_hand(saliency, onset, expected):
    assert ex.saliency_mass(saliency, onset, 100.0) == pytest.approx(expected)


def test_saliency_mass_of_an_empty_map_is_nan():
    assert np.isnan(ex.saliency_mass(np.zeros(100), 50, 100.0))


# ---------------------------------------------------------------- a network whose answer is known
class EnergyPicker(torch.nn.Module):
    """P logit = smoothed energy of Z (one channel), S logit = the same of N: a picker one can check by hand."""

    architecture = "energy"

    @dataclasses.dataclass
    class Config:
        window_samples: int = 1000

    def __init__(self):
        super().__init__()
        self.config = self.Config()
        self.square = torch.nn.Conv1d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.square.weight.zero_()
            self.square.weight[0, 0, 0] = 1.0   # channel 0 <- Z
            self.square.weight[1, 1, 0] = 1.0   # channel 1 <- N
        self.smooth = torch.nn.Conv1d(2, 2, 21, padding=10, bias=False, groups=2)
        with torch.no_grad():
            self.smooth.weight.fill_(1.0 / 21)

    def features(self, x):
        return self.smooth(self.square(x) ** 2)

    def logits(self, x):
        e = self.features(x)
        return torch.cat([torch.zeros_like(e[:, :1]), e], dim=1)  # N, P, S

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)

    def card(self):
        return card_template(self, "probabilities", ["N", "P", "S"], 1000, 100.0)


def _spikes(rng, n=1000, z_at=300, n_at=700):
    x = rng.normal(0, 0.01, (3, n)).astype(np.float32)
    x[0, z_at] += 5.0
    x[1, n_at] += 5.0
    return x


@pytest.mark.parametrize("method", ex.METHODS)
@pytest.mark.parametrize("phase, at", [("P", 300), ("S", 700)])
def test_saliency_sits_on_the_spike_the_phase_sees(rng, method, phase, at):
    model = EnergyPicker().eval()
    e = ex.explain(model, model.card(), _spikes(rng), phase, sample=at, layer="smooth", method=method)
    assert e.saliency.shape == (1000,)
    assert e.saliency.max() == pytest.approx(1.0)
    assert abs(int(np.argmax(e.saliency)) - at) <= 10      # the 21-sample smoothing is flat at its top
    assert ex.saliency_mass(e.saliency, at, 100.0) > 0.9   # nearly all of it within 1 s
    assert e.window == (0, 1000) and e.layer == "smooth"


def test_default_target_is_the_models_own_pick(rng):
    model = EnergyPicker().eval()
    card = model.card()
    card.thresholds = {"P": 0.3, "S": 0.3}
    e = ex.explain(model, card, _spikes(rng, z_at=420, n_at=800), "P")
    assert e.sample == pytest.approx(420, abs=10.5)  # anywhere on the 21-sample flat top of the energy


def test_smoothgrad_is_seeded_and_still_on_the_spike(rng):
    model = EnergyPicker().eval()
    x = _spikes(rng)
    a = ex.explain(model, model.card(), x, "P", sample=300, layer="smooth", smooth=6, seed=3)
    b = ex.explain(model, model.card(), x, "P", sample=300, layer="smooth", smooth=6, seed=3)
    np.testing.assert_array_equal(a.saliency, b.saliency)
    assert abs(int(np.argmax(a.saliency)) - 300) <= 10
    assert a.smooth == 6


# ---------------------------------------------------------------- the zoo
ZOO = {
    "phasenet": {"window_samples": 1024, "filters": [4, 6, 8]},
    "lppn": {"window_samples": 1024, "width": 4},
    "leqnet": {"window_samples": 1024},
    "cpic": {},
}


@pytest.mark.parametrize("arch", sorted(ZOO))
def test_every_zoo_model_explains(rng, arch):
    try:
        model = build(arch, ZOO[arch]).eval()
    except ConfigError:
        model = build(arch, {}).eval()
    card = model.card()
    n = max(card.input.window_samples, 1500)
    x = rng.normal(0, 1, (3, n)).astype(np.float32)
    e = ex.explain(model, card, x, "S", sample=700)
    assert e.saliency.shape == (n,)
    assert 0.0 <= e.saliency.min() and e.saliency.max() <= 1.0
    first, last = e.window
    assert last - first <= card.input.window_samples
    assert not e.saliency[:first].any() and not e.saliency[last:].any()
    assert e.layer == ex.default_layer(model)


def test_randomised_changes_every_weight_but_not_the_architecture():
    model = build("lppn", {"window_samples": 1024, "width": 4}).eval()
    other = ex.randomised(model, seed=1)
    a, b = model.state_dict(), other.state_dict()
    assert a.keys() == b.keys()
    changed = [k for k in a if a[k].dtype.is_floating_point and a[k].numel() > 1 and "weight" in k and not torch.equal(a[k], b[k])]
    weights = [k for k in a if a[k].dtype.is_floating_point and a[k].numel() > 1 and "weight" in k and "bn" not in k]
    assert set(weights) - set(changed) <= {k for k in weights if torch.all(a[k] == 1)}  # BN gammas start at 1
    assert not other.training


@pytest.mark.parametrize("kwargs, error, match", [
    ({"phase": "D"}, ConfigError, r"phase 'D'; allowed: P, S"),
    ({"layer": "nope"}, ConfigError, r"layer 'nope'; allowed: stem"),
    ({"layer": "head"}, None, None),
    ({"sample": 5000}, DataError, r"target sample 5000 lies outside the record \(0 \.\. 1023\)"),
    ({"smooth": -1}, ConfigError, r"smooth -1 \(copies >= 0\)"),
    ({"target": "energy"}, ConfigError, r"target 'energy'; allowed: logit, probability"),
])
def test_bad_requests_say_what_is_allowed(rng, kwargs, error, match):
    model = build("lppn", {"window_samples": 1024, "width": 4}).eval()
    args = dict(phase="P", sample=500)
    args.update(kwargs)
    x = rng.normal(0, 1, (3, 1024)).astype(np.float32)
    if error is None:
        ex.explain(model, model.card(), x, **args)  # the 1x1 head is a Conv1d: allowed
        return
    with pytest.raises(error, match=match):
        ex.explain(model, model.card(), x, **args)


def test_record_shape_is_checked():
    model = build("lppn", {"window_samples": 1024, "width": 4}).eval()
    with pytest.raises(DataError, match=r"record has shape \(2, 1024\); expected \(3, N\)"):
        ex.explain(model, model.card(), np.zeros((2, 1024), np.float32), "P", sample=3)


# ---------------------------------------------------------------- the verb
@pytest.fixture
def tiny_checkpoint(tmp_path):
    model = build("lppn", {"window_samples": 1024, "width": 4})
    return str(save_checkpoint(tmp_path / "tiny.pt", model))


@pytest.mark.parametrize("extra", [[], ["--phase", "P", "--smooth", "4", "--method", "gradcam"]])
def test_explain_verb_writes_a_png(tmp_path, tiny_checkpoint, capsys, extra):
    out = tmp_path / "ex.png"
    assert ex.main(["--synthetic", "5", "--model", tiny_checkpoint, "--out", str(out), "--at", "8.0"] + extra) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(out) < 200_000
    text = capsys.readouterr().out
    assert "wrote %s" % out in text
    assert "P target at 8.00 s" in text


def test_explain_verb_refuses_more_targets_than_phases(tmp_path, tiny_checkpoint):
    with pytest.raises(ConfigError, match=r"--at given 2 times for 1 phase\(s\) \(S\)"):
        ex.main(["--synthetic", "5", "--model", tiny_checkpoint, "--out", str(tmp_path / "x.png"),
                 "--phase", "S", "--at", "3", "--at", "4"])


@pytest.mark.parametrize("c, gradcam_pp, gradcam", [
    (1.0, 3000.0 / 3002.0, 1.0),     # w = L c / (2 + L c) with alpha = 1 / (2 + sum(A) c), sum(A) = L
    (10.0, 30000.0 / 30002.0, 10.0),
    (0.001, 3.0 / 5.0, 0.001),       # only a tiny gradient lets the "2" matter
])
def test_gradcam_pp_weight_forgets_the_gradient_size_on_long_maps(c, gradcam_pp, gradcam):
    """Why explain draws Grad-CAM by default: over 3000 cells Grad-CAM++'s weight is ~1 whatever the gradient."""
    A = np.ones((1, 1, 3000))
    g = np.full((1, 1, 3000), c)
    np.testing.assert_allclose(ex.class_map(A, g, "gradcam++")[0], gradcam_pp, rtol=1e-12)
    np.testing.assert_allclose(ex.class_map(A, g, "gradcam")[0], gradcam, rtol=1e-12)
