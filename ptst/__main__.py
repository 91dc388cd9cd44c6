"""`python -m ptst` entry point."""

from ptst.cli import main

raise SystemExit(main())
