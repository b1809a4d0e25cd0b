"""kiosk.toml's bytes: a configuration or AgentConfigError only.

The property: ``kiosk_toml`` in tests/test_fuzz_config.py;
``make fuzz`` runs it (fuzz/run.py).
"""

from atheris_harness import fuzz

if __name__ == "__main__":
    fuzz("config", "kiosk_toml")
