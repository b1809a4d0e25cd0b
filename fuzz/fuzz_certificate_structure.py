"""A genuine DS certificate with one DER node changed, alone and inside EF.SOD.

The property: ``certificate_structure`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "certificate_structure")
