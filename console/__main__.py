"""``python -m console``: the same as ``borderlane-console``."""

from console.cli import main

main()
