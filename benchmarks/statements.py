"""Where a job's time goes, statement by statement: `python -m benchmarks statements
--case TEXT` builds the case's population, runs the job once through the job runner in
this process and prints each SQL statement's share of the run. With
`PGOPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=500
-c auto_explain.log_analyze=on -c auto_explain.log_buffers=on"` the server's log gets each
slow statement's plan as it ran (docs/performance.md)."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from benchmarks.suite import SCALES, Case, Databases
from saathii_ops.db.engine import make_engine
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings


def find_case(text: str) -> Case:
    found = [c for cases in SCALES.values() for c in cases if text in c.name]
    if not found:
        raise SystemExit(f"no case matches {text!r}")
    return found[0]


def profile(case: Case, databases: Databases, say: Callable[[str], None]) -> None:
    with (
        databases.template(case.population, case.dialect) as template,
        databases.copy(template, case.dialect) as url,
    ):
        engine = make_engine(url)
        spent: dict[str, list[float]] = defaultdict(list)
        _time_statements(engine, spent)
        started = time.monotonic()
        result = run_job(engine, Settings(), get_job(case.job), now=case.now, dry_run=False)
        total = time.monotonic() - started
        engine.dispose()
    say(f"{case.name}: {result.outcome} in {total:.2f} s (in this process, no start-up)")
    in_sql = sum(sum(t) for t in spent.values())
    say(f"  in SQL: {in_sql:.2f} s ({in_sql / total:.0%}); the rest is Python")
    ranked = sorted(spent.items(), key=lambda item: -sum(item[1]))
    for statement, times in ranked[:15]:
        say(f"  {sum(times):7.3f} s  x{len(times):<3} {statement[:150]}")


def _time_statements(engine: Engine, spent: dict[str, list[float]]) -> None:
    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("started", []).append(time.monotonic())

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seconds = time.monotonic() - conn.info["started"].pop()
        spent[re.sub(r"\s+", " ", statement).strip()].append(seconds)
