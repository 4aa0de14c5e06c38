"""PostgreSQL only: a row another session holds is left for the next run.

A second session (the app's statement, a DBA's open transaction) holds one row FOR UPDATE
for the whole run, with the run's statement_timeout at 2 s: each job must finish while
the row is still held (had it waited, the statement timeout would have failed the whole
run), change every other row, name the held one, and, once the row is let go, the next
run catches up exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import listener_badges, user_calls, user_status, user_wallets
from tests.billing_checks import assert_ledger_balanced, call_row, ledger_rows, status_of, wallet
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user

NOW = T0 + timedelta(minutes=30)


pytestmark = pytest.mark.usefixtures("postgresql_only")


@pytest.fixture(autouse=True)
def _statement_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAATHII_STATEMENT_TIMEOUT_SECONDS", "2")


@contextmanager
def held(engine: Engine, table: Any, **key: int) -> Iterator[None]:
    """Another session holds the row of `table` with `key` (FOR UPDATE) until the block ends."""
    with engine.connect() as holder:
        query = sa.select(table).filter_by(**key).with_for_update()
        assert holder.execute(query).all(), "the held row exists"
        try:
            yield
        finally:
            holder.rollback()


def run(cli: Cli, now: Any, *args: str) -> dict[str, Any]:
    result = cli("--now", now.isoformat(), "--json", *args)
    assert result.exit_code == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["outcome"] == "ok", document
    return document["report"]  # type: ignore[no-any-return]


def test_coins_deduct_bills_every_call_but_the_held_wallets_and_catches_up_next_run(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        callers = [add_user(s, balance=1000) for _ in range(5)]
        # each call started 4.5 minutes before NOW, the first minute paid by the app
        call_ids = [
            add_call(
                s, caller, listener, start=NOW - timedelta(minutes=4, seconds=30), coins_spent=10
            )
            for caller in callers
        ]
        s.commit()
    held_caller, held_call = callers[2], call_ids[2]

    with held(engine, user_wallets, user_id=held_caller):
        report = run(cli, NOW, "coins", "deduct")
        # finished while the wallet is still held: 4 calls billed 4 minutes each
        assert report["calls_charged"] == 4
        assert report["coins_charged"] == 160
        assert report["held_calls"] == 1
        assert report["held"] == [
            {
                "call_id": held_call,
                "held": "the caller's wallet",
                "outcome": "held by another session; next run",
            }
        ]
    assert call_row(engine, held_call).coins_spent == 10
    assert wallet(engine, held_caller) == (1000, 0)
    assert ledger_rows(engine, held_caller) == [("purchase", 1000, 0)]
    for call_id in set(call_ids) - {held_call}:
        assert call_row(engine, call_id).coins_spent == 50

    # the next run (two minutes later) charges the held call its 6 missed minutes, the
    # others their 2 new ones
    later = run(cli, NOW + timedelta(minutes=2), "coins", "deduct")
    assert later["held_calls"] == 0 and later["held"] == []
    assert later["coins_charged"] == 60 + 4 * 20
    assert call_row(engine, held_call).coins_spent == 70
    assert wallet(engine, held_caller) == (940, 0)
    assert_ledger_balanced(engine)


def test_a_call_whose_listener_wallet_is_held_is_not_settled_by_half(
    cli: Cli, engine: Engine
) -> None:
    """The caller cannot pay for the third minute: the call ends, which credits the
    listener. With the listener's wallet held, neither the charge nor the settlement
    happens; the next run does both, once."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        caller = add_user(s, balance=15)
        call_id = add_call(
            s, caller, listener, start=NOW - timedelta(minutes=2, seconds=5), coins_spent=10
        )
        s.commit()

    with held(engine, user_wallets, user_id=listener):
        report = run(cli, NOW, "coins", "deduct")
        assert report["calls_ended"] == 0 and report["coins_charged"] == 0
        assert [h["held"] for h in report["held"]] == ["the listener's wallet"]
    row = call_row(engine, call_id)
    assert (row.status, row.coins_spent, row.end_time) == ("ongoing", 10, None)
    assert ledger_rows(engine, listener) == []

    later = run(cli, NOW + timedelta(minutes=1), "coins", "deduct")
    assert later["calls_ended"] == 1
    row = call_row(engine, call_id)
    # the caller's 15 coins cover one more minute (10), the call ends paid for 2 minutes
    assert (row.status, row.coins_spent) == ("dropped", 20)
    assert wallet(engine, listener) == (0, 2)  # 2 minutes at basic 1.00
    assert_ledger_balanced(engine)


