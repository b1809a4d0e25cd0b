"""A card answering anything at all: read_card gives a document or CardReadError.

The property: ``card`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "card")
