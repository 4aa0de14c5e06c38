"""Fixtures: every test gets a fresh database, on SQLite and, when PostgreSQL answers,
again on PostgreSQL: at SAATHII_TEST_POSTGRES_URL, else (unset) the local server at
LOCAL_POSTGRES. A newcomer's plain `pytest` thus runs the PostgreSQL tests that matter
most (concurrency, locks, the app's schema) whenever a server is there; set the variable
empty to run SQLite only.

Fresh databases are copies of a template migrated once per session: a file
copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from saathii_ops.cli.app import app
from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"  # trust auth, as on CI
BACKENDS = ["sqlite", "postgresql"]
REPO_ROOT = Path(__file__).resolve().parents[1]


def _answers(url: str) -> bool:
    """The server accepts a connection to `url` (a refused port fails at once)."""
    parsed = parse_url(url)
    try:
        socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 1).close()
        psycopg2.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            dbname=parsed.database,
            connect_timeout=3,
        ).close()
    except (OSError, psycopg2.Error):
        return False
    return True


def _postgres_admin_url() -> tuple[str | None, str]:
    """The PostgreSQL server tests create their databases on, and where it came from."""
    configured = os.environ.get("SAATHII_TEST_POSTGRES_URL")
    if configured is not None:
        return configured or None, f"SAATHII_TEST_POSTGRES_URL={configured!r}"
    if _answers(LOCAL_POSTGRES):
        return (
            LOCAL_POSTGRES,
            f"the local server {LOCAL_POSTGRES} (SAATHII_TEST_POSTGRES_URL unset)",
        )
    return None, f"none: SAATHII_TEST_POSTGRES_URL unset and nothing answers at {LOCAL_POSTGRES}"


POSTGRES_ADMIN_URL, POSTGRES_SOURCE = _postgres_admin_url()
NO_POSTGRES = "no PostgreSQL server (set SAATHII_TEST_POSTGRES_URL)"


def pytest_report_header() -> str:
    return f"saathii-ops backends: sqlite, postgresql ({POSTGRES_SOURCE})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what ran on each backend, so a CI log proves both ran."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            backend = next((b for b in BACKENDS if f"[{b}" in nodeid or f"-{b}]" in nodeid), "any")
            counts.setdefault(backend, {}).setdefault(outcome, 0)
            counts[backend][outcome] += 1
    terminalreporter.section("tests per backend")
    for backend, by_outcome in sorted(counts.items()):
        terminalreporter.write_line(
            f"{backend}: " + ", ".join(f"{n} {o}" for o, n in sorted(by_outcome.items()))
        )
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    if reasons:
        terminalreporter.write_line(
            "skipped: " + "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        )


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's database, config or data directory."""
    for name in list(os.environ):
        if name.startswith("SAATHII_") and name != "SAATHII_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))  # systemd --user units


def _admin_engine() -> Engine:
    assert POSTGRES_ADMIN_URL
    return sa.create_engine(parse_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")


@dataclass
class Databases:
    """Makes fresh databases of one backend."""

    backend: str
    tmp_root: Path
    _template: str | None = None

    def _new_name(self) -> str:
        return f"saathii_test_{uuid.uuid4().hex[:12]}"

    def empty(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_root / (self._new_name() + '.db')}"
        name = self._new_name()
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return str(parse_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False))  # type: ignore[arg-type]

    def migrated(self) -> str:
        if self._template is None:
            self._template = self.empty()
            engine = make_engine(parse_url(self._template))
            schema.upgrade(engine)
            engine.dispose()
        if self.backend == "sqlite":
            target = self.tmp_root / (self._new_name() + ".db")
            shutil.copyfile(sa.make_url(self._template).database, target)  # type: ignore[arg-type]
            return f"sqlite:///{target}"
        name = self._new_name()
        template = sa.make_url(self._template).database
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return str(parse_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False))  # type: ignore[arg-type]

    def drop(self, url: str) -> None:
        if self.backend == "postgresql":
            with _admin_engine().connect() as conn:
                name = sa.make_url(url).database
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        if self._template is not None:
            self.drop(self._template)


@pytest.fixture(scope="session", params=BACKENDS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    backend: str = request.param
    if backend == "postgresql" and not POSTGRES_ADMIN_URL:
        pytest.skip(NO_POSTGRES)
    made = Databases(backend, tmp_path_factory.mktemp(f"db-{backend}"))
    yield made
    made.drop_all()


@pytest.fixture
def backend(databases: Databases) -> str:
    return databases.backend


@pytest.fixture
def db_url(databases: Databases) -> Iterator[str]:
    """A fresh database at the latest schema revision."""
    url = databases.migrated()
    yield url
    databases.drop(url)


@pytest.fixture
def empty_db_url(databases: Databases) -> Iterator[str]:
    """A fresh database with no tables at all."""
    url = databases.empty()
    yield url
    databases.drop(url)


@pytest.fixture
def app_db(empty_db_url: str, backend: str) -> str:
    """A database the app created (its DDL, PostgreSQL), then `db adopt` and `db upgrade`."""
    if backend != "postgresql":
        pytest.skip("the app's DDL is PostgreSQL")
    from tests.simulated_app import create_app_schema

    create_app_schema(empty_db_url)
    for command in (("db", "adopt"), ("db", "upgrade")):
        result = Cli(empty_db_url)(*command)
        assert result.exit_code == 0, result.stderr
    return empty_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(parse_url(db_url))
    yield engine
    engine.dispose()


@dataclass
class Cli:
    """Runs `saathii-ops` in-process through Typer's CliRunner."""

    db_url: str | None

    def __call__(self, *args: str, input: str | None = None) -> CliResult:
        argv = [*(["--database-url", self.db_url] if self.db_url else []), *args]
        result = CliRunner().invoke(app, argv, input=input, prog_name="saathii-ops")
        return CliResult(result.exit_code, result.stdout, result.stderr, result.exception)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


@pytest.fixture
def cli(db_url: str) -> Cli:
    return Cli(db_url)


@pytest.fixture
def ledger_stays_balanced(engine: Engine) -> Iterator[None]:
    """Every wallet equals its ledger before and after the test (the billing tests)."""
    from tests.billing_checks import assert_ledger_balanced

    assert_ledger_balanced(engine)
    yield
    assert_ledger_balanced(engine)


# a database of its own, flushed around each test (parallel runs each set their own)
REDIS_URL = os.environ.get("SAATHII_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """The Redis test database, flushed, and SAATHII_REDIS_URL naming it."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379 (.ci/run starts one)")
    client.flushdb()
    monkeypatch.setenv("SAATHII_REDIS_URL", REDIS_URL)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def postgresql_only(backend: str) -> None:
    """Skips the test on SQLite: locks held by another session, PostgreSQL's own SQL."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
