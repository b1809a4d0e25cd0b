"""What every ``fuzz/fuzz_<target>.py`` does: run one property under atheris.

The properties are the test suite's own (``PROPERTIES`` in ``tests/test_fuzz_<area>.py``): a
function of bytes that returns, or raises the parser's own error, and fails an assertion
otherwise. Under ``make test`` hypothesis runs each for a fraction of a second; here libFuzzer
(built into atheris) runs it for minutes, guided by the coverage of our code, the ASN.1 and
TOML libraries included, from the seed corpus in ``fuzz/corpus/<target>/``. Anything else
the property raises is a crash: libFuzzer writes the input to ``fuzz/.work/crashes/<target>/``
and stops; ``fuzz/run.py`` reports it.

Not named ``harness``: the tests' own ``harness`` package (tests/harness/) must stay importable
by the test modules the targets come from. Run one by hand (libFuzzer's flags after the corpus
directories)::

    .venv/bin/python fuzz/fuzz_sod.py fuzz/.work/corpus/sod fuzz/corpus/sod -max_total_time=60
    .venv/bin/python fuzz/fuzz_sod.py crash-1234abcd       # run one input again
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import atheris

TESTS = Path(__file__).resolve().parent.parent / "tests"
#: Instrumented for coverage: our packages and the pure-Python libraries they parse with.
INSTRUMENTED = ["edge", "console", "mqtt_schemas", "asn1crypto", "tomllib", "defusedxml"]


def fuzz(area: str, target: str) -> None:
    """Fuzz ``PROPERTIES[target]`` of ``tests/test_fuzz_<area>.py`` with ``sys.argv``'s flags."""
    sys.path.insert(0, str(TESTS))
    with atheris.instrument_imports(include=INSTRUMENTED):
        module = importlib.import_module(f"test_fuzz_{area}")
    check = module.PROPERTIES[target]

    def one_input(data: bytes) -> None:
        check(bytes(data))

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
