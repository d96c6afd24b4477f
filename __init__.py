"""fieldpick: on-station seismic phase picking.

The distribution maps this folder to the package ``fieldpick``; its
sub-packages are ``fieldpick.edge`` (the numpy-only station runtime),
``fieldpick.train`` and ``fieldpick.export`` (workstation only) and
``fieldpick.boards`` (board profiles and bundles).
"""

__version__ = "0.1.0"
