"""A card's ATR: parsed or marked malformed, never an exception.

The property: ``atr`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "atr")
