"""A genuine EF.SOD with one DER node changed (its DS certificate too).

The property: ``sod_structure`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "sod_structure")
