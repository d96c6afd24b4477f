"""Picks into the store: the writer ``fieldpick receive --db`` adds, and file ingestion.

:class:`DbWriter` has the receiver's writer interface (``write``, ``flush``,
``close``): each authenticated packet becomes one transaction that records
the packet and inserts its picks, committed before the receiver
acknowledges, so an acknowledged pick is in the database.  Duplicated and
replayed packets insert nothing (see :mod:`fieldpick.network.store`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import List, Optional, Sequence, Tuple

from fieldpick.edge.errors import ConfigError, DataError
from fieldpick.edge.picks import Pick

from .store import Store, open_store

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
    """The receiver's database writer: one transaction per packet, committed in ``write``."""

    def __init__(self, store: Store, model: Tuple[Optional[str], Optional[str]] = (None, None)):
        self.store = store
        self.model = model
        self.counts = {"packets": 0, "picks": 0, "duplicate_picks": 0}

    @classmethod
    def open(cls, url: str, model: Optional[str] = None) -> "DbWriter":
        return cls(open_store(url), model_identity(model))

    def write(self, entry, seq: int, picks: Sequence[Pick]) -> None:
        new = self.store.insert_picks(list(picks), station_id=entry.id, seq=seq, model=self.model)
        self.counts["packets"] += 1
        self.counts["picks"] += new
        self.counts["duplicate_picks"] += len(picks) - new

    def flush(self) -> None:
        """Nothing to do: ``write`` committed (SQLite synchronous=FULL, PostgreSQL's fsync)."""

    def close(self) -> None:
        self.store.close()


def receive_writers(db: Optional[str], model: Optional[str] = None, earthworm: Optional[str] = None,
                    module_id: int = 0, installation_id: int = 255) -> List:
    """The writers ``fieldpick receive`` adds for ``--db``: the store and, with ``--earthworm``,
    an Earthworm writer whose sequence numbers live in the same store."""
    if not db:
        return []
    w = DbWriter.open(db, model)
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
