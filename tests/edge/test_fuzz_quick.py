"""A quick run of the fuzzing harness (benchmarks/fuzz.py) over every decoder, and hypothesis
fuzzing of the small ones: no crash (an exception other than FieldpickError), no hang.

The long run is ``benchmarks/fuzz.py`` (results in benchmarks/results/fuzz.md).
FIELDPICK_FUZZ_EXAMPLES scales the number of inputs."""

import importlib.util
import logging
import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldpick.edge.errors import FieldpickError
from fieldpick.edge.limits import loads_json
from fieldpick.edge.telemetry import packet as pk
from fieldpick.edge.telemetry.receive import Receiver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCALE = int(os.environ.get("FIELDPICK_FUZZ_EXAMPLES", "300")) / 300.0


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fuzz_harness", os.path.join(REPO, "benchmarks", "fuzz.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_harness"] = mod  # its worker processes find their function by module name
    spec.loader.exec_module(mod)
    return mod


# the slow decoders (a model load and run, a journal folder, Steim decoding) get fewer inputs
INPUTS = {"tflite": 120, "mseed2": 150, "journal": 150, "seedlink_state": 200}


@pytest.mark.parametrize("name", ["mseed2", "mseed3", "tflite", "packet", "packet_signed", "journal", "card",
                                  "config", "station_table", "seedlink_state"])
def test_quick_fuzz_finds_no_crash_and_no_hang(harness, name):
    logging.disable(logging.CRITICAL)
    try:
        r = harness.fuzz(name, max(20, int(INPUTS.get(name, 300) * SCALE)), seed=7, hang_s=2.0)
    finally:
        logging.disable(logging.NOTSET)
    assert r["crashes"] == 0, r["crash_kinds"]
    assert r["hangs"] == 0


def test_workers_count_hangs_kills_and_memory_and_go_on(harness):
    """The self-test decoder misbehaves on chosen inputs: each is counted, a fresh worker goes on."""
    import zlib

    corpus = harness.SELFTESTS["selftest"][0]()
    kinds = [zlib.crc32(harness.make_input("selftest", 1, i, corpus)) % 40 for i in range(100)]
    r = harness.fuzz("selftest", 100, seed=1, hang_s=0.3, budget_mib=64)
    assert r["inputs"] == 100
    assert r["hangs"] == kinds.count(1) + kinds.count(2) == 3  # a Python loop; a loop in C (RLIMIT_CPU)
    assert r["crash_kinds"]["worker died (SIGSEGV)"] == kinds.count(3) == 2
    assert sum(n for k, n in r["crash_kinds"].items() if k.startswith("MemoryError")) == kinds.count(4) == 2
    assert r["over_budget"] == kinds.count(5) == 1 and r["peak_rss_mib"] > 64
    assert r["workers"] == 1 + 3 + 2 + 1  # a fresh one after each hang, kill and input over budget


def test_the_mutator_is_seeded_and_changes_its_input(harness):
    import random

    a = [harness.mutate(b"0123456789" * 10, random.Random(5)) for _ in range(3)]
    b = [harness.mutate(b"0123456789" * 10, random.Random(5)) for _ in range(3)]
    assert a == b and all(x != b"0123456789" * 10 for x in a)
    corpus = [b"abc" * 50, b"xyz" * 30]
    assert harness.make_input("card", 3, 17, corpus) == harness.make_input("card", 3, 17, corpus)  # input 17, again


_TABLE = pk.StationTable([pk.StationEntry(3, "NC.KHMB..HHZ", b"k" * 32)])


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(0, 255))
def test_any_signed_body_is_decoded_or_refused(body, count):
    """Signed with the station's key (the tag checks), the contents are random."""
    body = bytearray(b"\x10\x00\x03" + bytes(body))
    if len(body) >= 14:
        body[13] = count
    data = bytes(body) + pk._tag(b"k" * 32, bytes(body))
    try:
        pk.decode(data, _TABLE)
    except pk.PacketRejected:
        pass
    ack = Receiver(_TABLE).handle(data)
    assert ack is None or pk.decode_ack(ack, _TABLE).station_id == 3


@settings(max_examples=int(300 * SCALE), deadline=None)
@given(st.text(alphabet=st.sampled_from('[]{}"\\:,0123456789.e-+ntrufals \x00\ud7ff'), max_size=300))
def test_any_text_is_json_or_a_config_error(text):
    try:
        loads_json(text, "x")
    except FieldpickError:
        pass


def test_the_long_run_command_writes_its_tables(harness, tmp_path):
    out = str(tmp_path / "fuzz")
    assert harness.main(["--inputs", "30", "--only", "packet,config", "--out", out]) == 0
    md = open(out + ".md").read()
    assert "| packet | 30 | 0 | 0 | 0 |" in md and "| config | 30 | 0 | 0 | 0 |" in md
