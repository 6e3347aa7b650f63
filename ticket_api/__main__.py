"""``python -m ticket_api`` (see :mod:`ticket_api.cli`)."""

import sys

from ticket_api.cli import main

sys.exit(main())
