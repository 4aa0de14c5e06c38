"""The app's Redis call cache (SPEC §14), against the Redis server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg2
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import user_calls
from saathii_ops.jobs.call_cache import MARKER
from tests.conftest import REDIS_URL, Cli
from tests.factories import T0, add_call, add_user

DOWN_URL = "redis://:secret@127.0.0.1:1/0"


@pytest.fixture
def two_calls(engine: Engine, cache: redis.Redis) -> dict[str, int]:
    """At T0: the first call owes 20 coins its caller pays; the second owes 10 its caller cannot."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        paying = add_call(
            s,
            add_user(s, balance=1000),
            listener,
            start=T0 - timedelta(seconds=150),
            coins_spent=10,
        )
        broke = add_call(
            s, add_user(s, balance=5), listener, start=T0 - timedelta(seconds=90), coins_spent=10
        )
        s.commit()
    cache.hset(f"call:{paying}", mapping={"coins_spent": 10, "listener_id": listener})
    cache.hset(f"call:{broke}", mapping={"coins_spent": 10})
    return {"paying": paying, "broke": broke, "listener": listener}


def test_billing_updates_charged_calls_and_deletes_ended_ones(
    cli: Cli, cache: redis.Redis, two_calls: dict[str, int]
) -> None:
    result = cli("--now", T0.isoformat(), "--json", "coins", "deduct")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["after_commit"] == {
        "updated": 1,
        "recreated": 0,
        "missing": 0,
        "deleted": 1,
        "repaired": False,
        "error": None,
    }
    assert cache.hgetall(f"call:{two_calls['paying']}") == {
        "coins_spent": "30",
        "listener_id": str(two_calls["listener"]),
    }
    assert not cache.exists(f"call:{two_calls['broke']}")
    assert cache.get(MARKER) == T0.isoformat()


