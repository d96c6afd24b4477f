"""train/progress.py: bars on a terminal, silence elsewhere, metrics beside the bar."""

import io
import logging
import os
import pty

import pytest

from fieldpick.train import progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("FIELDPICK_PROGRESS", raising=False)


@pytest.mark.parametrize("stream, env, want, expected", [
    (io.StringIO(), None, True, False),     # a log file or pipe: silent
    (FakeTTY(), None, True, True),          # a terminal: a bar
    (FakeTTY(), None, False, False),        # the caller's switch wins
    (io.StringIO(), "1", True, True),       # forced on
    (FakeTTY(), "0", True, False),          # forced off
    (io.StringIO(), "1", False, False),     # the caller's False wins over the environment
])
def test_enabled(monkeypatch, stream, env, want, expected):
    if env is not None:
        monkeypatch.setenv("FIELDPICK_PROGRESS", env)
    assert progress.enabled(stream, want) is expected


def test_a_bad_environment_value_is_named_and_ignored(monkeypatch, caplog):
    monkeypatch.setenv("FIELDPICK_PROGRESS", "yes")
    with caplog.at_level(logging.WARNING, logger="fieldpick.train.progress"):
        assert progress.enabled(io.StringIO()) is False
    assert "FIELDPICK_PROGRESS='yes' ignored; allowed: '0' (off) or '1' (on)" in caplog.text


def test_a_real_pseudo_terminal_counts_as_a_terminal():
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            assert progress.enabled(tty) is True
    finally:
        os.close(master)


def test_silent_bar_writes_nothing_and_passes_everything_through():
    out = io.StringIO()
    items = []
    with progress.bar(range(5), desc="train", stream=out) as pb:
        assert isinstance(pb, progress.Silent)
        for i in pb:
            items.append(i)
            progress.show(pb, loss=0.123456, f1=None, epoch=i)
    assert items == [0, 1, 2, 3, 4]
    assert pb.n == 5 and len(pb) == 5
    assert pb.postfix == {"loss": "0.1235", "epoch": "4"}
    assert out.getvalue() == ""


def test_bar_on_a_terminal_shows_loss_f1_and_time_left():
    pytest.importorskip("tqdm")
    out = FakeTTY()
    pb = progress.bar(total=4, desc="train", unit="step", stream=out)
    for _ in range(4):
        pb.update(1)
        progress.show(pb, loss=0.5, f1=0.9123)
        pb.refresh()
    pb.close()
    text = out.getvalue()
    assert "train" in text and "4/4" in text
    assert "loss=0.5000" in text and "f1=0.9123" in text
    assert "<" in text  # tqdm's elapsed<remaining


def test_note_goes_to_the_log_when_silent(caplog):
    pb = progress.bar(total=3, stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="fieldpick.train.progress"):
        progress.note(pb, "epoch 1/3 loss 0.2 val F1 0.8")
    assert "epoch 1/3 loss 0.2 val F1 0.8" in caplog.text
