"""A changes file the console signs: WatchlistError only.

The property: ``changes`` in tests/test_fuzz_watchlist.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("watchlist", "changes")
