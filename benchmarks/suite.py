"""The benchmark suite: each job as users run it (the whole `saathii-ops` process) against a
per-row reference (benchmarks.reference) and the floor (benchmarks.floor: the fewest
hand-written SQL statements, run with psql), on identical fresh copies of one realistic
population (benchmarks.population), alternating and repeated. Before any time is
reported, every run of a case must have left the same database state: balances, ledger
sums per wallet and type, call rows, presence, badges.

    python -m benchmarks run --scale small [--repeat 3] [--json FILE]

Not a test: nothing here asserts a time (tests/jobs/test_benchmark_smoke.py runs the tiny scale and
asserts equal states only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from benchmarks import floor, population
from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url
from saathii_ops.db.tables import APP_TABLES

# the population's "now"; a run is at NOW + its case's `later`
NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# the per-row reference runs at most at this size: above it, it takes minutes a run
REFERENCE_MAX = 10_000
# a population of this many ongoing calls or more is copied file by file
LARGE = 50_000
IMPLEMENTATIONS = ("project", "reference", "floor")
SAATHII_OPS = str(Path(sys.executable).parent / "saathii-ops")
REPO = Path(__file__).resolve().parents[1]  # `python -m benchmarks.reference` runs from here


@dataclass(frozen=True)
class Population:
    ongoing: int
    past_calls: int = 3
    expired: float = 0.0
    behind: bool = True
    short: int = 0  # every short-th caller cannot pay 7 minutes (benchmarks.population)


@dataclass(frozen=True)
class Case:
    job: str  # the registry's name
    command: tuple[str, ...]
    label: str
    size: int
    unit: str
    population: Population
    later: timedelta = timedelta(0)
    dialect: str = "postgresql"

    @property
    def name(self) -> str:
        return f"{self.label} {self.size:,} {self.unit} ({self.dialect})"

    @property
    def now(self) -> datetime:
        return NOW + self.later

    @property
    def runs_reference(self) -> bool:
        return self.size <= REFERENCE_MAX and self.job in REFERENCE_JOBS

    @property
    def runs_floor(self) -> bool:
        return self.dialect == "postgresql"


REFERENCE_JOBS = ("coins-deduct", "calls-cleanup", "presence-cleanup", "badges-assign")


def coins(n: int, minutes: int, dialect: str = "postgresql") -> Case:
    return Case(
        "coins-deduct",
        ("coins", "deduct"),
        f"coins deduct, {minutes}-minute run",
        n,
        "ongoing calls",
        Population(n),
        later=timedelta(minutes=minutes),
        dialect=dialect,
    )


def settling(n: int, dialect: str = "postgresql") -> Case:
    """Issue 23's settlement-heavy catch-up: 3 users and 5 past calls per ongoing call, and
    about one call in six runs out of coins in the 7 minutes and is settled."""
    return Case(
        "coins-deduct",
        ("coins", "deduct"),
        "coins deduct, 7-minute run (a sixth run out)",
        n,
        "ongoing calls",
        Population(n, past_calls=5, short=7),
        later=timedelta(minutes=7),
        dialect=dialect,
    )


def cleanup(n: int, dialect: str = "postgresql") -> Case:
    return Case(
        "calls-cleanup",
        ("calls", "cleanup"),
        "calls cleanup, a tenth expired",
        n,
        "ongoing calls",
        Population(n, expired=0.1),
        dialect=dialect,
    )


def presence(users: int, dialect: str = "postgresql") -> Case:
    return Case(
        "presence-cleanup",
        ("presence", "cleanup"),
        "presence cleanup",
        users,
        "users",
        Population(users // 3, behind=False),
        dialect=dialect,
    )


def badges(listeners: int, dialect: str = "postgresql") -> Case:
    return Case(
        "badges-assign",
        ("badges", "assign"),
        "badges assign, 20 past calls each",
        listeners,
        "listeners",
        Population(listeners, past_calls=20),
        dialect=dialect,
    )


def audit(wallets: int) -> Case:
    return Case(
        "wallets-audit",
        ("wallets", "audit"),
        "wallets audit",
        wallets,
        "wallets",
        Population(wallets // 3, behind=False),
    )


SCALES: dict[str, list[Case]] = {
    "tiny": [
        coins(300, 1),
        coins(300, 7),
        settling(300),
        cleanup(300),
        presence(900),
        badges(300),
        audit(900),
        coins(300, 7, "sqlite"),
        cleanup(300, "sqlite"),
        presence(900, "sqlite"),
        badges(300, "sqlite"),
    ],
    "small": [
        coins(1_000, 1),
        coins(1_000, 7),
        coins(10_000, 1),
        coins(10_000, 7),
        cleanup(10_000),
        badges(10_000),
        presence(100_000),
        coins(1_000, 7, "sqlite"),
        coins(10_000, 7, "sqlite"),
        cleanup(10_000, "sqlite"),
        badges(10_000, "sqlite"),
    ],
    "medium": [
        coins(20_000, 1),
        coins(20_000, 7),
        coins(100_000, 1),
        coins(100_000, 7),
        settling(20_000),
        settling(100_000),
        cleanup(100_000),
        badges(100_000),
    ],
    "large": [
        coins(200_000, 1),
        coins(200_000, 7),
        presence(1_000_000),
        audit(1_000_000),
    ],
}


# --- the database state ------------------------------------------------------------

# what every implementation must leave the same: the app's tables, not the project's own
# records (ops_job_runs, ops_settlements), nor updated_at and the ledger's row order
STATE_SQL = {
    "wallets": "SELECT wallet_id, user_id, balance_coins, withdrawable_money FROM user_wallets",
    "ledger": "SELECT wallet_id, tx_type, count(*), sum(coins_change), sum(money_change) "
    "FROM user_transactions GROUP BY wallet_id, tx_type",
    "calls": "SELECT call_id, status, coins_spent, end_time, duration_seconds, "
    "duration_minutes, listener_money_earned FROM user_calls",
    "statuses": "SELECT user_id, is_online, last_seen, is_busy, wait_time FROM user_status",
    "badges": "SELECT listener_id, date, badge, audio_rate_per_minute, video_rate_per_minute "
    "FROM listener_badges",
}


def state(engine: Engine) -> dict[str, str]:
    """A digest of each part of the state (PostgreSQL: summed row hashes, in the server)."""
    digests = {}
    with engine.connect() as conn:
        for part, query in STATE_SQL.items():
            if engine.dialect.name == "postgresql":
                count, total = conn.execute(
                    sa.text(
                        f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)"
                        f" FROM ({query}) t"
                    )
                ).one()
                digests[part] = f"{count}:{total}"
            else:
                digest = hashlib.sha256()
                rows = sorted(tuple(_plain(v) for v in row) for row in conn.execute(sa.text(query)))
                for row in rows:
                    digest.update(repr(row).encode())
                digests[part] = f"{len(rows)}:{digest.hexdigest()[:16]}"
    return digests


def _plain(value: Any) -> Any:
    """SQLite keeps NUMERIC as a float and times as text: compare values, not spellings."""
    if isinstance(value, float | Decimal):
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    return value


# --- databases ---------------------------------------------------------------------


@dataclass
class Databases:
    """Fresh databases for a run: a template per population, a copy per run."""

    server_url: str
    prefix: str
    workdir: Path

    def __post_init__(self) -> None:
        self.server = parse_url(self.server_url)
        self.admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT")

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(sql)

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def template(self, pop: Population, dialect: str) -> Iterator[str]:
        """A PostgreSQL template database of the population (its name), or an SQLite file
        copied from one (its path)."""
        name = f"{self.prefix}tpl"
        self.drop(name)
        self._execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(self.server.set(database=name))
        try:
            schema.upgrade(engine)
            population.fill(
                engine,
                NOW,
                ongoing=pop.ongoing,
                past_calls=pop.past_calls,
                expired=pop.expired,
                behind=pop.behind,
                short=pop.short,
            )
            if dialect == "sqlite":
                path = self.workdir / "template.db"
                path.unlink(missing_ok=True)
                _copy_to_sqlite(engine, path)
                engine.dispose()
                yield str(path)
            else:
                engine.dispose()
                yield name
        finally:
            engine.dispose()
            self.drop(name)

    @contextmanager
    def copy(self, template: str, dialect: str, *, large: bool = False) -> Iterator[URL]:
        """`large`: copied file by file (one checkpoint) rather than through the WAL."""
        if dialect == "sqlite":
            path = self.workdir / "run.db"
            shutil.copyfile(template, path)
            try:
                yield sa.make_url(f"sqlite:///{path}")
            finally:
                path.unlink(missing_ok=True)
            return
        name = f"{self.prefix}run"
        self.drop(name)
        strategy = " STRATEGY FILE_COPY" if large else ""
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        try:
            yield self.server.set(database=name)
        finally:
            self.drop(name)

    def state_of(self, template: str, dialect: str) -> dict[str, str]:
        url = sa.make_url(f"sqlite:///{template}") if dialect == "sqlite" else None
        engine = make_engine(url or self.server.set(database=template))
        try:
            return state(engine)
        finally:
            engine.dispose()

    def close(self) -> None:
        self.admin.dispose()


def _copy_to_sqlite(source: Engine, path: Path) -> None:
    target = make_engine(sa.make_url(f"sqlite:///{path}"))
    schema.upgrade(target)
    with source.connect() as read, target.begin() as write:
        for t in APP_TABLES:  # in foreign-key order
            rows = read.execution_options(yield_per=20_000).execute(sa.select(t))
            for batch in rows.partitions():
                write.execute(sa.insert(t), [dict(r._mapping) for r in batch])
    target.dispose()


# --- running -----------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float


def _timed(argv: Sequence[str], log: Path) -> Timing:
    """Run `argv` to completion, its output appended to `log` (as cron does): wall time
    and the process's peak resident set size (by GNU time: a child forked from this
    process would start with this process's own high-water mark)."""
    rss = log.with_suffix(".rss")
    with log.open("ab") as out:
        started = time.monotonic()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(rss), *argv],
            stdout=out,
            stderr=out,
            cwd=REPO,
        )
        seconds = time.monotonic() - started
    if done.returncode not in (0, 1):  # 1: a job that found something (none is expected)
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{argv[0]} exited {done.returncode}:\n" + "\n".join(tail))
    return Timing(seconds, int(rss.read_text().split()[-1]) / 1024)


