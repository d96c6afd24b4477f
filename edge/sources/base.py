"""The common source interface the station pipeline consumes.

A source is an iterable of :class:`Record` (in arrival order, one channel
each) with a ``close()`` method; it is also a context manager.  miniSEED
files and directories, SDS archives, pipes, SeedLink and in-memory arrays
all look the same to the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Record", "Source"]


@dataclass(frozen=True)
class Record:
    """A contiguous run of samples of one channel.

    start_ns: time of the first sample, ns since the epoch (UTC).
    sampling_rate: Hz.  samples: 1-D numpy array (int32 or float).
    """

    network: str
    station: str
    location: str
    channel: str
    start_ns: int
    sampling_rate: float
    samples: np.ndarray

    @property
    def seed_id(self) -> str:
        """'NET.STA.LOC.CHA'."""
        return "%s.%s.%s.%s" % (self.network, self.station, self.location, self.channel)

    @property
    def end_ns(self) -> int:
        """Time just after the last sample (start + n / fs), ns."""
        return self.start_ns + int(round(len(self.samples) * 1e9 / self.sampling_rate))


class Source:
    """Base class: iterate to get records; ``close()`` releases files and sockets."""

    def __iter__(self):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
