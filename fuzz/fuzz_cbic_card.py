"""A CBIC holding any holder data.

The property: ``cbic_card`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "cbic_card")