def _argv(implementation: str, case: Case, url: URL, workdir: Path) -> list[str]:
    rendered = url.render_as_string(hide_password=False)
    now = case.now.isoformat()
    if implementation == "project":
        return [SAATHII_OPS, "--database-url", rendered, "--now", now, *case.command]
    if implementation == "reference":
        return [sys.executable, "-m", "benchmarks.reference", case.job, rendered, now]
    script = workdir / f"{case.job}.sql"
    script.write_text(floor.sql(case.job))
    libpq = rendered.replace("postgresql+psycopg2://", "postgresql://")
    variables = [f"{k}={v}" for k, v in floor.variables(case.job, case.now).items()]
    return [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        *(a for v in variables for a in ("-v", v)),
        "-d",
        libpq,
        "-f",
        str(script),
    ]


@dataclass
class Result:
    case: str
    job: str
    dialect: str
    size: int
    unit: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    states_equal: bool = True
    changed: bool = False  # the runs' state differs from the population's
    states: dict[str, dict[str, str]] = field(default_factory=dict)

    def best(self, implementation: str) -> float | None:
        times = self.seconds.get(implementation)
        return min(times) if times else None

    def median(self, implementation: str) -> float | None:
        times = self.seconds.get(implementation)
        return statistics.median(times) if times else None


