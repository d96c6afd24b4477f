"""Shared fixtures: seeded generators, the real-data folder (skipped when absent)."""

import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NCEDC = os.environ.get("FIELDPICK_NCEDC", os.path.join(REPO, "..", "shared", "data", "ncedc"))


@pytest.fixture
def rng():
    """A seeded generator: tests are deterministic."""
    return np.random.default_rng(20261122)


@pytest.fixture
def ncedc_dir():
    """The real NCEDC windows; the test is skipped with a reason when they are absent."""
    if not os.path.exists(os.path.join(NCEDC, "phasenet_ncedc_30s.npz")):
        pytest.skip("real NCEDC windows not found at %s (set FIELDPICK_NCEDC); they are never committed" % NCEDC)
    return NCEDC


@pytest.fixture(autouse=True)
def _restore_fieldpick_logger():
    """A test that runs the CLI configures the 'fieldpick' logger; undo that afterwards."""
    import logging

    logger = logging.getLogger("fieldpick")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate
