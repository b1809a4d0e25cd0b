"""Any bytes as any channel's MQTT payload: JsonError or PayloadError only.

The property: ``payload`` in tests/test_fuzz_contract.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("contract", "payload")
