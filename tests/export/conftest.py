"""Fixtures shared by the export tests."""

import pytest
import torch
from torch import nn

from fieldpick.train.models import build


def _uneven_lppn(seed=1, spread=1.7, shift=0.3, window_samples=512, **config):
    """A small LPPN whose BatchNorms give channels ranges about exp(2 * spread) apart, as trained models have.

    Gains are exp(U(-spread, spread)), offsets U(0, 0.5), running means N(0, shift) (left at 0 when shift
    is 0); seeded, in eval mode.
    """
    torch.manual_seed(seed)
    model = build("lppn", dict({"window_samples": window_samples, "width": 4, "context_blocks": 2,
                                "stem_stride": 2}, **config))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.copy_(torch.exp(torch.empty(m.num_features).uniform_(-spread, spread, generator=g)))
                m.bias.copy_(torch.empty(m.num_features).uniform_(0.0, 0.5, generator=g))
                if shift:
                    m.running_mean.normal_(0.0, shift, generator=g)
    return model.eval()


@pytest.fixture
def uneven_lppn():
    """The factory :func:`_uneven_lppn` (seed, spread, window_samples, LPPN config overrides)."""
    return _uneven_lppn
