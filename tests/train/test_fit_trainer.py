"""The trainer: recipes, station folds, random windows, every task, resume, fine-tuning, the CLI."""

import json

import numpy as np
import pytest
import torch

from fieldpick.edge.errors import ConfigError
from fieldpick.train.config import TrainConfig, load_config
from fieldpick.train.crossval import station_folds
from fieldpick.train.data.datasets import WindowSet
from fieldpick.train.data.windows import (
    RandomWindows,
    RealData,
    eval_windows,
    pad_noise,
    real_source,
    station_split,
)
from fieldpick.train.finetune import finetune, freeze_to_head
from fieldpick.train.fit import main
from fieldpick.train.loop import fit, train
from fieldpick.train.models import build
from fieldpick.train.score import score, trace_peaks
from fieldpick.train.tasks import task_for
from fieldpick.train.validate import evaluate

torch.set_num_threads(1)

T = 512  # model window, samples


def impulse_data(n=12, length=1400, seed=0):
    """Traces of weak noise with a unit step at P and a larger one at S (hand-checkable crops)."""
    rng = np.random.default_rng(seed)
    w = (0.01 * rng.standard_normal((n, 3, length))).astype(np.float32)
    p = rng.integers(400, 600, n).astype(float)
    s = p + rng.integers(60, 200, n)
    for i in range(n):
        w[i, :, int(p[i]):] += 1.0
        w[i, :, int(s[i]):] += 3.0 * np.sin(0.3 * np.arange(length - int(s[i])))
    stations = np.array(["NC.S%02d" % (i // 2) for i in range(n)])
    events = WindowSet(w, p, s, stations)
    noise = WindowSet((0.01 * rng.standard_normal((n, 3, 480))).astype(np.float32), np.full(n, np.nan),
                      np.full(n, np.nan), stations)
    return RealData(events, (p - 100).astype(np.int64), noise)


def small_cfg(arch, tmp_path, **kw):
    model = {
        "phasenet": {"window_samples": T, "filters": [4, 6, 8]},
        "lppn": {"window_samples": T, "stride": 16, "width": 8, "context_blocks": 2},
        "leqnet": {"window_samples": T, "width": 6, "levels": 2, "bottlenecks": 1},
        "cpic": {"window_samples": 64, "onset_sample": 32, "blocks": 2, "width": 4, "scan_hop": 8},
    }[arch]
    base = dict(architecture=arch, model=model, epochs=2, steps_per_epoch=3, batch_size=8, progress=False,
                out_dir=str(tmp_path / arch), record_samples=T, val_fraction=0.3, patience=0)
    base.update(kw)
    return TrainConfig.from_dict(base)


# ---------------------------------------------------------------- recipes
def test_toml_and_json_recipes(tmp_path):
    (tmp_path / "r.toml").write_text('architecture = "lppn"\nepochs = 3\nlr = 0.01\n[model]\nstride = 8\n')
    cfg = load_config(str(tmp_path / "r.toml"))
    assert (cfg.architecture, cfg.epochs, cfg.lr, cfg.model) == ("lppn", 3, 0.01, {"stride": 8})
    (tmp_path / "r.json").write_text(json.dumps({"architecture": "cpic", "p_range": [0.2, 0.5]}))
    assert load_config(str(tmp_path / "r.json")).p_range == (0.2, 0.5)


@pytest.mark.parametrize("data, message", [
    ({"epoch": 3}, "unknown key\\(s\\) epoch; allowed: name, architecture"),
    ({"epochs": "many"}, "epochs is 'many'; expected int"),
    ({"schedule": "step"}, "schedule 'step'; allowed: cosine, onecycle, constant"),
    ({"noise_fraction": 1.5}, "noise_fraction is 1.5; it must lie in \\[0, 1\\]"),
    ({"pretrain_windows": 10}, "pretrain_windows is 10 but pretrain_epochs is 0"),
])
def test_recipe_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(data)


def test_command_line_overrides_the_file(tmp_path):
    import argparse

    from fieldpick.train.config import add_arguments, config_from_args

    (tmp_path / "r.toml").write_text('architecture = "lppn"\nepochs = 3\n[model]\nstride = 8\nwidth = 4\n')
    p = add_arguments(argparse.ArgumentParser(allow_abbrev=False))
    args = p.parse_args(["--config", str(tmp_path / "r.toml"), "--epochs", "5", "--model", "width=6",
                         "--resume", "true"])
    cfg = config_from_args(args)
    assert cfg.epochs == 5 and cfg.model == {"stride": 8, "width": 6} and cfg.resume is True
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        config_from_args(p.parse_args(["--model", "width"]))


# ---------------------------------------------------------------- splits and windows
def test_station_folds_never_split_a_station():
    stations = np.array(["A"] * 5 + ["B"] * 3 + ["C"] * 3 + ["D"] * 2 + ["E"] * 1 + ["F"] * 1)
    fold = station_folds(stations, 3, seed=1)
    for s in np.unique(stations):
        assert len(set(fold[stations == s])) == 1
    assert sorted(np.bincount(fold)) == [5, 5, 5]  # balanced greedily: A | B+D | C+E+F
    np.testing.assert_array_equal(fold, station_folds(stations, 3, seed=1))
    with pytest.raises(ConfigError, match="k is 7; allowed: 2 .. 6"):
        station_folds(stations, 7)


def test_station_split_holds_whole_stations():
    stations = np.repeat(["A", "B", "C", "D", "E"], 3)
    held = station_split(stations, 0.4, seed=0)
    assert held.sum() == 6 and all(len(set(held[stations == s])) == 1 for s in "ABCDE")


def test_random_windows_move_the_labels_with_the_crop():
    data = impulse_data()
    src = RandomWindows(data.events, None, T, p_range=(0.25, 0.5), vertical_only_fraction=0.0)
    x, p, s = src(np.random.default_rng(0), 32)
    assert x.shape == (32, 3, T) and x.dtype == np.float32
    assert ((p >= 0.25 * T - 1) & (p <= 0.5 * T + 1)).all()
    # the step at P is where the normalised Z trace jumps
    jump = np.argmax(np.diff(x[:, 0], axis=-1), axis=-1) + 1
    ok = s >= T  # windows where S (a bigger jump) is out of view
    np.testing.assert_array_equal(jump[ok], p[ok].astype(int))
    np.testing.assert_allclose(x.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(-1), 1, atol=1e-3)


def test_random_windows_noise_and_vertical_only():
    data = impulse_data()
    src = RandomWindows(data.events, data.noise, T, noise_fraction=1.0, vertical_only_fraction=1.0)
    x, p, s = src(np.random.default_rng(0), 8)
    assert np.isnan(p).all() and np.isnan(s).all()
    assert not x[:, 1:].any() and x[:, 0].any()


def test_eval_windows_and_padded_noise():
    data = impulse_data()
    ev = eval_windows(data, T)
    np.testing.assert_array_equal(ev.p_idx, 100.0)
    np.testing.assert_array_equal(ev.waveforms[3], data.events.waveforms[3, :, data.crop_offset[3]:][:, :T])
    w, valid = pad_noise(data.noise, T)
    assert w.shape == (12, 3, T) and valid == 480
    np.testing.assert_array_equal(w[:, :, 480], data.noise.waveforms[:, :, 478])  # reflected


# ---------------------------------------------------------------- scoring
def test_trace_peaks_by_hand():
    prob = np.array([0, 0.6, 0.9, 0.7, 0.1, 0.2, 0.55, 0.1])
    assert trace_peaks(prob, 0.5) == [(2.0, 0.9), (6.0, 0.55)]
    assert trace_peaks(prob, 0.5, positions=np.arange(8) * 10.0 + 5) == [(25.0, 0.9), (65.0, 0.55)]
    assert trace_peaks(prob, 0.95) == []


def test_score_by_hand():
    picks = [[("P", 100.0, 0.9), ("S", 300.0, 0.8)],     # both right
             [("P", 180.0, 0.9), ("P", 260.0, 0.6)],     # P 40 samples late (matched), one false P, S missed
             [("S", 900.0, 0.7)]]                        # P missed, S 0.6 s off: false and missed
    s = score(picks, [100, 140, 100], [300, 400, 840], fs=100.0, noise_picks=[[("P", 5.0, 0.9)], []],
              noise_seconds=36.0)
    assert s["P_matched"] == 2 and s["P_picks"] == 3 and s["P_labels"] == 3
    assert s["P_precision"] == pytest.approx(2 / 3) and s["P_recall"] == pytest.approx(2 / 3)
    assert s["P_mae_s"] == pytest.approx(0.2) and s["P_mean_s"] == pytest.approx(0.2)
    assert s["S_precision"] == pytest.approx(1 / 2) and s["S_recall"] == pytest.approx(1 / 3)
    assert s["S_f1"] == pytest.approx(0.4)
    assert s["false_picks_per_hour"] == pytest.approx(100.0)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("arch", ["phasenet", "lppn", "leqnet", "cpic"])
def test_every_task_trains_and_evaluates(tmp_path, arch):
    data = impulse_data()
    cfg = small_cfg(arch, tmp_path)
    model = build(arch, cfg.model)
    task = task_for(model, cfg)
    sampler = task.sampler(real_source(cfg, data, T))
    x, target = task.batch(sampler, np.random.default_rng(0), 4)
    loss = task.loss(x, target)
    assert torch.isfinite(loss) and loss.item() > 0
    before = [p.detach().clone() for p in model.parameters()]
    model, history = train(cfg, data.subset(np.arange(8)), data.subset(np.arange(8, 12)))
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    s = evaluate(model, data, cfg)
    assert 0 <= s["f1"] <= 1 and "false_picks_per_hour" in s
    assert (tmp_path / arch / "best.pt").exists() and (tmp_path / arch / "best.json").exists()
    assert set(model.thresholds) == {"P", "S"}


@pytest.mark.parametrize("arch", ["phasenet", "lppn", "leqnet", "cpic"])
def test_logit_bound_penalises_only_the_excess(tmp_path, arch):
    cfg = small_cfg(arch, tmp_path, logit_bound=4.0, logit_penalty=0.5)
    task = task_for(build(arch, cfg.model), cfg)
    inside = torch.tensor([[-3.9, 0.0, 4.0]], requires_grad=True)
    assert task.bound(inside).item() == 0.0
    outside = torch.tensor([[-6.0, 0.0, 5.0, 3.0]], requires_grad=True)
    penalty = task.bound(outside)
    assert penalty.item() == pytest.approx(0.5 * (2.0 ** 2 + 1.0 ** 2) / 4)
    penalty.backward()
    # the gradient pulls each logit beyond the bound back towards it, and leaves the others alone
    assert outside.grad[0].tolist() == pytest.approx([-0.5 * 2 * 2.0 / 4, 0.0, 0.5 * 2 * 1.0 / 4, 0.0])
    off = task_for(build(arch, cfg.model), small_cfg(arch, tmp_path))
    assert off.bound(outside).item() == 0.0


def test_offset_neighbours_point_at_the_nearest_edge(tmp_path):
    cfg = small_cfg("lppn", tmp_path, offset_neighbours=1.0)
    task = task_for(build("lppn", cfg.model), cfg)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 3] = True   # cells 2 (before) and 4 (after) are its neighbours
    mask[1, 0] = True   # the first cell: only an 'after' neighbour
    mask[1, 1] = True   # two arrival cells side by side: neither is a neighbour of the other
    edge = 0.5 / 16
    logit = torch.zeros(2, 8, requires_grad=True)
    loss = task.neighbours(logit, mask)
    # three neighbour cells (0:2, 0:4, 1:2), each at sigmoid 0.5: |0.5 - (1 - edge)|, |0.5 - edge| twice
    assert loss.item() == pytest.approx(2.0 * (3 * (0.5 - edge)) / 3)
    loss.backward()
    g = logit.grad
    assert g[0, 2] < 0 and g[0, 4] > 0 and g[1, 2] > 0  # 'before' rises towards 1, 'after' falls to 0
    untouched = torch.ones(2, 8, dtype=torch.bool)
    untouched[0, 2] = untouched[0, 4] = untouched[1, 2] = False
    assert torch.all(g[untouched] == 0)
    # at the targets the loss is zero; with the option off it is always zero
    at = torch.zeros(2, 8)
    at[0, 2] = torch.logit(torch.tensor(1.0 - edge))
    at[0, 4] = at[1, 2] = torch.logit(torch.tensor(edge))
    assert task.neighbours(at, mask).item() == pytest.approx(0.0, abs=1e-6)
    plain = task_for(build("lppn", cfg.model), small_cfg("lppn", tmp_path))
    assert plain.neighbours(logit, mask).item() == 0.0


def test_stability_compares_a_pass_with_int8_sized_noise(tmp_path):
    cfg = small_cfg("lppn", tmp_path, stability=2.0)
    model = build("lppn", cfg.model)
    task = task_for(model, cfg)
    torch.manual_seed(0)
    x = torch.randn(3, 3, T)
    mask = torch.zeros(3, T // 16, dtype=torch.bool)
    mask[0, 4] = True
    logits, offset = model.raw(x)
    d = task.consistency(x, logits, offset, mask)
    # int8-sized noise moves the outputs a little, never a lot, and both passes get gradients
    assert 0.0 < d.item() < 0.05
    d.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # the hooks are gone: a plain pass is exact again
    assert not model._forward_pre_hooks and not any(m._forward_hooks for m in model.modules())
    with torch.no_grad():
        again, _ = model.raw(x)
    torch.testing.assert_close(again, logits.detach())
    # the weight scales it into the loss; 0 leaves the loss as it was
    cls, off = torch.zeros(3, T // 16, dtype=torch.long), torch.zeros(3, T // 16)
    torch.manual_seed(1)
    with_it = task.loss(x, (cls, off)).item()
    plain = task_for(model, small_cfg("lppn", tmp_path)).loss(x, (cls, off)).item()
    assert with_it > plain


@pytest.mark.parametrize("key", ["logit_bound", "logit_penalty", "offset_neighbours", "stability"])
def test_int8_headroom_options_refuse_negative_values(key):
    with pytest.raises(ConfigError, match=key):
        TrainConfig.from_dict({key: -1.0})


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_gives_the_same_weights(tmp_path, monkeypatch, ema_decay):
    import fieldpick.train.loop as fitmod

    data = impulse_data()
    tr, va = data.subset(np.arange(8)), data.subset(np.arange(8, 12))
    straight = small_cfg("lppn", tmp_path, out_dir=str(tmp_path / "a"), tune_thresholds=False, ema_decay=ema_decay)
    model_a, _ = train(straight, tr, va, select="last")

    calls = {"n": 0}
    real = fitmod.tune_thresholds

    def crash_in_epoch_two(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("power cut")
        return real(*args, **kw)

    cut = small_cfg("lppn", tmp_path, out_dir=str(tmp_path / "b"), tune_thresholds=False, ema_decay=ema_decay)
    monkeypatch.setattr(fitmod, "tune_thresholds", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(cut, tr, va, select="last")
    monkeypatch.setattr(fitmod, "tune_thresholds", real)
    resumed = small_cfg("lppn", tmp_path, out_dir=str(tmp_path / "b"), tune_thresholds=False, resume=True,
                        ema_decay=ema_decay)
    model_b, history = train(resumed, tr, va, select="last")
    assert [h["epoch"] for h in history] == [1, 2]
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name


def test_finetune_head_only_leaves_the_backbone(tmp_path):
    data = impulse_data()
    cfg = small_cfg("cpic", tmp_path)
    model = build("cpic", cfg.model)
    assert freeze_to_head(model) == sum(p.numel() for p in model.head.parameters())
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    model, _ = finetune(model, cfg, data.subset(np.arange(8)), data.subset(np.arange(8, 12)),
                        str(tmp_path / "ft"), head_only=True)
    after = model.state_dict()
    for k, v in backbone.items():  # weights and BatchNorm running statistics
        assert torch.equal(after[k], v), k
    assert any(not torch.equal(after[k], v) for k, v in head.items())
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again afterwards


@pytest.mark.parametrize("select", ["last", "best"])
def test_ema_weights_are_what_is_validated_and_kept(tmp_path, select):
    from fieldpick.train.checkpoint import load_checkpoint

    data = impulse_data()
    tr, va = data.subset(np.arange(8)), data.subset(np.arange(8, 12))
    kept = {}
    for decay in (0.0, 0.999999):  # an average that barely moves stays at the initial weights
        cfg = small_cfg("lppn", tmp_path, out_dir=str(tmp_path / str(decay)), ema_decay=decay)
        torch.manual_seed(5)
        model = build("lppn", cfg.model)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        fit(model, cfg, real_source(cfg, tr, T), va, cfg.out_dir, select=select)
        kept[decay] = model.state_dict()
        moved = max(float((kept[decay][k].float() - start[k].float()).abs().max()) for k in start
                    if start[k].dtype.is_floating_point)
        assert (moved < 1e-3) if decay else (moved > 1e-2), (decay, moved)
        saved, _, _ = load_checkpoint(str(tmp_path / str(decay) / "best.pt"))
        if select == "best":  # the checkpoint holds what was validated: the average
            for k, v in saved.state_dict().items():
                assert torch.equal(v, kept[decay][k]), k
    with pytest.raises(ConfigError, match="ema_decay is 1.0; it must lie in \\[0, 1\\)"):
        small_cfg("lppn", tmp_path, ema_decay=1.0)


def test_final_thresholds_are_the_folds_median_or_the_validation_runs():
    from fieldpick.train.publish import final_thresholds

    folds = [{"P": 0.85, "S": 0.5}, {"P": 0.7, "S": 0.6}, {"P": 0.6, "S": 0.55}, {"P": 0.55, "S": 0.6},
             {"P": 0.9, "S": 0.6}]
    thr, rule = final_thresholds(folds, {"P": 0.85, "S": 0.6})
    assert thr == {"P": 0.7, "S": 0.6} and rule.startswith("median of the 5 fold models' tuned thresholds")
    assert final_thresholds([], {"P": 0.85, "S": 0.6}) == ({"P": 0.85, "S": 0.6}, "tuned on the validation stations")


def test_fit_refuses_a_fully_frozen_model(tmp_path):
    data = impulse_data()
    cfg = small_cfg("lppn", tmp_path)
    model = build("lppn", cfg.model)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        fit(model, cfg, real_source(cfg, data, T), data, str(tmp_path / "x"))


# ---------------------------------------------------------------- the verb, on the real windows
def test_train_verb_on_ncedc(tmp_path, ncedc_dir, capsys):
    from fieldpick.train.checkpoint import load_checkpoint

    rc = main(["--architecture", "lppn", "--model", "width=4", "--model", "context_blocks=1", "--epochs", "1",
               "--steps-per-epoch", "2", "--batch-size", "4", "--out-dir", str(tmp_path), "--data-dir", ncedc_dir,
               "--progress", "false"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["validation"]["P_f1"] <= 1
    model, card, _ = load_checkpoint(tmp_path / "best.pt")
    assert card.output.kind == "stride_class_offset" and card.metrics[0].data == "ncedc"


def test_best_epoch_is_the_first_best_of_the_real_stage():
    from fieldpick.train.loop import best_epoch

    h = [{"stage": "pretrain", "epoch": 1, "f1": 0.9}, {"stage": "train", "epoch": 1, "f1": 0.2},
         {"stage": "train", "epoch": 2, "f1": 0.5}, {"stage": "train", "epoch": 3, "f1": 0.5}]
    assert best_epoch(h) == 2
    assert best_epoch(h[:1]) == 0


def test_final_retrain_runs_the_median_of_the_folds_best_epochs(tmp_path, ncedc_dir, capsys):
    from fieldpick.train.checkpoint import load_checkpoint

    rc = main(["--architecture", "lppn", "--model", "width=4", "--model", "context_blocks=1", "--epochs", "3",
               "--steps-per-epoch", "2", "--batch-size", "4", "--out-dir", str(tmp_path), "--data-dir", ncedc_dir,
               "--progress", "false", "--crossval", "2", "--final"])
    assert rc == 0
    capsys.readouterr()
    cv = json.loads((tmp_path / "crossval.json").read_text())
    epochs = [f["best_epoch"] for f in cv["folds"]]
    assert all(1 <= e <= 3 for e in epochs)
    _, card, _ = load_checkpoint(tmp_path / "final" / "final.pt")
    assert card.provenance["final_retrain_epochs"] == int(np.ceil(np.median(epochs)))
    assert "median of the 2 fold models' best epochs" in card.provenance["final_retrain_epochs_rule"]


def test_synthetic_pretraining_runs_first(tmp_path):
    data = impulse_data()
    cfg = small_cfg("lppn", tmp_path, pretrain_windows=8, pretrain_epochs=1, epochs=1)
    _, history = train(cfg, data.subset(np.arange(8)), data.subset(np.arange(8, 12)))
    assert [(h["stage"], h["epoch"]) for h in history] == [("pretrain", 1), ("train", 1)]


def test_finetune_verb_on_ncedc(tmp_path, ncedc_dir, capsys):
    from fieldpick.train.checkpoint import load_checkpoint, save_checkpoint
    from fieldpick.train.finetune import main as finetune_main

    torch.manual_seed(0)
    model = build("lppn", {"width": 4, "context_blocks": 1})
    save_checkpoint(tmp_path / "start.pt", model)
    rc = finetune_main([str(tmp_path / "start.pt"), "--labels", "10", "--epochs", "1", "--steps-per-epoch", "2",
                        "--batch-size", "4", "--out-dir", str(tmp_path / "ft"), "--data-dir", ncedc_dir,
                        "--progress", "false", "--name", "moved"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"checkpoint", "before", "after"}
    tuned, card, _ = load_checkpoint(out["checkpoint"])
    assert card.name == "moved" and card.provenance["head_only"] is True
    assert card.provenance["labeled_windows"] == 10
    start = model.state_dict()
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, start[k])]
    assert changed and all(k.startswith("head.") for k in changed)


def test_threshold_rule_is_pluggable_and_the_default_takes_the_plateau_middle(tmp_path):
    from fieldpick.train.validate import plateau_middle, tune_thresholds

    grid = np.array([0.2, 0.3, 0.4, 0.5, 0.6])
    assert plateau_middle(grid, np.array([0.5, 0.8, 0.8, 0.8, 0.6])) == 0.4
    assert plateau_middle(grid, np.array([0.9, 0.8, 0.8, 0.8, 0.6])) == 0.2
    data = impulse_data()
    cfg = small_cfg("lppn", tmp_path)
    model = build("lppn", cfg.model)
    seen = []

    def rule(g, f1):
        seen.append((tuple(g), f1.shape))
        return 0.35

    best, scores = tune_thresholds(model, data.subset(np.arange(8, 12)), cfg, grid=grid, choose=rule)
    assert best == {"P": 0.35, "S": 0.35} and model.thresholds == best
    assert seen == [(tuple(grid), (5,))] * 2 and "P_f1" in scores


def test_crossval_fold_seed_keeps_the_folds_while_the_seed_moves_the_weights(tmp_path, monkeypatch):
    import fieldpick.train.loop as fit_mod
    from fieldpick.train.crossval import cross_validate

    data = impulse_data(n=12)
    assert not np.array_equal(station_folds(data.station, 2, 0), station_folds(data.station, 2, 1))
    real_train = fit_mod.train
    seen = []

    def spy(cfg, tr, val, out_dir=None, **kw):
        seen.append((sorted(set(tr.station)), sorted(set(val.station))))
        return real_train(cfg, tr, val, out_dir=out_dir, **kw)

    monkeypatch.setattr(fit_mod, "train", spy)

    def stations(seed, fold_seed):
        seen.clear()
        cfg = small_cfg("lppn", tmp_path / ("s%d_%s" % (seed, fold_seed)), seed=seed, epochs=1, steps_per_epoch=1)
        cv = cross_validate(cfg, data, k=2, fold_seed=fold_seed)
        assert cv["fold_seed"] == (seed if fold_seed is None else fold_seed)
        return list(seen)

    base = stations(0, None)
    assert stations(1, 0) == base  # same train and validation stations in every fold
    assert stations(1, None) != base  # the recipe's seed alone also redraws the folds


def test_pretraining_takes_the_recipes_generator_options(tmp_path):
    import argparse

    from fieldpick.lab.synthetic import LEGACY_EVENT_SHAPE
    from fieldpick.train.config import add_arguments, config_from_args
    from fieldpick.train.data.windows import synthetic_source

    with pytest.raises(ConfigError, match="unknown synthetic option.*bogus"):
        TrainConfig.from_dict({"synthetic": {"bogus": 1}})
    with pytest.raises(ConfigError, match="p_coda_ratio=-1"):
        TrainConfig.from_dict({"synthetic": {"p_coda_ratio": -1.0}})
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--synthetic", "p_coda_ratio=0.6", "--synthetic", "s_incidence_snell=false"])
    assert config_from_args(args).synthetic == {"p_coda_ratio": 0.6, "s_incidence_snell": False}

    def first_window(**kw):
        cfg = small_cfg("lppn", tmp_path, pretrain_windows=4, pretrain_epochs=1, **kw)
        return synthetic_source(cfg, T).events.waveforms[0].copy()

    new, legacy = first_window(), first_window(synthetic=dict(LEGACY_EVENT_SHAPE))
    assert new.shape == legacy.shape and not np.allclose(new, legacy)
    np.testing.assert_array_equal(legacy, first_window(synthetic=dict(LEGACY_EVENT_SHAPE)))
