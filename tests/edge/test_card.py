"""The model card: strict loading, versioning, and the model file's hash."""

import json

import pytest

from fieldpick.edge.card import (
    CARD_VERSION,
    InputSpec,
    ModelCard,
    Normalisation,
    OutputSpec,
    Quantisation,
    TensorSpec,
)
from fieldpick.edge.errors import CardError, FieldpickError


def make_card(**over):
    kw = dict(
        name="tiny-lppn",
        architecture="lppn",
        input=InputSpec(sampling_rate_hz=100.0, window_samples=3000),
        output=OutputSpec(kind="stride_class_offset", labels=["N", "P", "S"], stride_samples=16),
        thresholds={"P": 0.4, "S": 0.35},
        quantisation=Quantisation(
            scheme="int8",
            tensors=[TensorSpec("x", "input", [1, 3000, 3], "int8", 0.05, -3),
                     TensorSpec("y", "output", [1, 187, 5], "int8", 1 / 256.0, -128)],
        ),
        parameters=15000,
        flops_per_window=2_500_000,
    )
    kw.update(over)
    return ModelCard(**kw)


@pytest.fixture
def saved(tmp_path):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(b"TFL3" + bytes(range(256)) * 4)
    card = make_card().attach(str(model))
    path = str(tmp_path / "tiny.json")
    card.save(path)
    return path, model, card


def test_round_trip_keeps_every_field(saved):
    path, model, card = saved
    loaded = ModelCard.load(path)
    assert loaded == card
    assert loaded.model_bytes == 4 + 1024
    assert loaded.input.window_seconds == pytest.approx(30.0)
    on_disk = json.load(open(path))
    assert on_disk["format"] == "fieldpick-model-card" and on_disk["version"] == CARD_VERSION


def test_altered_model_file_is_refused(saved):
    path, model, _ = saved
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF  # same size, different content
    model.write_bytes(bytes(data))
    with pytest.raises(CardError, match="sha256 .* but its card says"):
        ModelCard.load(path)
    assert ModelCard.load(path, verify=False).name == "tiny-lppn"


def test_truncated_model_file_is_refused(saved):
    path, model, _ = saved
    model.write_bytes(model.read_bytes()[:500])
    with pytest.raises(CardError, match="has 500 bytes but its card says 1028"):
        ModelCard.load(path)


def test_missing_model_file_is_refused(saved):
    path, model, _ = saved
    model.unlink()
    with pytest.raises(CardError, match="does not exist"):
        ModelCard.load(path)


def _edit(path, fn):
    data = json.load(open(path))
    fn(data)
    json.dump(data, open(path, "w"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(version=CARD_VERSION + 1), "upgrade fieldpick"),
        (lambda d: d.update(version="1"), "version '1'; expected an integer"),
        (lambda d: d.update(format="something-else"), "expected 'fieldpick-model-card'"),
        (lambda d: d.update(colour="blue"), "unknown key\\(s\\) 'colour'"),
        (lambda d: d["input"].update(sampling_rate_hz="100"), "sampling_rate_hz is '100'; expected a number"),
        (lambda d: d["input"].update(window_samples=0), "window_samples is 0; it must be > 0"),
        (lambda d: d["input"].update(channels=["Z", "X", "E"]), "channels\\[1\\] is 'X'; allowed"),
        (lambda d: d["input"]["normalisation"].update(scale="max"), "scale is 'max'; allowed: 'none', 'std', 'peak'"),
        (lambda d: d["input"]["normalisation"].update(compress="log"),
         "input.normalisation.compress is 'log'; allowed: 'none', 'asinh'"),
        (lambda d: d["input"]["normalisation"].update(compress_scale=0), "compress_scale is 0.0; it must be > 0"),
        (lambda d: d["input"]["normalisation"].update(compress_scale=-0.05), "compress_scale is -0.05; it must be > 0"),
        (lambda d: d["input"]["normalisation"].update(compress_scale="0.05"), "compress_scale is '0.05'; expected"),
        (lambda d: d["output"].update(kind="boxes"), "kind is 'boxes'; allowed"),
        (lambda d: d["output"].update(stride_samples=4000), "stride_samples 4000 is longer than"),
        (lambda d: d["thresholds"].update(P=1.5), "thresholds\\['P'\\] is 1.5"),
        (lambda d: d["thresholds"].pop("S"), "no entry for output label 'S'"),
        (lambda d: d.pop("input"), "no 'input'; it is required"),
        (lambda d: d["quantisation"]["tensors"][0].update(scale=None), "int8 but has no scale"),
    ],
)
def test_bad_cards_name_the_problem(saved, edit, message):
    path, _, _ = saved
    _edit(path, edit)
    with pytest.raises(CardError, match=message):
        ModelCard.load(path)


