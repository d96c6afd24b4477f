"""Which card is the bundled default: named, never the first file alphabetically."""

import os

import pytest

from fieldpick.edge.errors import ConfigError
from fieldpick.edge.station import DEFAULT_CARD, default_card_path


def _cards(folder, names, marker=None):
    folder.mkdir()
    for n in names:
        (folder / n).write_text("{}")
    if marker is not None:
        (folder / "DEFAULT").write_text(marker + "\n")
    return str(folder)


@pytest.mark.parametrize("names, marker, want", [
    (["a.json", "zeta.json"], "zeta.json", "zeta.json"),          # the marker wins over file order
    (["a.json", DEFAULT_CARD], "a.json", "a.json"),                # ... and over the conventional name
    (["a.json", DEFAULT_CARD, "z.json"], None, DEFAULT_CARD),      # the conventional name
    (["only.json"], None, "only.json"),                            # a single card is unambiguous
    ([], None, None),                                              # nothing bundled
])
def test_default_card_is_the_named_one(tmp_path, names, marker, want):
    got = default_card_path(_cards(tmp_path / "models", names, marker))
    assert (None if got is None else os.path.basename(got)) == want


def test_several_cards_without_a_name_are_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"holds 2 cards \(a.json, b.json\) and none is named 'fieldpick-default.json'"):
        default_card_path(_cards(tmp_path / "models", ["a.json", "b.json"]))


def test_a_marker_naming_a_missing_card_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"names the default card 'gone.json', which is not there; allowed: a.json"):
        default_card_path(_cards(tmp_path / "models", ["a.json"], "gone.json"))


def test_the_bundled_default_is_fieldpick_default():
    assert os.path.basename(default_card_path()) == "fieldpick-default.json"
