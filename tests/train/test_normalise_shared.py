"""One input normalisation from training to the station: the card's, applied by the edge function.

Training windows, evaluation outputs, int8 calibration and export parity
windows all go through :func:`fieldpick.edge.stream.windows.normalise` with
the model card's ``input.normalisation`` (optionally asinh-compressed); the
torch twin used inside CPIC's scan equals it.
"""

import numpy as np
import pytest
import torch

from fieldpick.edge.card import Normalisation
from fieldpick.edge.errors import ConfigError
from fieldpick.edge.stream import windows as edge_windows
from fieldpick.export import calibrate
from fieldpick.train import fit
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.datasets import WindowSet
from fieldpick.train.models import build
from fieldpick.train.models.blocks import normalise as torch_normalise

torch.set_num_threads(1)

ASINH = Normalisation(compress="asinh", compress_scale=0.05)
LPPN = {"window_samples": 512, "stride": 16, "width": 8, "context_blocks": 2}


def _raw(seed=0, n=4, t=512):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, t)) * 0.01 + rng.standard_normal((n, 3, 1)) * 50
    x[:, :, t // 2:] += 3.0 * rng.standard_normal((n, 3, t - t // 2))  # quiet first half, loud second
    return x


def test_train_and_export_use_the_station_function():
    assert fit.normalise is edge_windows.normalise
    x = _raw()
    for norm in (Normalisation(), ASINH):
        np.testing.assert_array_equal(calibrate.normalise(x, norm), edge_windows.normalise(x, norm))


@pytest.mark.parametrize("norm", [Normalisation(), ASINH, Normalisation(compress="asinh", compress_scale=0.2)])
def test_torch_twin_equals_numpy(norm):
    x = _raw(1).astype(np.float32)  # the same float32 samples into both
    got = torch_normalise(torch.from_numpy(x), norm).numpy()
    np.testing.assert_allclose(got, edge_windows.normalise(x, norm), rtol=1e-6, atol=1e-6)


def test_torch_twin_refuses_what_it_does_not_implement():
    with pytest.raises(ConfigError, match="torch normalise supports detrend 'demean', scale 'std'"):
        torch_normalise(torch.zeros(1, 3, 10), Normalisation(scale="peak"))


def test_model_config_sets_the_card_normalisation():
    model = build("lppn", dict(LPPN, compress="asinh", compress_scale=0.05))
    assert model.card().input.normalisation == ASINH
    assert build("lppn", LPPN).card().input.normalisation == Normalisation()
    with pytest.raises(Exception, match="compress is 'log'; allowed: 'none', 'asinh'"):
        build("lppn", dict(LPPN, compress="log")).card()


def test_evaluation_outputs_see_the_card_normalisation():
    model = build("lppn", dict(LPPN, compress="asinh", compress_scale=0.05)).eval()
    x = _raw(2)
    task = fit.task_for(model, TrainConfig(architecture="lppn", model=model.config.__dict__))
    with torch.no_grad():
        want = model(torch.from_numpy(edge_windows.normalise(x, ASINH))).numpy()
        linear = model(torch.from_numpy(edge_windows.normalise(x, Normalisation()))).numpy()
    np.testing.assert_array_equal(task.outputs(x), want)
    assert not np.allclose(want, linear)  # the compression reaches the model


def test_training_windows_are_compressed_after_noise_is_mixed_in():
    """Same seed: the asinh sampler's windows are asinh of the linear sampler's, noise mixing included."""
    rng = np.random.default_rng(4)
    n, length = 6, 1400
    waves = rng.standard_normal((n, 3, length)).astype(np.float32) * 0.01
    waves[:, :, 700:] += rng.standard_normal((n, 3, length - 700)).astype(np.float32)
    p = np.full(n, 700.0)
    st = np.array(["S%d" % i for i in range(n)])
    events = WindowSet(waves, p, p + 100, st)
    noise = WindowSet(rng.standard_normal((n, 3, 600)).astype(np.float32), np.full(n, np.nan), np.full(n, np.nan), st)
    kw = dict(window_samples=512, noise_fraction=0.3, noise_add_fraction=0.5, vertical_only_fraction=0.3)
    x_lin, p_lin, _ = fit.RandomWindows(events, noise, **kw)(np.random.default_rng(7), 16)
    x_asinh, p_asinh, _ = fit.RandomWindows(events, noise, norm=ASINH, **kw)(np.random.default_rng(7), 16)
    np.testing.assert_array_equal(p_lin, p_asinh)
    np.testing.assert_allclose(x_asinh, np.arcsinh(x_lin.astype(np.float64) / 0.05), rtol=1e-5, atol=1e-5)
    # and the linear windows are what normalise gives: zero mean, unit std per live channel
    live = x_lin.std(-1) > 0
    np.testing.assert_allclose(x_lin.std(-1)[live], 1.0, atol=1e-3)


def test_distillation_refuses_a_student_that_reads_other_windows(tmp_path):
    from fieldpick.train.distill import DistillConfig, distill

    teacher = build("phasenet", {"window_samples": 512, "filters": [4, 6, 8]}).eval()
    cfg = TrainConfig(architecture="lppn", model=dict(LPPN, compress="asinh", compress_scale=0.05), progress=False)
    with pytest.raises(ConfigError, match="the teacher reads windows normalised as .* and the student as"):
        distill(cfg, DistillConfig(), teacher, None, None, str(tmp_path))
