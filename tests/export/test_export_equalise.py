"""Activation equalisation: the rescaled LPPN computes the same function, with channels of one range per tensor."""

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import ConfigError
from fieldpick.export import equalise as eq
from fieldpick.export.adapters import export_view
from fieldpick.train.models import build

T = 512


def _windows(rng, n=24):
    return rng.standard_normal((n, 3, T)).astype(np.float32)


def _live(before, after):
    """{name: (before, after)} over the channels that carry signal (a dead ReLU channel stays 0)."""
    return {k: (b[b > 0], after[k][b > 0]) for k, b in before.items()}


def test_equalise_keeps_the_function_and_evens_the_channels(rng, uneven_lppn):
    model = uneven_lppn(window_samples=T)
    view, _ = export_view(model)
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    x = _windows(rng)
    before = eq.channel_ranges(view, x)
    out, note = eq.equalise(view, x, power=1.0)
    assert out is not view and note.startswith("channels equalised for per-tensor int8 (power 1;")
    assert "stream" in note and "context1.dw" in note
    after = eq.channel_ranges(out, x)
    live = _live(before, after)
    assert max(b.max() / b.min() for b, _ in live.values()) > 5  # the test model is uneven, so the test can fail
    for name, (b, a) in live.items():  # power 1: every live channel reaches its tensor's maximum
        np.testing.assert_allclose(a, b.max(), rtol=1e-4, err_msg=name)
    y = torch.from_numpy(_windows(np.random.default_rng(7), 8))  # windows it was not measured on
    with torch.no_grad():
        assert float((out(y) - model(y)).abs().max()) < 1e-5
    # the original model (whose modules the view shares) is untouched
    assert all(torch.equal(v, kept[k]) for k, v in model.state_dict().items())


def test_equalise_half_power_halves_the_spread_in_log(rng, uneven_lppn):
    view, _ = export_view(uneven_lppn(seed=2, window_samples=T))
    x = _windows(rng)
    before = eq.channel_ranges(view, x)
    out, _ = eq.equalise(view, x, power=0.5)
    after = eq.channel_ranges(out, x)
    for name, (b, a) in _live(before, after).items():
        np.testing.assert_allclose(np.log(a.max() / a), 0.5 * np.log(b.max() / b), atol=1e-3, err_msg=name)


def test_equalise_declines_what_it_cannot_rescale_exactly(rng, uneven_lppn):
    x = _windows(rng, 4)
    torch.manual_seed(0)
    phasenet = build("phasenet", {"window_samples": T, "filters": [4, 6]}).eval()
    assert eq.equalise(phasenet, x, 1.0) == (phasenet, "")


def test_equalise_raises_when_the_outputs_would_change(rng, monkeypatch, uneven_lppn):
    view, _ = export_view(uneven_lppn(window_samples=T))
    monkeypatch.setattr(eq, "TOLERANCE", -1.0)
    with pytest.raises(eq.EqualisationError, match="equalised LPPN differs from the original by .* \\(allowed -1\\)"):
        eq.equalise(view, _windows(rng, 4), 1.0)


@pytest.mark.parametrize("power", [0.0, 1.5, -1.0])
def test_equalise_power_is_checked(power, rng, uneven_lppn):
    view, _ = export_view(uneven_lppn(window_samples=T))
    with pytest.raises(ConfigError, match="equalisation power %r; allowed: a number in \\(0, 1\\]" % power):
        eq.equalise(view, _windows(rng, 4), power)
