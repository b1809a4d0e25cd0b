"""A CBIC issuer trust list file: TrustListError only.

The property: ``trust_list`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "trust_list")
