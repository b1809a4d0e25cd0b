"""``python -m edge``: the same as ``borderlane-edge`` (what the agent re-executes on restart)."""

from edge.cli import main

main()
