"""``python -m ledger`` runs the ledger CLI."""

from ledger.cli.main import main

raise SystemExit(main())
