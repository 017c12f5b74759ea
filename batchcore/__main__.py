"""``python -m batchcore`` runs the command line."""

from batchcore.cli import main

raise SystemExit(main())
