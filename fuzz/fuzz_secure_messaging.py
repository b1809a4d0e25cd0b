"""A chip's protected answer: SecureMessagingError only.

The property: ``secure_messaging`` in tests/test_fuzz_documents.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("documents", "secure_messaging")
