"""The station, as users import it: the pipeline, the runners, the file merge.

One place to import from (``from fieldpick.edge.station import Station,
load_runner``); each concept lives in its own module:

- :mod:`fieldpick.edge.pipeline`: :class:`Station` (packets in, picks out) and :class:`StationSet`;
- :mod:`fieldpick.edge.schedule`: where windows run (the trigger's spans, fitted windows);
- :mod:`fieldpick.edge.runners`: the model seam and :func:`load_runner`;
- :mod:`fieldpick.edge.sources.merge`: miniSEED files merged in time order;
- :mod:`fieldpick.edge.picks`: :func:`format_pick` (output lines);
- :mod:`fieldpick.edge.run`: the ``fieldpick run`` verb.
"""

from .picks import CSV_HEADER, format_pick
from .pipeline import Station, StationSet
from .runners import (
           AUTO_ORDER,
           DEFAULT_CARD,
           EnergyRatioRunner,
           InterpreterRunner,
           Runner,
           default_card_path,
           load_runner,
)
from .sources.merge import join_seconds, records_in_time_order

__all__ = ["Runner", "InterpreterRunner", "EnergyRatioRunner", "Station", "StationSet", "format_pick", "load_runner",
           "default_card_path", "DEFAULT_CARD", "AUTO_ORDER", "CSV_HEADER", "records_in_time_order", "join_seconds"]
