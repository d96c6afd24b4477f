"""The bench for pickers: synthetic records with known arrivals, and scoring picks against the truth.

Numpy and the standard library only (Python >= 3.8), like ``fieldpick.edge``,
but not part of the station runtime: the demo, training, export and the
benchmarks import it; a running station never does.

- :mod:`fieldpick.lab.synthetic`: event and noise windows, continuous streams and their truth tables;
- :mod:`fieldpick.lab.scoring`: matching picks to arrivals, precision, recall, F1, residuals.
"""
