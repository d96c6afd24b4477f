"""fieldpick plot: annotate() against a model whose picks are known, the figures, the verb."""

import dataclasses
import os
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from fieldpick.edge.errors import ConfigError, DataError  # noqa: E402
from fieldpick.train import plot  # noqa: E402
from fieldpick.train.checkpoint import save_checkpoint  # noqa: E402
from fieldpick.train.models import build  # noqa: E402
from fieldpick.train.models.blocks import card_template  # noqa: E402

torch.set_num_threads(1)
PNG = b"\x89PNG\r\n\x1a\n"


class SpikePicker(torch.nn.Module):
    """P probability 1 on samples where the normalised Z exceeds 8 sigma, S the same on N; per sample."""

    architecture = "spike"

    @dataclasses.dataclass
    class Config:
        window_samples: int = 1000

    def __init__(self):
        super().__init__()
        self.config = self.Config()

    def forward(self, x):
        p = (x[:, 0] > 8).float()
        s = (x[:, 1] > 8).float()
        return torch.stack([1 - torch.maximum(p, s), p, s], dim=1)

    def card(self):
        return card_template(self, "probabilities", ["N", "P", "S"], 1000, 100.0, thresholds={"P": 0.5, "S": 0.5})


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("n, spikes", [
    (1000, {"P": [250], "S": [600]}),             # one window
    (4321, {"P": [100, 2999, 4300], "S": [1700]}),  # several overlapping windows and a padded tail
    (700, {"P": [350], "S": []}),                 # shorter than a window: zero-padded
])
def test_annotate_finds_the_spikes(rng, n, spikes):
    x = rng.normal(0, 1, (3, n)).astype(np.float32) * 0.01
    for phase, where in spikes.items():
        for i in where:
            x[0 if phase == "P" else 1, i] = 50.0
    model = SpikePicker()
    ann = plot.annotate(model, model.card(), x)
    got = {ph: [round(p[1], 6) for p in ann.picks if p[0] == ph] for ph in ("P", "S")}
    assert got == {ph: [float(i) for i in v] for ph, v in spikes.items()}
    assert all(p[2] == 1.0 for p in ann.picks)
    assert len(ann.positions) == n and ann.probs.shape == (n, 3)
    assert [p[1] for p in ann.picks] == sorted(p[1] for p in ann.picks)


def test_annotate_checks_its_input():
    model = SpikePicker()
    with pytest.raises(DataError, match=r"record has shape \(1000,\); expected \(3, N\)"):
        plot.annotate(model, model.card(), np.zeros(1000))
    with pytest.raises(ConfigError, match=r"hop 0 samples; it must be a multiple of the stride \(1\) in 1 \.\. 1000"):
        plot.annotate(model, model.card(), np.zeros((3, 2000)), hop=0)


@pytest.mark.parametrize("arch, config", [("lppn", {"window_samples": 1024, "width": 4}), ("cpic", {})])
def test_annotate_reads_stride_and_window_class_models(rng, arch, config):
    model = build(arch, config).eval()
    x = rng.normal(0, 1, (3, 2500)).astype(np.float32)
    ann = plot.annotate(model, model.card(), x, thresholds={"P": 0.34, "S": 0.34})
    assert ann.labels == ["N", "P", "S"]
    assert np.all(np.diff(ann.positions) > 0) and ann.positions[-1] < 2500
    assert np.all((ann.probs >= 0) & (ann.probs <= 1))
    assert all(0 <= p[1] < 2500 and p[3] > 0 for p in ann.picks)


def _record(rng, n=3000, fs=100.0):
    x = rng.normal(0, 100, (3, n)).astype(np.float32)
    x[:, 1200:1500] += rng.normal(0, 2000, (3, 300)).astype(np.float32)
    return plot.Record(x, fs, 1_700_000_000 * 10 ** 9, {"P": [1200.0], "S": [1450.0]}, "test record")


@pytest.mark.parametrize("with_model, saliency", [(False, False), (True, False), (True, True)])
def test_plot_window_writes_a_small_png(tmp_path, rng, with_model, saliency):
    rec = _record(rng)
    ann = None
    if with_model:
        ann = plot.Annotation(["N", "P", "S"], np.arange(3000.0), np.zeros((3000, 3)),
                              [("P", 1201.5, 0.9, 8.0), ("S", 1452.0, 0.7, 12.0)], {"P": 0.5, "S": 0.5}, "stub")
    sal = {"P": np.exp(-0.5 * ((np.arange(3000) - 1200) / 50.0) ** 2)} if saliency else None
    out = tmp_path / "w.png"
    assert plot.plot_window(out, rec, ann, saliency=sal) == out
    w, h = _png_size(out)
    assert 800 < w < 1400 and 400 < h < 1100
    assert os.path.getsize(out) < 200_000
    assert not os.path.exists(str(out) + ".tmp")


