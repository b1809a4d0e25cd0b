"""Run the benchmarks in scripts/benchmarks/ and print their figures: ``make bench``.

Usage: python scripts/bench.py [--quick] [--only NAME ...]

Results also go to .bench/results.json and .bench/results.md (the table for the README).
Exits 1 when a figure misses its target, so a regression is visible at a glance.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchmarks  # noqa: E402  (needs the path above)


def discover() -> list[str]:
    """The benchmarks: every module of the package but helpers (named with a leading _)."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name[0] != "_")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads: proves they run")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"among: {', '.join(discover())}")
    parser.add_argument("--out", type=Path, default=HERE.parent / ".bench")
    args = parser.parse_args()
    names = args.only or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}")

    rows = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        started = time.perf_counter()
        figures = module.run(args.quick)
        print(
            f"{name}: {len(figures)} figures in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        rows += [{"benchmark": name, **asdict(f)} for f in figures]

    table = format_table(rows)
    print(table)
    args.out.mkdir(exist_ok=True)
    (args.out / "results.md").write_text(table + "\n")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "python": platform.python_version(),
                "quick": args.quick,
                "figures": rows,
            },
            indent=2,
        )
        + "\n"
    )
    # Quick runs prove the benchmarks still run; their figures judge nothing.
    return 1 if not args.quick and any(row["met"] is False for row in rows) else 0


def format_table(rows: list[dict]) -> str:
    lines = ["| benchmark | figure | value | unit | target | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**NO**", None: ""}[row["met"]]
        note = f" ({row['note']})" if row["note"] else ""
        lines.append(
            f"| {row['benchmark']} | {row['name']}{note} | {row['value']:,.1f} | {row['unit']} "
            f"| {row['target']} | {met} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
