"""MRZ text as the serial reader hands it over: MrzError only.

The property: ``mrz`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "mrz")
