"""A plain `pip install .` (no extras) runs every command: the Redis call cache's package
is imported only when a Redis URL is configured, and nothing after a run's commit can turn
it into an "unexpected" exit."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_runs, user_wallets
from saathii_ops.runtime import registry
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user


@pytest.fixture
def without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a plain install: `import redis` fails (None in sys.modules makes it raise),
    and no module that imported it earlier in this test session is reused."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "saathii_ops.jobs.call_cache", raising=False)


def _one_call(engine: Engine) -> tuple[int, int]:
    """At T0 a call of 150 s owes 20 coins more (30 due, 10 spent); its caller has 1000."""
    with transaction(engine) as s:
        caller = add_user(s, balance=1000)
        call = add_call(
            s,
            caller,
            add_user(s, role="listener", balance=0),
            start=T0 - timedelta(seconds=150),
            coins_spent=10,
        )
        s.commit()
    return caller, call


def _balance(engine: Engine, user_id: int) -> int:
    with transaction(engine) as s:
        return int(
            s.scalar(
                sa.select(user_wallets.c.balance_coins).where(user_wallets.c.user_id == user_id)
            )
        )


@pytest.mark.usefixtures("without_redis")
@pytest.mark.parametrize("command", [("coins", "deduct"), ("calls", "cleanup")])
def test_billing_jobs_run_without_the_redis_package(
    cli: Cli, engine: Engine, command: tuple[str, str]
) -> None:
    caller, _ = _one_call(engine)
    result = cli("--now", T0.isoformat(), "--json", *command)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "ok"
    assert doc["warning"] is None
    assert "after_commit" not in doc
    assert result.stderr == ""
    if command == ("coins", "deduct"):
        assert _balance(engine, caller) == 980


@pytest.mark.usefixtures("without_redis")
def test_the_demo_runs_without_the_redis_package() -> None:
    result = Cli(None)("demo")
    assert result.exit_code == 0, result.stderr
    assert "unexpected" not in result.stdout + result.stderr
    assert "status: healthy" in result.stdout


def test_resolving_the_after_commit_step_is_part_of_the_guard(
    cli: Cli, engine: Engine, cache: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis URL is set but the cache's module cannot be imported: the committed run
    stands, ok and exit 0, with the failure as its warning."""
    caller, _ = _one_call(engine)

    resolve = registry._resolve

    def missing(reference: str) -> object:
        if reference == registry.SYNC_CALL_CACHE.step:
            raise ModuleNotFoundError("No module named 'redis'")
        return resolve(reference)

    monkeypatch.setattr(registry, "_resolve", missing)
    result = cli("--now", T0.isoformat(), "--json", "coins", "deduct")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "ok"
    assert doc["warning"] == "after the commit: ModuleNotFoundError: No module named 'redis'"
    assert "unexpected" not in result.stderr
    assert _balance(engine, caller) == 980
    with transaction(engine) as s:
        assert s.scalars(sa.select(ops_job_runs.c.outcome)).all() == ["ok"]
