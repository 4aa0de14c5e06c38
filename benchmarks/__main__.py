"""`python -m benchmarks run --scale S`: see benchmarks/suite.py and docs/performance.md."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchmarks import suite


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the suite and print its table")
    run.add_argument(
        "--scale",
        default="small",
        help=f"one or more of {', '.join(suite.SCALES)}, comma-separated, or 'all'",
    )
    run.add_argument("--repeat", type=int, default=3, help="runs of each implementation")
    run.add_argument("--only", help="only the cases whose name contains this text")
    run.add_argument("--server-url", default=suite.SERVER_URL, help="a PostgreSQL server")
    run.add_argument("--prefix", default="bench_", help="of the databases it creates")
    run.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    statements = commands.add_parser(
        "statements", help="one run of a case's job in this process, its time by SQL statement"
    )
    statements.add_argument("--case", required=True, help="text of the case's name")
    statements.add_argument("--server-url", default=suite.SERVER_URL)
    statements.add_argument("--prefix", default="bench_")
    args = parser.parse_args()
    if args.command == "statements":
        from benchmarks import statements as profiling

        with tempfile.TemporaryDirectory(prefix="saathii-bench-") as workdir:
            databases = suite.Databases(args.server_url, args.prefix, Path(workdir))
            try:
                profiling.profile(profiling.find_case(args.case), databases, print)
            finally:
                databases.close()
        return
    scales = list(suite.SCALES) if args.scale == "all" else args.scale.split(",")
    unknown = [s for s in scales if s not in suite.SCALES]
    if unknown:
        parser.error(f"unknown scale {', '.join(unknown)}; known: {', '.join(suite.SCALES)}")
    results = suite.run(
        scales, repeat=args.repeat, server_url=args.server_url, prefix=args.prefix, only=args.only
    )
    print(suite.table_text(results))
    suite.write_json(results, args.json, sys.argv)
    print(f"\n(JSON: {args.json})")
    if not all(r.states_equal for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
