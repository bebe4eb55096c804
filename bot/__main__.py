"""`python -m bot`: the same commands as `bot` (`bot/cli.py`)."""

from bot.cli import main

raise SystemExit(main())
