"""``python -m ticket_api`` (see :mod:`ticket_api.cli`)."""

import sys

from .cli import main

sys.exit(main())
