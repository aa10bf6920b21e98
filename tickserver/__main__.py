"""``python -m tickserver`` runs the command-line interface."""

from tickserver.cli import main

raise SystemExit(main())
