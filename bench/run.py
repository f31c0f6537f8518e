"""``make bench``: every benchmark, one table. ``--quick`` for smaller sizes; names to run only some. A benchmark
that fails is a row of the table (``FAILED`` and why), the others still run, and the exit status says so."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table  # noqa: E402

BENCHMARKS = [
    "calendar",
    "ingest",
    "import",
    "callbacks",
    "delivery",
    "commands",
    "pushes",
    "engine",
    "repeats",
    "reports",
    "board",
    "memory",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"which benchmarks: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    rows: list[dict[str, Any]] = []
    failed = []
    for name in args.names or BENCHMARKS:
        started = time.perf_counter()
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            rows.extend(run_one(name, quick=args.quick))
        except Exception as exc:  # one benchmark that fails is a row of the table; the others still run
            traceback.print_exc()
            failed.append(name)
            rows.append({"benchmark": name, "value": "FAILED", "unit": "", "note": f"{type(exc).__name__}: {exc}"})
        print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print()
    print_table(rows)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run_one(name: str, *, quick: bool) -> list[dict[str, Any]]:
    result = importlib.import_module(f"bench.bench_{name}").run(quick=quick)
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    return list(result)


if __name__ == "__main__":
    sys.exit(main())
