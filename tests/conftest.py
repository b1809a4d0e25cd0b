"""Fixtures on real components, shared by every test: see tests/harness/."""

pytest_plugins = [
    "harness.broker",
    "harness.pcsc",
    "harness.serial",
    "harness.console",
    "harness.uplink",
    "harness.browser",
    "harness.agent",
    "harness.postgres",
    "harness.console_web",
]
