"""A CBIC's holder data, signature and portrait files: CbicFormatError only.

The property: ``cbic_files`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "cbic_files")
