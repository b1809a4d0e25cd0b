"""EF.COM, DG1 and DG2 as a chip holds them: LdsError only.

The property: ``lds`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "lds")
