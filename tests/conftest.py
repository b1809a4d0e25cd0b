"""Fixtures on real components, shared by every test: see tests/harness/."""

import signal

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


# A run started in the background (a shell's `&`, nohup) ignores SIGINT, and every process a
# test starts inherits that: the Ctrl-C tests of the CLIs, the simulators and the demo would
# see their Ctrl-C ignored. The session gives Ctrl-C its usual meaning back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