def test_not_json_at_all(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        ModelCard.load(str(p))


def test_card_errors_are_fieldpick_errors_and_value_errors():
    assert issubclass(CardError, FieldpickError) and issubclass(CardError, ValueError)


def test_save_refuses_an_invalid_card(tmp_path):
    card = make_card(thresholds={"P": 0.4})
    with pytest.raises(CardError, match="'S'"):
        card.save(str(tmp_path / "bad.json"))
    assert not (tmp_path / "bad.json").exists()


def test_compression_round_trips_and_old_cards_default_to_none(tmp_path, saved):
    path, model, _ = saved
    # a card written before the field existed has no 'compress': it loads as no compression
    data = json.load(open(path))
    data["input"]["normalisation"].pop("compress")
    data["input"]["normalisation"].pop("compress_scale")
    json.dump(data, open(path, "w"))
    old = ModelCard.load(path)
    assert (old.input.normalisation.compress, old.input.normalisation.compress_scale) == ("none", 1.0)
    # asinh with its scale survives save and load
    card = make_card(input=InputSpec(100.0, 3000, normalisation=Normalisation(compress="asinh", compress_scale=0.05)))
    card.attach(str(model))
    out = str(tmp_path / "asinh.json")
    card.save(out)
    back = ModelCard.load(out)
    assert back.input.normalisation == Normalisation("demean", "std", True, 1e-30, "asinh", 0.05)
    assert json.load(open(out))["input"]["normalisation"]["compress"] == "asinh"


@pytest.mark.parametrize("kw, message", [
    (dict(compress="asinh", compress_scale=float("nan")), "compress_scale is nan; it must be a finite number"),
    (dict(compress="asinh", compress_scale=True), "compress_scale is True; it must be a number > 0"),
    (dict(compress="ASINH"), "compress is 'ASINH'; allowed: 'none', 'asinh'"),
])
def test_compression_is_validated_when_built_in_code(kw, message):
    with pytest.raises(CardError, match=message):
        make_card(input=InputSpec(100.0, 3000, normalisation=Normalisation(**kw))).validate()


def test_input_highpass_round_trips_and_is_left_out_when_off(tmp_path):
    plain = make_card().to_dict()
    assert "highpass_hz" not in plain["input"]  # cards without a filter read as before
    card = make_card(input=InputSpec(sampling_rate_hz=100.0, window_samples=3000, highpass_hz=1.0))
    d = card.to_dict()
    assert d["input"]["highpass_hz"] == 1.0 and d["input"]["highpass_order"] == 2
    assert ModelCard.from_dict(d).input.highpass_hz == 1.0
    d["input"]["highpass_hz"] = 60.0
    with pytest.raises(CardError, match="highpass_hz is 60.0; allowed: 0 .none. or a corner below Nyquist"):
        ModelCard.from_dict(d)
    d["input"]["highpass_hz"], d["input"]["highpass_order"] = 1.0, 3
    with pytest.raises(CardError, match="highpass_order is 3"):
        ModelCard.from_dict(d)
