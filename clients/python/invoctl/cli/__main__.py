"""`python -m invoctl.cli` runs the command line."""

from .main import main

raise SystemExit(main())
