"""``python -m fieldpick`` is the ``fieldpick`` command."""

import sys

from fieldpick.edge.cli import main

sys.exit(main())
