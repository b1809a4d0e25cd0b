"""A delta chunk line, signed again or not: WatchlistError / DeltaRejected only.

The property: ``chunk`` in tests/test_fuzz_watchlist.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("watchlist", "chunk")
