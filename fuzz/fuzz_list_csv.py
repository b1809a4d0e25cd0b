"""A watchlist in our CSV: events, errors of its own type.

The property: ``list_csv`` in tests/test_fuzz_watchlist.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("watchlist", "list_csv")
