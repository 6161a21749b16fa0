"""``python -m sledfuzz``: the command line (sledfuzz.fuzz.cli)."""

from sledfuzz.fuzz.cli import main

raise SystemExit(main())
