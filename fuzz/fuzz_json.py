"""JSON from outside: parse_json returns a value or raises JsonError only.

The property: ``json`` in tests/test_fuzz_contract.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("contract", "json")
