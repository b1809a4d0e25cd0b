"""EF.SOD as bytes: parse_sod raises SodError only; passive authentication never raises.

The property: ``sod`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "sod")