def test_calls_cleanup_leaves_a_call_whose_party_status_is_held(cli: Cli, engine: Engine) -> None:
    """Settlement clears both parties' flags: with the listener's user_status row held,
    the call is left whole for the next run; the other stale call is ended."""
    stale = NOW - timedelta(hours=1)
    with transaction(engine) as s:
        listeners = [
            add_user(s, role="listener", balance=0, online=True, busy=True) for _ in range(2)
        ]
        callers = [
            add_user(s, balance=1000, online=True, last_seen=stale, busy=True) for _ in range(2)
        ]
        calls = [
            add_call(s, c, lis, start=NOW - timedelta(minutes=20), coins_spent=210)
            for c, lis in zip(callers, listeners, strict=True)
        ]
        s.commit()

    with held(engine, user_status, user_id=listeners[0]):
        report = run(cli, NOW, "calls", "cleanup")
        assert [e["call_id"] for e in report["ended"]] == [calls[1]]
        assert report["held"] == [
            {
                "call_id": calls[0],
                "held": "the listener's user_status",
                "outcome": "held by another session; next run",
            }
        ]
    assert call_row(engine, calls[0]).status == "ongoing"
    assert status_of(engine, callers[0]) == (True, None)

    later = run(cli, NOW + timedelta(minutes=1), "calls", "cleanup")
    assert [e["call_id"] for e in later["ended"]] == [calls[0]]
    assert call_row(engine, calls[0]).coins_spent == 220  # 22 started minutes at 10
    assert status_of(engine, listeners[0]) == (False, None)
    assert_ledger_balanced(engine)


def test_presence_cleanup_marks_every_user_but_the_held_one(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        users = [add_user(s, online=True, last_seen=NOW - timedelta(hours=1)) for _ in range(5)]
        s.commit()
    held_user = users[1]

    with held(engine, user_status, user_id=held_user):
        report = run(cli, NOW, "presence", "cleanup")
        assert report["offline_ids"] == [u for u in users if u != held_user]
        assert report["held_by_another_session"] == 1
        assert report["held_ids"] == [held_user]

    later = run(cli, NOW + timedelta(minutes=1), "presence", "cleanup")
    assert later["offline_ids"] == [held_user] and later["held_ids"] == []
    with transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).where(user_status.c.is_online.is_(True))) == 0


def test_badges_assign_leaves_a_held_badge_row_for_the_next_run(cli: Cli, engine: Engine) -> None:
    today = (NOW + timedelta(hours=5, minutes=30)).date()
    with transaction(engine) as s:
        listeners = [add_user(s, role="listener") for _ in range(3)]
        for listener in listeners:
            s.execute(
                sa.insert(listener_badges).values(
                    listener_id=listener,
                    date=today,
                    badge="basic",
                    audio_rate_per_minute=1,
                    video_rate_per_minute=6,
                )
            )
        caller = add_user(s, balance=0)
        # yesterday: 70 minutes with every listener, bronze for all
        for listener in listeners:
            add_call(
                s,
                caller,
                listener,
                start=NOW - timedelta(days=1),
                status="completed",
                duration_minutes=70,
            )
        s.commit()
    held_listener = listeners[0]

    def badges_of_today() -> dict[int, str]:
        with transaction(engine) as s:
            rows = s.execute(
                sa.select(listener_badges.c.listener_id, listener_badges.c.badge).where(
                    listener_badges.c.date == today
                )
            ).all()
        return dict(rows)  # type: ignore[arg-type]

    with held(engine, listener_badges, listener_id=held_listener):
        report = run(cli, NOW, "badges", "assign")
        assert report["bronze"] == 2
        assert report["held_listener_ids"] == [held_listener]
    assert badges_of_today() == {held_listener: "basic", **{lis: "bronze" for lis in listeners[1:]}}

    later = run(cli, NOW, "badges", "assign")
    assert later["bronze"] == 3 and later["held_listener_ids"] == []
    assert badges_of_today() == dict.fromkeys(listeners, "bronze")


def test_a_held_row_never_makes_a_job_wait(cli: Cli, engine: Engine) -> None:
    """The held call's own row (the app ending it): deduction bills the rest and names it."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        callers = [add_user(s, balance=1000) for _ in range(3)]
        call_ids = [
            add_call(s, c, listener, start=NOW - timedelta(minutes=1, seconds=30), coins_spent=10)
            for c in callers
        ]
        s.commit()
    with held(engine, user_calls, call_id=call_ids[0]):
        report = run(cli, NOW, "coins", "deduct")
        assert report["calls_charged"] == 2
        assert [(h["call_id"], h["held"]) for h in report["held"]] == [(call_ids[0], "the call")]
    assert call_row(engine, call_ids[0]).coins_spent == 10
    later = run(cli, NOW, "coins", "deduct")
    assert later["calls_charged"] == 1 and later["coins_charged"] == 10
