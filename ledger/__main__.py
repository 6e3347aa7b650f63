"""``python -m ledger`` runs the ledger CLI."""

from .cli import main

raise SystemExit(main())
