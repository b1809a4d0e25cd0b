"""A serial MRZ reader's bytes, cut anywhere: frames, and MrzError only.

The property: ``serial`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "serial")
