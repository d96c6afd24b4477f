"""Picks into the store: the writer ``fieldpick receive --db`` adds, and file ingestion.

:class:`DbWriter` has the receiver's writer interface (``write``, ``flush``,
``close``): the packets of one receiver group (see ``fieldpick receive
--group-packets``) are one transaction that records each packet and
inserts its picks, committed before the receiver acknowledges, so an
acknowledged pick is in the database.  Duplicated and
replayed packets insert nothing (see :mod:`fieldpick.network.store`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import List, Optional, Sequence, Tuple

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.picks import Pick

from .store import Store, open_store, split_code

__all__ = ["model_identity", "DbWriter", "read_pick_lines", "receive_writers"]

log = logging.getLogger(__name__)


def model_identity(spec: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(name, sha256) of a model card path or 'default'; (None, None) for None."""
    if not spec:
        return None, None
    from fieldpick.edge.card import ModelCard
    from fieldpick.edge.station import default_card_path

    path = default_card_path() if spec == "default" else spec
    if path is None or not os.path.exists(path):
        raise ConfigError("model card %r not found; give a card .json path or 'default'" % (spec,))
    card = ModelCard.load(path, verify=False)
    return card.name, card.sha256


class DbWriter(object):
    """The receiver's database writer: the packets written between two ``flush`` calls are one transaction.

    ``write`` checks a packet and keeps it; ``flush`` records the kept
    packets and inserts their picks in one transaction and commits it
    (SQLite synchronous=FULL, PostgreSQL's fsync); the receiver acknowledges
    the packets only after ``flush`` returned, so an acknowledged pick is in
    the database.  When that transaction fails, each packet is tried in a
    transaction of its own, and ``flush`` returns the (station id, seq) of
    those that still failed, for the receiver to set aside; the others are
    stored.

    With ``associate_s`` it also associates live: at most every ``associate_s``
    seconds (wall clock, checked after a commit) it runs the associator over
    the unassociated picks between ``lookback_s`` and ``settle_s`` before the
    newest pick received, so that slower stations' picks of an event have
    arrived before it is formed (a pick later than that is left
    unassociated; ``fieldpick associate`` over the span picks it up with
    what is left).
    """

    def __init__(self, store: Store, model: Tuple[Optional[str], Optional[str]] = (None, None),
                 associate_s: Optional[float] = None, settle_s: float = 120.0, lookback_s: float = 900.0):
        self.store = store
        self.model = model
        self.associate_s = associate_s
        self.settle_s, self.lookback_s = settle_s, lookback_s
        self._last_run = time.monotonic()
        self._newest = None
        self._kept: List[Tuple[int, int, List[Pick]]] = []
        self.counts = {"packets": 0, "picks": 0, "duplicate_picks": 0, "events": 0, "commits": 0}

    @classmethod
    def open(cls, url: str, model: Optional[str] = None, associate_s: Optional[float] = None) -> "DbWriter":
        return cls(open_store(url), model_identity(model), associate_s)

    def write(self, entry, seq: int, picks: Sequence[Pick]) -> None:
        for p in picks:
            split_code(p.station)  # a DataError now, for this packet alone
        self._kept.append((entry.id, seq, list(picks)))
        if picks:
            newest = max(p.time_ns for p in picks)
            self._newest = newest if self._newest is None else max(self._newest, newest)

    def flush(self) -> List[Tuple[int, int]]:
        """Store the packets written since the last ``flush`` in one transaction; those that could
        not be stored, as (station id, seq) (normally none).  Then associate when it is time."""
        kept, self._kept = self._kept, []
        failed = []
        if kept:
            try:
                self._store(kept)
            except Exception as exc:  # find the packet that fails: each on its own
                self.store.rollback()
                log.warning("a transaction of %d packets failed (%s); storing them one by one", len(kept), exc)
                for item in kept:
                    try:
                        self._store([item])
                    except Exception as one:
                        self.store.rollback()
                        log.error("station id %d packet %d could not be stored: %s", item[0], item[1], one)
                        failed.append(item[:2])
        if self.associate_s is not None and time.monotonic() - self._last_run >= self.associate_s:
            self.associate_now()
        return failed

    def _store(self, items) -> None:
        packets, picks = self.store.insert_packets(items, model=self.model)
        n = sum(len(x[2]) for x in items)
        self.counts["commits"] += 1
        self.counts["packets"] += len(items)
        self.counts["picks"] += picks
        self.counts["duplicate_picks"] += n - picks

    def associate_now(self) -> int:
        """Associate the settled picks now; the number of new events."""
        from .events import associate_store

        self._last_run = time.monotonic()
        if self._newest is None:
            return 0
        until = self._newest - int(self.settle_s * 1e9)
        try:
            ids = associate_store(self.store, until - int(self.lookback_s * 1e9), until)
        except Exception:  # association must never stop the receiver from storing picks
            log.exception("live association failed; picks are stored, run fieldpick associate later")
            return 0
        self.counts["events"] += len(ids)
        return len(ids)

    def close(self) -> None:
        failed = self.flush()
        if failed:
            log.error("closing: %d packets could not be stored: %s", len(failed), failed)
        if self.associate_s is not None:  # what has not settled yet: associate it now
            self.settle_s = 0.0
            self._newest = None if self._newest is None else self._newest + 1
            self.associate_now()
        self.store.close()


def receive_writers(db: Optional[str], model: Optional[str] = None, earthworm: Optional[str] = None,
                    module_id: int = 0, installation_id: int = 255, associate_s: Optional[float] = None) -> List:
    """The writers ``fieldpick receive`` adds for ``--db``: the store and, with ``--earthworm``,
    an Earthworm writer whose sequence numbers live in the same store."""
    if not db:
        return []
    w = DbWriter.open(db, model, associate_s)
    out = [w]
    if earthworm:
        from .earthworm import EarthwormWriter

        out.append(EarthwormWriter(earthworm, w.store, module_id=module_id, installation_id=installation_id,
                                   model_sha256=w.model[1]))
    return out


def read_pick_lines(path: str) -> List[Pick]:
    """Picks from JSON lines (``fieldpick replay --format jsonl``, ``fieldpick picks --format json``)."""
    keep = ("time_ns", "phase", "probability", "uncertainty_s", "amplitude", "snr_db", "polarity", "station")
    out = []
    with open(path, "r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
                if "channel" in d and d["station"].count(".") == 2:
                    d["station"] = d["station"] + "." + d["channel"]
                out.append(Pick(**{k: d[k] for k in keep if k in d}))
            except (ValueError, KeyError, TypeError, AttributeError, DataError) as exc:
                raise DataError("%s line %d is not a pick (%s); expected JSON with %s"
                                % (path, n, exc, ", ".join(keep))) from None
    return out