def test_plot_overview_of_two_hours(tmp_path, rng):
    n = int(2 * 3600 * 20)  # two hours at 20 Hz
    x = rng.normal(0, 1, (3, n)).astype(np.float32)
    rec = plot.Record(x, 20.0, 1_700_000_000 * 10 ** 9, {"P": [36000.0], "S": [36400.0]}, "two hours")
    ann = plot.Annotation(["N", "P", "S"], np.arange(0, n, 100.0), np.zeros((n // 100, 3)),
                          [("P", 36010.0, 0.8, 3.0), ("S", 36390.0, 0.6, 4.0)], {"P": 0.5}, "stub")
    out = tmp_path / "day.png"
    plot.plot_overview(out, rec, ann, row_minutes=15)
    w, h = _png_size(out)
    assert w > 700 and h > 250 and os.path.getsize(out) < 200_000
    with pytest.raises(ConfigError, match=r"row_minutes 0; it must be > 0 minutes"):
        plot.plot_overview(tmp_path / "x.png", rec, ann, row_minutes=0)


# ---------------------------------------------------------------- the verb
@pytest.fixture
def tiny_checkpoint(tmp_path):
    return str(save_checkpoint(tmp_path / "tiny.pt", build("lppn", {"window_samples": 1024, "width": 4})))


@pytest.mark.parametrize("args, kind", [
    (["--synthetic", "2", "--seconds", "20"], "window"),
    (["--stream", "600", "--overview", "on", "--row-minutes", "2"], "overview"),
    (["--stream", "300"], "window"),
])
def test_plot_verb(tmp_path, tiny_checkpoint, capsys, args, kind):
    out = tmp_path / "p.png"
    assert plot.main(args + ["--model", tiny_checkpoint, "--out", str(out), "--threshold", "P=0.4"]) == 0
    _png_size(out)
    text = capsys.readouterr().out
    assert text.startswith("wrote %s (%s, " % (out, kind))


def test_plot_verb_without_a_model(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert plot.main(["--synthetic", "1", "--out", str(out)]) == 0
    assert "(window, 30.7 s, 0 picks)" in capsys.readouterr().out


@pytest.mark.parametrize("args, match", [
    (["--threshold", "X=0.5"], r"--threshold 'X=0.5': phase 'X'; allowed: P, S"),
    (["--threshold", "P=1.5"], r"--threshold 'P=1.5': 1.5; allowed: a probability in \(0, 1\)"),
    (["--threshold", "P=high"], r"'high' is not a number"),
    (["--start", "yesterday"], r"--start 'yesterday'"),
])
def test_plot_verb_bad_options(tmp_path, args, match):
    with pytest.raises(ConfigError, match=match):
        plot.main(["--synthetic", "1", "--out", str(tmp_path / "p.png")] + args)


def test_plot_verb_ncedc_window(tmp_path, ncedc_dir, capsys):
    out = tmp_path / "n.png"
    assert plot.main(["--ncedc", "3", "--data-dir", ncedc_dir, "--out", str(out)]) == 0
    assert "(window, 30.0 s, 0 picks)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"--ncedc 999; allowed: 0 \.\. 153"):
        plot.main(["--ncedc", "999", "--data-dir", ncedc_dir, "--out", str(out)])


def test_plot_verb_reads_miniseed_through_edge_sources(tmp_path, rng, capsys):
    """ObsPy writes the file; fieldpick.edge.sources reads it; the record starts at the traces' start."""
    obspy = pytest.importorskip("obspy")
    start = obspy.UTCDateTime("2024-03-01T12:00:00.5Z")
    traces = []
    for comp in "ZNE":
        data = (rng.normal(0, 200, 6000)).astype(np.int32)
        traces.append(obspy.Trace(data, header={"network": "XX", "station": "FP1", "location": "00",
                                               "channel": "HH" + comp, "sampling_rate": 100.0, "starttime": start}))
    path = tmp_path / "day.mseed"
    obspy.Stream(traces).write(str(path), format="MSEED", encoding="STEIM2", reclen=512)
    out = tmp_path / "m.png"
    assert plot.main(["--mseed", str(path), "--out", str(out)]) == 0
    assert "(window, 60.0 s, 0 picks)" in capsys.readouterr().out
    _png_size(out)

    class Args:
        synthetic = ncedc = stream = None
        mseed = [str(path)]
        channel_prefix = "HH"
    rec = plot.load_record(Args)
    assert rec.start_ns == 1709294400_500_000_000
    assert rec.data.shape == (3, 6000)
    with pytest.raises(DataError, match=r"no Z/N/E \(or Z/1/2\) records in .* with channel prefix 'BH'"):
        Args.channel_prefix = "BH"
        plot.load_record(Args)
