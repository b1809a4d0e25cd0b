"""A certificate, DER or PEM (with CRLs), as the CSCA trust store loads one.

The property: ``certificate`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "certificate")
