"""Distillation: per-stride soft targets, the closed-form adapter, channel selection, the task and the verb."""

import json

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig
from fieldpick.train.data.datasets import WindowSet
from fieldpick.train.data.windows import RandomWindows, RealData
from fieldpick.train.distill import (
    DistillConfig,
    DistillTask,
    UnlabeledMix,
    distill,
    main,
    ridge_residual,
    select_channels,
    stride_targets,
)
from fieldpick.train.models import build
from fieldpick.train.tasks import StrideTask

torch.set_num_threads(1)

T = 512  # samples per model window


def step_data(n=10, length=1400, seed=0):
    """Weak noise with a unit step at P and a sine burst at S."""
    rng = np.random.default_rng(seed)
    w = (0.01 * rng.standard_normal((n, 3, length))).astype(np.float32)
    p = rng.integers(400, 600, n).astype(float)
    s = p + rng.integers(60, 200, n)
    for i in range(n):
        w[i, :, int(p[i]):] += 1.0
        w[i, :, int(s[i]):] += 3.0 * np.sin(0.3 * np.arange(length - int(s[i])))
    stations = np.array(["NC.S%02d" % (i // 2) for i in range(n)])
    noise = WindowSet((0.01 * rng.standard_normal((n, 3, 480))).astype(np.float32), np.full(n, np.nan),
                      np.full(n, np.nan), stations)
    return RealData(WindowSet(w, p, s, stations), (p - 100).astype(np.int64), noise)


def small(tmp_path, **kw):
    base = dict(architecture="lppn", model={"window_samples": T, "stride": 16, "width": 4, "context_blocks": 1},
                epochs=1, steps_per_epoch=2, batch_size=4, progress=False, out_dir=str(tmp_path / "s"),
                val_fraction=0.3, patience=0)
    base.update(kw)
    return TrainConfig.from_dict(base)


def teacher():
    torch.manual_seed(0)
    return build("phasenet", {"window_samples": T, "filters": [4, 6, 8]}).eval()


# ---------------------------------------------------------------- soft targets
def test_stride_targets_by_hand():
    # T = 8, stride 4: all P probability at sample 5 -> stride 1 holds it, a quarter on average, offset 1/4
    probs = torch.zeros(1, 3, 8)
    probs[0, 0] = 1.0
    probs[0, 0, 5], probs[0, 1, 5] = 0.0, 1.0
    cls, off, weight = stride_targets(probs, 4)
    assert torch.allclose(cls[0, :, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(cls[0, :, 1], torch.tensor([0.75, 0.25, 0.0]))
    assert torch.allclose(cls.sum(1), torch.ones(1, 2))
    assert off[0].tolist() == [0.0, 0.25]
    assert weight[0].tolist() == [0.0, 0.25]


def test_stride_targets_centroid_between_samples():
    # S probability 0.5 at samples 1 and 3 of a stride of 4: centroid (1 + 3) / 2 / 4 = 0.5
    probs = torch.zeros(1, 3, 4)
    probs[0, 0] = 1.0
    probs[0, :, 1] = torch.tensor([0.5, 0.0, 0.5])
    probs[0, :, 3] = torch.tensor([0.5, 0.0, 0.5])
    _, off, weight = stride_targets(probs, 4)
    assert off.item() == pytest.approx(0.5)
    assert weight.item() == pytest.approx(0.25)


def test_stride_targets_reject_ragged_length():
    with pytest.raises(ConfigError, match="10 samples, not a multiple of the student stride 4"):
        stride_targets(torch.zeros(1, 3, 10), 4)


# ---------------------------------------------------------------- adapter
def test_ridge_residual_zero_for_linear_targets_and_variance_for_noise():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(4, 6, 50, generator=g)
    w = torch.randn(3, 6, generator=g)
    f = torch.einsum("kc,bcl->bkl", w, h) + 0.5
    assert ridge_residual(h, f, ridge=1e-8).item() < 1e-6
    unrelated = torch.randn(4, 3, 50, generator=g)
    r = ridge_residual(h, unrelated).item()
    assert 0.8 < r < 1.1  # unit-variance targets unexplained by 7 regressors over 200 positions


def test_ridge_residual_has_gradient_into_student_features():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(2, 4, 30, generator=g, requires_grad=True)
    f = torch.randn(2, 2, 30, generator=g)
    ridge_residual(h, f).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


# ---------------------------------------------------------------- channel selection
def test_select_channels_never_picks_a_silenced_channel():
    t = teacher()
    layer = t.up_same[0][1]  # BatchNorm of the layer whose output is ranked (6 channels)
    with torch.no_grad():
        layer.weight[[0, 3]] = 0.0
        layer.bias[[0, 3]] = -1.0  # ReLU(-1) = 0: the channels output nothing
    x = np.random.default_rng(0).standard_normal((8, 3, T)).astype(np.float32)
    index, importance, mean, std = select_channels(t, "up_same.0", x, 4)
    assert importance.shape == (6,)
    assert importance[0] == 0 and importance[3] == 0
    assert sorted(index.tolist()) == sorted(set(range(6)) - {0, 3})
    assert importance[index[0]] == importance.max()
    assert mean.shape == std.shape == (4,)


@pytest.mark.parametrize("layer, k, message", [
    ("up_same.9", 2, "teacher has no module 'up_same.9'"),
    ("up_same.0", 7, "feature_channels 7; teacher layer 'up_same.0' has only 6 channels"),
])
def test_select_channels_errors(layer, k, message):
    x = np.zeros((2, 3, T), dtype=np.float32)
    with pytest.raises(ConfigError, match=message):
        select_channels(teacher(), layer, x, k)


@pytest.mark.parametrize("field, value, message", [
    ("temperature", 0.0, "temperature is 0.0; it must be > 0"),
    ("soft_weight", 1.5, "soft_weight is 1.5; it must lie in \\[0, 1\\]"),
    ("feature_channels", 0, "feature_channels is 0; it must be >= 1"),
    ("unlabeled_windows", 0, "unlabeled_per_batch is 4 but unlabeled_windows is 0"),
])
def test_distill_config_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**{field: value}).validate()


# ---------------------------------------------------------------- data and task
def test_unlabeled_mix_keeps_the_labeled_draw(tmp_path):
    data = step_data()
    source = RandomWindows(data.events, data.noise, T)
    pool = RandomWindows(step_data(seed=5).events, None, T)
    alone, mixed = np.random.default_rng(3), np.random.default_rng(3)
    mix = UnlabeledMix(source, pool, 2)
    for _ in range(3):  # batch after batch, the labeled windows are those the source alone would give
        x0, p0, s0 = source(alone, 4)
        x, p, s, labeled = mix(mixed, 4)
        np.testing.assert_array_equal(x[:4], x0)
        np.testing.assert_array_equal(p[:4], p0)
    assert x.shape == (6, 3, T)
    assert labeled.tolist() == [True] * 4 + [False] * 2
    assert np.isnan(p[4:]).all() and np.isnan(s[4:]).all()


def test_distill_task_without_teacher_terms_is_the_student_loss(tmp_path):
    cfg = small(tmp_path)
    torch.manual_seed(0)
    student = build("lppn", cfg.model)
    data = step_data()
    source = UnlabeledMix(RandomWindows(data.events, data.noise, T))
    task = DistillTask(student, cfg, teacher(), DistillConfig(soft_weight=0.0, feature_weight=0.0,
                                                              unlabeled_per_batch=0))
    x, target = task.batch(source, np.random.default_rng(0), 4)
    plain = StrideTask(student, cfg)
    expected = plain.loss(x, target[:2])
    assert task.loss(x, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # the teacher terms add to it
    full = DistillTask(student, cfg, teacher(), DistillConfig(soft_weight=0.5, feature_weight=0.0,
                                                              unlabeled_per_batch=0))
    assert full.loss(x, target).item() != pytest.approx(expected.item(), rel=1e-3)


def test_teacher_offsets_reach_the_offset_head(tmp_path):
    unlabeled, taught = 0, True
    cfg = small(tmp_path)
    torch.manual_seed(0)
    student = build("lppn", cfg.model)
    data = step_data()
    pool = RandomWindows(step_data(seed=5).events, None, T) if unlabeled else None
    source = UnlabeledMix(RandomWindows(data.events, data.noise, T), pool, unlabeled)
    # soft targets only (the labeled loss weighs 0): the offset head learns from the teacher's offsets or not at all
    task = DistillTask(student, cfg, teacher(), DistillConfig(soft_weight=1.0, feature_weight=0.0,
                                                              unlabeled_per_batch=unlabeled))
    x, target = task.batch(source, np.random.default_rng(0), 4)
    student.zero_grad()
    task.loss(x, target).backward()
    offset_grad = float(student.head.weight.grad[3].abs().sum())
    assert (offset_grad > 0) == taught
    assert float(student.head.weight.grad[:3].abs().sum()) > 0  # the class soft targets teach either way


def test_distill_task_rejects_wrong_models(tmp_path):
    cfg = small(tmp_path, architecture="phasenet", model={"window_samples": T, "filters": [4, 6, 8]})
    with pytest.raises(ConfigError, match="student must be per-stride \\(lppn\\); got 'phasenet'"):
        DistillTask(teacher(), cfg, teacher(), DistillConfig())


@pytest.mark.slow
def test_distill_end_to_end_writes_a_plain_checkpoint(tmp_path):
    from fieldpick.train.checkpoint import load_checkpoint

    cfg = small(tmp_path)
    data = step_data()
    held = np.isin(data.station, ["NC.S00", "NC.S01"])
    dcfg = DistillConfig(feature_channels=3, teacher_layer="up_same.0", unlabeled_per_batch=0, selection_windows=4)
    model, history, info = distill(cfg, dcfg, teacher(), data.subset(~held), data.subset(held), cfg.out_dir)
    assert [h["stage"] for h in history] == ["distill"]
    assert len(info["channels"]) == 3 and len(info["importance"]) == 6
    saved, card, _ = load_checkpoint(str(tmp_path / "s" / "best.pt"))  # no adapter weights in the file
    assert set(saved.state_dict()) == set(build("lppn", cfg.model).state_dict())
    assert card.thresholds == model.thresholds  # the tuned ones, which the scores were made with


@pytest.mark.parametrize("argv, message", [
    (["--crossval", "3"], "--crossval needs --teacher-folds DIR"),
    ([], "give --teacher CKPT"),
    (["--teacher", "x.pt", "--temperature", "-1"], "temperature is -1.0; it must be > 0"),
])
def test_cli_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        main(argv)


def test_crossval_fold_seed_meets_the_teachers_folds(tmp_path, monkeypatch):
    """A second student seed scored against teachers trained on fold seed 0 must keep seed 0's folds."""
    import fieldpick.train.distill as distill_mod
    from fieldpick.train.checkpoint import save_checkpoint
    from fieldpick.train.crossval import station_folds
    from fieldpick.train.distill import cross_validate_distill

    data = step_data()
    assert not np.array_equal(station_folds(data.station, 2, 0), station_folds(data.station, 2, 1))
    for f in range(2):
        (tmp_path / "t" / ("fold%d" % f)).mkdir(parents=True)
        save_checkpoint(str(tmp_path / "t" / ("fold%d" % f) / "best.pt"), teacher())
    seen = []
    real = distill_mod.distill

    def spy(cfg, dcfg, t, tr, val, out_dir):
        seen.append(sorted(set(tr.station)))
        return real(cfg, dcfg, t, tr, val, out_dir)

    monkeypatch.setattr(distill_mod, "distill", spy)
    dcfg = DistillConfig(feature_channels=3, teacher_layer="up_same.0", unlabeled_per_batch=0, selection_windows=4)
    runs = {}
    for seed, fold_seed in [(0, None), (1, 0), (1, None)]:
        seen.clear()
        out = cross_validate_distill(small(tmp_path / str(seed), seed=seed), dcfg, data, str(tmp_path / "t"), k=2,
                                     scratch=False, fold_seed=fold_seed)
        assert out["seed"] == seed and out["fold_seed"] == (seed if fold_seed is None else fold_seed)
        runs[seed, fold_seed] = list(seen)
    assert runs[1, 0] == runs[0, None]
    assert runs[1, None] != runs[0, None]


@pytest.mark.slow
def test_distill_final_publishes_the_student_with_its_scores(tmp_path, ncedc_dir, capsys):
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    tch = build("phasenet", {"window_samples": 3072, "filters": [4, 6, 8]}).eval()
    for f in range(2):
        (tmp_path / "t" / ("fold%d" % f)).mkdir(parents=True)
        save_checkpoint(str(tmp_path / "t" / ("fold%d" % f) / "best.pt"), tch)
    save_checkpoint(str(tmp_path / "t" / "best.pt"), tch)
    save_checkpoint(str(tmp_path / "t" / "final.pt"), tch)
    prefix = str(tmp_path / "pub" / "student")
    rc = main(["--architecture", "lppn", "--model", "width=4", "--model", "context_blocks=1", "--epochs", "2",
               "--steps-per-epoch", "2", "--batch-size", "4", "--out-dir", str(tmp_path / "s"), "--data-dir",
               ncedc_dir, "--progress", "false", "--feature-channels", "3", "--teacher-layer", "up_same.0",
               "--unlabeled-per-batch", "0", "--selection-windows", "4", "--crossval", "2", "--no-scratch",
               "--teacher-folds", str(tmp_path / "t"), "--teacher", str(tmp_path / "t" / "best.pt"), "--final",
               "--final-teacher", str(tmp_path / "t" / "final.pt"), "--publish", prefix])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["published"] == prefix and out["final"] == str(tmp_path / "s" / "final")
    cv = json.loads((tmp_path / "s" / "distill_cv.json").read_text())
    epochs = [s["best_epoch"] for s in cv["distilled"]["folds"]]
    assert all(1 <= e <= 2 for e in epochs)
    model, card, _ = load_checkpoint(prefix + ".pt")
    assert [m.split.split(",")[0] for m in card.metrics] == [
        "2-fold cross-validation split by station", "validation stations (29 windows)"]
    assert card.metrics[0].values["P_f1"] == pytest.approx(cv["distilled"]["pooled"]["P_f1"])
    assert card.provenance["final_epochs"] == int(np.ceil(np.median(epochs)))
    assert card.provenance["final_teacher"].endswith("final.pt") and card.provenance["teacher"].endswith("best.pt")
    assert model.thresholds == card.thresholds
    folds = [f["thresholds"] for f in cv["distilled"]["folds"]]  # the final model takes their median
    assert card.thresholds == {ph: float(np.median([t[ph] for t in folds])) for ph in ("P", "S")}
    assert card.provenance["final_thresholds_rule"].startswith("median of the 2 fold models' tuned thresholds")
    assert json.loads(open(prefix + ".json").read())["name"] == "model"


@pytest.mark.parametrize("argv, message", [
    (["--teacher", "x.pt", "--final"], "--final needs --final-teacher CKPT"),
    (["--crossval", "2", "--teacher-folds", "t", "--publish", "p"], "--final and --publish distil a student: give"),
])
def test_cli_final_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        main(argv)
