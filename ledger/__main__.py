"""``python -m ledger`` runs the ledger CLI."""

from ledger.cli import main

raise SystemExit(main())