def test_a_dry_run_or_no_redis_url_leaves_the_cache_alone(
    cli: Cli, cache: redis.Redis, two_calls: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    dry = cli("--now", T0.isoformat(), "--json", "coins", "deduct", "--dry-run")
    assert "after_commit" not in json.loads(dry.stdout)
    monkeypatch.delenv("SAATHII_REDIS_URL")
    real = cli("--now", T0.isoformat(), "--json", "coins", "deduct")
    assert "after_commit" not in json.loads(real.stdout)
    assert cache.hget(f"call:{two_calls['paying']}", "coins_spent") == "10"
    assert cache.exists(f"call:{two_calls['broke']}")


def test_redis_down_never_fails_billing_and_the_next_run_repairs(
    cli: Cli,
    engine: Engine,
    cache: redis.Redis,
    two_calls: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert cli("--now", T0.isoformat(), "coins", "deduct").exit_code == 0
    with transaction(engine) as s:  # a third call, whose caller cannot pay its second minute
        third = add_call(
            s,
            add_user(s, balance=5),
            two_calls["listener"],
            start=T0 + timedelta(seconds=10),
            coins_spent=10,
        )
        s.commit()
    cache.hset(f"call:{third}", "coins_spent", 10)

    monkeypatch.setenv("SAATHII_REDIS_URL", DOWN_URL)
    down = cli("--now", (T0 + timedelta(seconds=70)).isoformat(), "--json", "coins", "deduct")
    assert down.exit_code == 0
    doc = json.loads(down.stdout)
    assert doc["outcome"] == "ok"
    assert doc["report"]["calls_charged"] == 1 and doc["report"]["calls_ended"] == 1
    error = doc["after_commit"]["error"]
    assert error.startswith("Redis call cache at redis://:***@127.0.0.1:1/0 not updated")
    assert "secret" not in down.stdout + down.stderr
    assert "the next billing run repairs it" in caplog.text
    # billing committed; the cache is behind
    assert cache.hget(f"call:{two_calls['paying']}", "coins_spent") == "30"
    assert cache.exists(f"call:{third}")

    monkeypatch.setenv("SAATHII_REDIS_URL", REDIS_URL)
    repair = cli("--now", (T0 + timedelta(seconds=75)).isoformat(), "--json", "coins", "deduct")
    assert repair.exit_code == 0, repair.stderr
    after = json.loads(repair.stdout)["after_commit"]
    # nothing was charged at +75 s: the repair rewrote the ongoing call, deleted both ended ones
    assert after == {
        "updated": 1,
        "recreated": 0,
        "missing": 0,
        "deleted": 2,
        "repaired": True,
        "error": None,
    }
    assert cache.hget(f"call:{two_calls['paying']}", "coins_spent") == "40"
    assert not cache.exists(f"call:{third}")
    assert cache.get(MARKER) == (T0 + timedelta(seconds=75)).isoformat()


def test_only_existing_keys_are_updated_and_keep_the_apps_fields_and_ttl(
    cli: Cli, cache: redis.Redis, two_calls: dict[str, int]
) -> None:
    paying = f"call:{two_calls['paying']}"
    cache.expire(paying, 3000)
    with_key = cli("--now", T0.isoformat(), "--json", "coins", "deduct")
    assert json.loads(with_key.stdout)["after_commit"]["updated"] == 1
    assert cache.hgetall(paying) == {
        "coins_spent": "30",
        "listener_id": str(two_calls["listener"]),
    }
    assert 0 < cache.ttl(paying) <= 3000

    cache.delete(paying)  # the app's key expired
    later = (T0 + timedelta(minutes=1)).isoformat()
    without_key = cli("--now", later, "--json", "coins", "deduct")
    assert without_key.exit_code == 0, without_key.stderr
    after = json.loads(without_key.stdout)["after_commit"]
    assert (after["updated"], after["recreated"], after["missing"]) == (0, 0, 1)
    assert not cache.exists(paying)  # never a key holding coins_spent alone


def test_a_repair_recreates_a_lost_key_whole_with_what_is_left_of_the_apps_ttl(
    cli: Cli,
    engine: Engine,
    cache: redis.Redis,
    two_calls: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cli("--now", T0.isoformat(), "coins", "deduct").exit_code == 0
    monkeypatch.setenv("SAATHII_REDIS_URL", DOWN_URL)
    assert cli("--now", (T0 + timedelta(seconds=70)).isoformat(), "coins", "deduct").exit_code == 0
    cache.delete(f"call:{two_calls['paying']}")  # Redis lost it while it was down
    monkeypatch.setenv("SAATHII_REDIS_URL", REDIS_URL)

    repair = cli("--now", (T0 + timedelta(seconds=75)).isoformat(), "--json", "coins", "deduct")
    after = json.loads(repair.stdout)["after_commit"]
    assert (after["repaired"], after["updated"], after["recreated"]) == (True, 0, 1)
    with transaction(engine) as s:
        caller = s.scalar(
            sa.select(user_calls.c.user_id).where(user_calls.c.call_id == two_calls["paying"])
        )
    key = f"call:{two_calls['paying']}"
    assert cache.hgetall(key) == {
        "user_id": str(caller),
        "listener_id": str(two_calls["listener"]),
        "call_type": "audio",
        "start_time": str(int((T0 - timedelta(seconds=150)).timestamp())),  # epoch seconds
        "coins_spent": "40",
    }
    # started 225 s before the repair's "now": 7200 - 225 seconds are left
    assert 6970 <= cache.ttl(key) <= 6975


def test_the_first_run_with_redis_down_is_repaired_with_no_stamp_yet(
    cli: Cli, cache: redis.Redis, two_calls: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAATHII_REDIS_URL", DOWN_URL)
    down = cli("--now", T0.isoformat(), "--json", "coins", "deduct")
    assert down.exit_code == 0
    assert json.loads(down.stdout)["report"]["calls_ended"] == 1
    assert cache.get(MARKER) is None
    assert cache.exists(f"call:{two_calls['broke']}")  # ended, still cached

    monkeypatch.setenv("SAATHII_REDIS_URL", REDIS_URL)
    repair = cli("--now", (T0 + timedelta(seconds=5)).isoformat(), "--json", "coins", "deduct")
    assert repair.exit_code == 0, repair.stderr
    assert json.loads(repair.stdout)["after_commit"] == {
        "updated": 1,
        "recreated": 0,
        "missing": 0,
        "deleted": 1,
        "repaired": True,
        "error": None,
    }
    assert not cache.exists(f"call:{two_calls['broke']}")
    assert cache.hget(f"call:{two_calls['paying']}", "coins_spent") == "30"
    assert cache.get(MARKER) == (T0 + timedelta(seconds=5)).isoformat()


def test_a_recreated_key_is_the_apps_key_field_for_field(
    backend: str, empty_db_url: str, cache: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key the app wrote when the call started (tests/simulated_app.py), lost while
    Redis was down, comes back as the app wrote it, with what is left of its 7200 s."""
    if backend != "postgresql":
        pytest.skip("the app's DDL is PostgreSQL")
    from tests.simulated_app import SimulatedApp, create_app_schema, libpq_dsn

    create_app_schema(empty_db_url)
    cli = Cli(empty_db_url)
    for command in (("db", "adopt"), ("db", "upgrade")):
        assert cli(*command).exit_code == 0
    start = datetime.now(UTC).replace(microsecond=0)
    app = SimulatedApp(empty_db_url, cache=cache, clock=lambda: start)
    try:
        listener = app.sign_up(1, "listener")
        app.verify_listener(listener)
        caller = app.sign_up(2, "customer")
        app.purchase(caller, 300, Decimal("30.00"))
        call = app.start_call(caller, listener, "video").call_id
    finally:
        app.close()
    # the database's clock agrees with the app's to the second (the test pins both)
    conn = psycopg2.connect(libpq_dsn(empty_db_url))
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "UPDATE user_calls SET start_time = %(s)s WHERE call_id = %(c)s",
            {"s": start, "c": call},
        )
    conn.close()
    key = f"call:{call}"
    apps_key = cache.hgetall(key)
    assert apps_key["start_time"] == str(int(start.timestamp()))

    at = start + timedelta(seconds=70)  # the 2nd video minute: 60 coins
    assert cli("--now", at.isoformat(), "coins", "deduct").exit_code == 0
    monkeypatch.setenv("SAATHII_REDIS_URL", DOWN_URL)
    assert cli("--now", (at + timedelta(seconds=5)).isoformat(), "coins", "deduct").exit_code == 0
    cache.delete(key)  # Redis lost it while it was down
    monkeypatch.setenv("SAATHII_REDIS_URL", REDIS_URL)
    repair = cli("--now", (at + timedelta(seconds=10)).isoformat(), "--json", "coins", "deduct")
    assert json.loads(repair.stdout)["after_commit"]["recreated"] == 1
    assert cache.hgetall(key) == {**apps_key, "coins_spent": "120"}  # 2 video minutes
    # what is left of the app's 7200 s, 80 s after the start
    assert 7200 - 80 - 2 <= cache.ttl(key) <= 7200 - 80
