"""Station configuration: validated on load, errors name the key and the allowed values."""

import json

import pytest

from fieldpick.edge.config import StationConfig
from fieldpick.edge.errors import ConfigError


def test_defaults_are_valid_and_round_trip(tmp_path):
    cfg = StationConfig().validate()
    assert (cfg.mode, cfg.overlap, cfg.trigger.sta_s, cfg.trigger.lta_s) == ("gated", 0.5, 0.5, 10.0)
    path = tmp_path / "station.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert StationConfig.load(str(path)) == cfg


def test_partial_config_fills_defaults():
    cfg = StationConfig.from_dict({"mode": "continuous", "trigger": {"on": 4.0}})
    assert cfg.mode == "continuous" and cfg.trigger.on == 4.0 and cfg.trigger.off == 1.5


@pytest.mark.parametrize("data, message", [
    ({"mdoe": "gated"}, r"unknown key mdoe; allowed: model, backend, mode"),
    ({"trigger": {"sta": 1}}, r"unknown key trigger.sta; allowed: channel, band_hz"),
    ({"mode": "always"}, r"mode is 'always'; allowed: 'gated', 'continuous'"),
    ({"backend": "tensorrt"}, r"backend is 'tensorrt'; allowed: 'numpy', 'auto', 'litert', 'tflite-runtime', 'onnxruntime'"),
    ({"overlap": 1.0}, r"overlap is 1.0; allowed: a fraction in \[0, 1\)"),
    ({"overlap": "half"}, r"overlap is 'half'; expected a number"),
    ({"batch": 2.5}, r"batch is 2.5; expected an integer"),
    ({"batch": True}, r"batch is True; expected an integer"),
    ({"stacking": "median"}, r"stacking is 'median'; allowed: 'auto', 'avg', 'max', 'taper'"),
    ({"trigger": {"sta_s": 20.0}}, r"trigger.sta_s is 20.0; allowed: 0 < sta_s < lta_s \(10.0 s\)"),
    ({"trigger": {"on": 1.0, "off": 2.0}}, r"trigger.off is 2.0; allowed: 0 < off <= on \(1.0\)"),
    ({"trigger": {"band_hz": [20.0, 1.0]}}, r"trigger.band_hz is \[20.0, 1.0\]; allowed: \[low, high\]"),
    ({"trigger": {"band_hz": "1-20"}}, r"trigger.band_hz is '1-20'; expected a list"),
    ({"trigger": {"windows": "sliding"}}, r"trigger.windows is 'sliding'; allowed: 'fit', 'grid'"),
    ({"buffer": {"gap_fill": "spline"}}, r"buffer.gap_fill is 'spline'; allowed: 'zero', 'hold'"),
    ({"buffer": {"max_lag_s": 0}}, r"buffer.max_lag_s is 0.0; allowed: seconds in \(0, 3600\]"),
    ({"picker": {"thresholds": {"X": 0.5}}}, r"picker.thresholds key is 'X'; allowed: 'P', 'S'"),
    ({"picker": {"thresholds": {"P": 1.5}}}, r"picker.thresholds\['P'\] is 1.5; allowed: a probability in \(0, 1\)"),
    ({"output": {"format": "xml"}}, r"output.format is 'xml'; allowed: 'csv', 'jsonl'"),
    ({"sources": "file.mseed"}, r"sources is 'file.mseed'; expected a list"),
    ({"format": "something-else"}, r"format is 'something-else'; allowed: 'fieldpick-station-config'"),
    ({"version": 9}, r"version is 9 but this fieldpick reads up to 1: upgrade"),
    ({"overlap": float("nan")}, r"overlap is nan; expected a number"),
    ([], r"config is \[\]; expected an object"),
])
def test_bad_configs_name_the_key_and_allowed_values(data, message):
    with pytest.raises(ConfigError, match=message):
        StationConfig.from_dict(data)


def test_bad_json_and_missing_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{mode: gated}")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        StationConfig.load(str(p))
    with pytest.raises(ConfigError, match="cannot read station config"):
        StationConfig.load(str(tmp_path / "missing.json"))


def test_backend_auto_takes_the_fastest_installed_and_falls_back_to_numpy(monkeypatch, caplog):
    import sys

    from fieldpick.edge.station import default_card_path, load_runner

    card = default_card_path()
    if card is None:
        pytest.skip("no bundled model in edge/models/")
    assert StationConfig.from_dict({"backend": "auto"}).backend == "auto"
    # neither optional runtime importable: numpy
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with caplog.at_level("INFO", logger="fieldpick.edge.runners"):
        runner = load_runner(card, "auto")
    assert runner.interpreter.backend == "numpy"
    assert "backend auto: using numpy" in caplog.text
    monkeypatch.undo()
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is the first choice of 'auto'")
    assert load_runner(card, "auto").interpreter.backend == "litert"