def run_case(
    case: Case, databases: Databases, template: str, repeat: int, say: Callable[[str], None]
) -> Result:
    implementations = [
        i
        for i in IMPLEMENTATIONS
        if i == "project"
        or (i == "reference" and case.runs_reference)
        or (i == "floor" and case.runs_floor)
    ]
    result = Result(case.name, case.job, case.dialect, case.size, case.unit)
    result.states["population"] = databases.state_of(template, case.dialect)
    first_state: dict[str, str] | None = None
    log = databases.workdir / "output.log"
    for repetition in range(repeat):
        # alternating: each repetition starts with the next implementation
        shift = repetition % len(implementations)
        for implementation in implementations[shift:] + implementations[:shift]:
            large = case.population.ongoing >= LARGE
            with databases.copy(template, case.dialect, large=large) as url:
                timing = _timed(_argv(implementation, case, url, databases.workdir), log)
                engine = make_engine(url)
                try:
                    after = state(engine)
                finally:
                    engine.dispose()
            result.seconds.setdefault(implementation, []).append(timing.seconds)
            result.peak_rss_mb[implementation] = max(
                result.peak_rss_mb.get(implementation, 0.0), timing.peak_rss_mb
            )
            result.states[f"{implementation} #{repetition + 1}"] = after
            if first_state is None:
                first_state = after
                result.changed = after != result.states["population"]
            elif after != first_state:
                result.states_equal = False
                differ = [k for k in after if after[k] != first_state[k]]
                say(f"  STATES DIFFER: {implementation} #{repetition + 1}: {', '.join(differ)}")
            say(
                f"  {implementation:9} #{repetition + 1}: {timing.seconds:8.2f} s"
                f"  {timing.peak_rss_mb:6.1f} MB"
            )
    return result


