"""Travel times, the locator and the associator on small synthetic networks with known answers."""

import numpy as np
import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.network.associate import Associator, AssociatorConfig
from fieldpick.network.locate import Locator, Projection, azimuthal_gap
from fieldpick.network.synthetic import make_network, score_events
from fieldpick.network.velocity import DEFAULT_MODEL, LayeredModel, TravelTimes, first_arrivals


def test_half_space_times_are_straight_rays():
    m = LayeredModel("half-space", [0.0], [6.0], vp_vs=1.75)
    x = np.array([0.0, 3.0, 10.0, 47.3])
    np.testing.assert_allclose(first_arrivals(m, "P", 8.0, x), np.hypot(8.0, x) / 6.0, rtol=1e-5)
    np.testing.assert_allclose(first_arrivals(m, "S", 8.0, x), np.hypot(8.0, x) / (6.0 / 1.75), rtol=1e-5)


def test_head_wave_overtakes_the_direct_wave_beyond_the_crossover():
    m = LayeredModel("two layers", [0.0, 10.0], [5.0, 8.0])
    # surface source: direct x/5; head wave x/8 + 2*10*cos(ic)/5 with sin(ic) = 5/8
    head = lambda x: x / 8.0 + 2 * 10.0 * np.sqrt(1 - (5 / 8) ** 2) / 5.0  # noqa: E731
    x = np.array([10.0, 30.0, 100.0, 200.0])
    got = first_arrivals(m, "P", 0.0, x)
    np.testing.assert_allclose(got, np.minimum(x / 5.0, head(x)), rtol=1e-4)
    assert got[-1] == pytest.approx(head(200.0), rel=1e-4)


def test_tables_interpolate_the_exact_times():
    tt = TravelTimes(DEFAULT_MODEL, max_dist_km=120, max_depth_km=30, step_km=0.5)
    x = np.array([5.25, 33.3, 80.1])
    exact = first_arrivals(DEFAULT_MODEL, "P", 7.0, x)
    np.testing.assert_allclose(tt.time("P", 7.0, x), exact, atol=0.01)


def test_bad_velocity_models_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="start at 0"):
        LayeredModel("x", [1.0, 5.0], [5.0, 6.0])
    with pytest.raises(ConfigError, match="one value per layer"):
        LayeredModel("x", [0.0, 5.0], [5.0])
    bad = tmp_path / "m.json"
    bad.write_text('{"vp": [5]}')
    with pytest.raises(ConfigError, match="tops_km"):
        LayeredModel.load(str(bad))


def test_projection_round_trips():
    p = Projection(35.7, -117.5)
    x, y = p.to_xy(36.0, -117.0)
    lat, lon = p.to_latlon(x, y)
    assert (float(lat), float(lon)) == pytest.approx((36.0, -117.0))
    assert float(y) == pytest.approx(0.3 * 111.195, rel=1e-4)


def test_gap():
    assert azimuthal_gap([0, 90, 180, 270]) == 90
    assert azimuthal_gap([10, 20]) == 350


@pytest.fixture(scope="module")
def tt():
    return TravelTimes(max_dist_km=160, max_depth_km=30, step_km=0.5)


def test_locator_recovers_a_known_hypocentre_with_honest_errors(tt):
    rng = np.random.default_rng(5)
    sx, sy = rng.uniform(-40, 40, 12), rng.uniform(-40, 40, 12)
    loc = Locator(tt, sx, sy, max_depth_km=30)
    sta = np.r_[np.arange(12), np.arange(12)]
    is_s = np.r_[np.zeros(12, bool), np.ones(12, bool)]
    sig = np.where(is_s, 0.1, 0.03)
    errs = []
    for _ in range(6):
        truth = (rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(3, 18), 5.0)
        t = loc.predict(*truth[:3], sta, is_s)[0] + truth[3] + rng.normal(0, 1, 24) * sig
        s = loc.locate(sta, is_s, t, sig)
        errs.append(np.array([s.x, s.y, s.z, s.t0]) - truth)
        assert all(np.isfinite(s.errors))
        assert s.rms < 0.15 and s.gap < 180
    errs = np.array(errs)
    assert np.abs(errs[:, :2]).max() < 0.5  # km
    assert np.abs(errs[:, 2]).max() < 2.0
    assert np.abs(errs[:, 3]).max() < 0.2  # s


def test_associator_finds_every_event_and_no_false_one(tt):
    net = make_network(n_stations=12, n_events=12, size_km=70, span_s=600, missed=0.1, false=0.1, seed=3, tt=tt)
    assert (net.truth < 0).sum() > 20  # false picks are really there
    events = Associator(Locator(tt, net.sx, net.sy, max_depth_km=30)).run(net.sta, net.is_s, net.t, net.sigma)
    found, false, err, _ = score_events(net, events)
    assert len(found) == 12 and false == 0
    assert np.median(err) < 1.0
    used = np.concatenate([e.picks for e in events])
    assert len(used) == len(set(used.tolist()))  # a pick belongs to one event at most
    assert (net.truth[used] < 0).mean() < 0.05


def test_associator_needs_enough_stations(tt):
    net = make_network(n_stations=12, n_events=3, size_km=70, span_s=200, missed=0.0, false=0.0, seed=4, tt=tt)
    keep = net.sta < 3  # three stations: below min_stations=4
    assoc = Associator(Locator(tt, net.sx, net.sy, max_depth_km=30), AssociatorConfig(min_picks=4, min_p=2))
    assert assoc.run(net.sta[keep], net.is_s[keep], net.t[keep], net.sigma[keep]) == []
