"""``make fuzz``: every fuzz target (``fuzz/fuzz_<target>.py``) for a while, then a summary.

Each target runs in its own process under atheris (libFuzzer) for ``FUZZ_SECONDS`` (default
180), one after the other (the machine's cores are shared), from its seed corpus
(``fuzz/corpus/<target>/``, kept in the repository) and what earlier runs found
(``fuzz/.work/corpus/<target>/``, not kept). ``FUZZ_TARGETS="sod chunk"`` runs only those.

A crash (the property failed: the parser raised something other than its own error) stops that
target; its input is in ``fuzz/.work/crashes/<target>/`` and the log in
``fuzz/.work/logs/<target>.log`` (ERROR instead of CRASH: the target did not even start).
Turn it into a regression test: add the input as an ``@example`` of the target's test in
``tests/test_fuzz_<area>.py`` (or a named test), then fix the parser. Exit status: 0 when no
target failed, 1 otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
WORK = FUZZ / ".work"
DEFAULT_SECONDS = 180


@dataclass
class Outcome:
    target: str
    seconds: float
    runs: int | None
    coverage: int | None
    corpus: int
    crashes: list[Path]
    status: int

    def line(self) -> str:
        runs = f"{self.runs:,}" if self.runs is not None else "?"
        coverage = str(self.coverage) if self.coverage is not None else "?"
        verdict = "CRASH" if self.crashes else "ERROR" if self.status else "ok"
        return (
            f"{self.target:<24} {verdict:<6} {self.seconds:6.0f} s {runs:>12} runs "
            f"cov {coverage:>6}  corpus {self.corpus:>5}"
        )


def targets() -> list[str]:
    chosen = os.environ.get("FUZZ_TARGETS", "").replace(",", " ").split()
    known = sorted(path.stem.removeprefix("fuzz_") for path in FUZZ.glob("fuzz_*.py"))
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise SystemExit(f"fuzz: unknown targets {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen or known


def run(target: str, seconds: int) -> Outcome:
    corpus = WORK / "corpus" / target
    crashes = WORK / "crashes" / target
    logs = WORK / "logs"
    for directory in (corpus, crashes, logs):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    seeds = FUZZ / "corpus" / target
    command = [
        sys.executable,
        str(FUZZ / f"fuzz_{target}.py"),
        str(corpus),  # new inputs go to the first directory: the seeds stay as they are
        str(seeds),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-timeout=20",  # one input taking longer is a hang: reported as a crash
        "-rss_limit_mb=2048",
        "-max_len=16384",
        "-print_final_stats=1",
    ]
    earlier = set(crashes.iterdir())  # crashes of earlier runs are not this run's
    started = time.monotonic()
    log = logs / f"{target}.log"
    with log.open("wb") as output:
        status = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, cwd=FUZZ)
    text = log.read_text(errors="replace")
    runs = _last_int(r"stat::number_of_executed_units:\s*(\d+)", text)
    coverage = _last_int(r"\bcov: (\d+)", text)
    found = sorted(p for p in set(crashes.iterdir()) - earlier if p.is_file())
    return Outcome(
        target,
        time.monotonic() - started,
        runs,
        coverage,
        sum(1 for _ in corpus.iterdir()),
        found,
        status,
    )


def _last_int(pattern: str, text: str) -> int | None:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else None


def main() -> int:
    seconds = int(os.environ.get("FUZZ_SECONDS", DEFAULT_SECONDS))
    chosen = targets()
    print(f"fuzz: {len(chosen)} targets, {seconds} s each; logs in {WORK / 'logs'}", flush=True)
    outcomes = []
    for target in chosen:
        outcome = run(target, seconds)
        outcomes.append(outcome)
        print(outcome.line(), flush=True)
        for crash in outcome.crashes:
            print(f"    {crash.relative_to(FUZZ.parent)}", flush=True)
    failed = [o for o in outcomes if o.crashes or o.status != 0]
    if failed:
        names = ", ".join(o.target for o in failed)
        print(
            f"fuzz: {len(failed)} target(s) failed: {names}. A crash's input is in "
            "fuzz/.work/crashes/<target>/ and its traceback at the end of the target's log "
            "(an ERROR without one: the target did not start, see the log); add the input as "
            "an @example in tests/test_fuzz_<area>.py, then fix the parser.",
            file=sys.stderr,
        )
        return 1
    print(f"fuzz: no crash in {sum(o.runs or 0 for o in outcomes):,} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
