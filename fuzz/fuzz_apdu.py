"""Command and response APDUs as bytes: ApduError only.

The property: ``apdu`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "apdu")
