"""A chip speaking BAC and secure messaging properly, holding any files.

The property: ``chip_files`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "chip_files")
