"""What saathii-ops saw of a half-ended call outlives the app's next write.

The app's end-call with the reason 'ongoing' half-ends a call (end_time set, the listener
paid in coins, status left 'ongoing'); ending it again pays the listener a second time
and sets status 'completed'. The app's writes are plain SQL here, as the app sends them.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_half_ended_calls
from tests.conftest import Cli
from tests.support.half_ended import (
    ENDED_AGAIN_AT,
    HALF_ENDED_AT,
    LATER,
    NOW,
    app_ends_call,
    half_ended_call,
)


def observations(engine: Engine) -> list[tuple[Any, ...]]:
    o = ops_half_ended_calls.c
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(o.call_id, o.end_time, o.coins_spent, o.listener_money_earned)
        ).all()
    return [tuple(row) for row in rows]


def audit(cli: Cli, now: datetime, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("--now", now.isoformat(), "--json", "wallets", "audit", *args)
    return result.exit_code, json.loads(result.stdout)["report"]


def test_a_dry_run_records_nothing_a_real_run_records_the_first_version(
    cli: Cli, engine: Engine
) -> None:
    ids = half_ended_call(engine)
    assert cli("--now", NOW.isoformat(), "coins", "deduct", "--dry-run").exit_code == 1
    assert cli("--now", NOW.isoformat(), "wallets", "audit", "--dry-run").exit_code == 1
    assert observations(engine) == []

    # billing's real run skips it (exit 1) and records what it saw
    assert cli("--now", NOW.isoformat(), "coins", "deduct").exit_code == 1
    first = [(ids["call"], HALF_ENDED_AT, 100, 10)]
    assert observations(engine) == first
    with transaction(engine) as s:
        seen = s.execute(sa.select(ops_half_ended_calls.c.seen_at, ops_half_ended_calls.c.run_uuid))
        seen_at, run_uuid = seen.one()
    assert seen_at is not None and run_uuid is not None

    # the app half-ends it again: the first version stays, the change is named
    app_ends_call(engine, ids["call"], reason="ongoing", at=NOW, coins=10)
    assert cli("--now", LATER.isoformat(), "wallets", "audit").exit_code == 1
    assert cli("--now", LATER.isoformat(), "coins", "deduct").exit_code == 1
    assert observations(engine) == first
    code, report = audit(cli, LATER)
    assert code == 1
    assert (report["calls_half_ended"], report["calls_ended_again_after_half_end"]) == (1, 1)
    (again,) = report["ended_again_after_half_end"]
    assert (again["seen_end_time"], again["end_time_now"]) == (
        HALF_ENDED_AT.isoformat(),
        NOW.isoformat(),
    )


def test_the_audit_records_a_half_ended_call_it_sees_first(cli: Cli, engine: Engine) -> None:
    ids = half_ended_call(engine)
    assert cli("--now", NOW.isoformat(), "wallets", "audit").exit_code == 1
    assert observations(engine) == [(ids["call"], HALF_ENDED_AT, 100, 10)]


def test_a_half_ended_call_the_app_ends_again_is_named_and_status_exits_1(
    cli: Cli, engine: Engine
) -> None:
    ids = half_ended_call(engine)
    assert cli("--now", NOW.isoformat(), "coins", "deduct").exit_code == 1  # sees it

    # the client ends it again: paid a second time, status 'completed'
    app_ends_call(engine, ids["call"], reason="completed", at=ENDED_AGAIN_AT, coins=10)

    code, report = audit(cli, LATER)
    assert code == 1
    assert (
        report["calls_half_ended"],
        report["calls_ended_again_after_half_end"],
        report["wallets_off"],
    ) == (0, 1, 0)
    (again,) = report["ended_again_after_half_end"]
    seen_at = again.pop("seen_at")
    assert seen_at is not None
    assert again == {
        "call_id": ids["call"],
        "finding": "ended again by the app after it half-ended it: the listener may have "
        "been paid twice",
        "caller_id": ids["caller"],
        "listener_id": ids["listener"],
        "seen_status": "ongoing",
        "status_now": "completed",
        "seen_end_time": HALF_ENDED_AT.isoformat(),
        "end_time_now": ENDED_AGAIN_AT.isoformat(),
        "seen_coins_spent": 100,
        "coins_spent_now": 100,
        "seen_listener_money_earned": 10,
        "listener_money_earned_now": 10,
    }

    human = cli("--now", LATER.isoformat(), "wallets", "audit")
    assert human.exit_code == 1
    assert "ended again by the app after it half-ended it" in human.stdout

    status = cli("--now", LATER.isoformat(), "--json", "status")
    assert status.exit_code == 1
    problems = json.loads(status.stdout)["problems"]
    assert any(
        p.startswith("wallets-audit's last run")
        and p.endswith("exited 1: calls ended again after half end 1")
        for p in problems
    ), problems


def test_two_runs_recording_one_call_at_once_both_succeed_one_row(
    engine: Engine, backend: str
) -> None:
    """PostgreSQL: a second run inserting the same observation waits for the first run's
    uncommitted row, then records nothing (ON CONFLICT DO NOTHING), without an error."""
    if backend != "postgresql":
        pytest.skip("two writers at once: PostgreSQL")
    from saathii_ops.jobs import half_ended

    ids = half_ended_call(engine)
    recorded: list[int] = []
    with transaction(engine) as first:
        assert half_ended.record(first, None) == 1

        def second_run() -> None:
            with transaction(engine) as second:
                recorded.append(half_ended.record(second, None))
                second.commit()

        thread = threading.Thread(target=second_run)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive()  # waiting for the first run's row
        first.commit()
    thread.join(timeout=10)
    assert recorded == [0]
    assert observations(engine) == [(ids["call"], HALF_ENDED_AT, 100, 10)]