def run(
    scales: Sequence[str],
    *,
    repeat: int,
    server_url: str = SERVER_URL,
    prefix: str = "bench_",
    only: str | None = None,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    done: Callable[[list[Result]], None] = lambda results: None,
) -> list[Result]:
    """`only`: cases whose name contains one of its '|'-separated texts. `done` is called
    with the results so far after each case (the JSON is written as it goes)."""
    wanted = only.split("|") if only else None
    cases = [
        c
        for scale in scales
        for c in SCALES[scale]
        if wanted is None or any(text in c.name for text in wanted)
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="saathii-bench-") as workdir:
        databases = Databases(server_url, prefix, Path(workdir))
        try:
            # cases of one population and dialect share its template
            by_template: dict[tuple[Population, str], list[Case]] = {}
            for case in cases:
                by_template.setdefault((case.population, case.dialect), []).append(case)
            for (pop, dialect), group in by_template.items():
                say(f"building {pop} for {dialect}")
                started = time.monotonic()
                with databases.template(pop, dialect) as template:
                    say(f"  built in {time.monotonic() - started:.1f} s")
                    for case in group:
                        say(case.name)
                        results.append(run_case(case, databases, template, repeat, say))
                        done(results)
        finally:
            databases.close()
    return results


# --- the report --------------------------------------------------------------------


def _cell(result: Result, implementation: str, why_not: str) -> str:
    best, median = result.best(implementation), result.median(implementation)
    if best is None or median is None:
        return why_not
    return f"{best:.2f} / {median:.2f}"


def table_text(results: Sequence[Result]) -> str:
    """Times in seconds, min / median of the repetitions; ratios of the mins."""
    header = (
        "| case | project s (min / median) | reference s | floor s | project/floor "
        "| reference/project | peak RSS MB |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in results:
        if not r.states_equal:
            lines.append(f"| {r.case} | STATES DIFFER: no times | | | | | |")
            continue
        project, reference, floor_ = r.best("project"), r.best("reference"), r.best("floor")
        not_run = f"not run (> {REFERENCE_MAX:,})" if r.job in REFERENCE_JOBS else "not written"
        lines.append(
            f"| {r.case} | {_cell(r, 'project', '-')} "
            f"| {_cell(r, 'reference', not_run)} "
            f"| {_cell(r, 'floor', 'not written (SQLite)')} "
            f"| {f'{project / floor_:.2f}x' if project and floor_ else '-'} "
            f"| {f'{reference / project:.1f}x' if project and reference else '-'} "
            f"| {r.peak_rss_mb.get('project', 0):.0f} |"
        )
    return "\n".join(lines)


def write_json(results: Sequence[Result], path: Path, argv: Sequence[str]) -> None:
    path.write_text(
        json.dumps(
            {
                "command": list(argv),
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
        + "\n"
    )


def machine() -> dict[str, Any]:
    with Path("/proc/meminfo").open() as meminfo:
        memory_kb = int(meminfo.readline().split()[1])
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    server = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "psql": server,
        "python": sys.version.split()[0],
    }
