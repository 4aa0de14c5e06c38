"""The settlement record (SPEC §5): one ops_settlements row per call saathii-ops
settles, written in the settlement's transaction; and the calls billing leaves alone
because the app half-ended them or we settled them before."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import (
    ops_job_runs,
    ops_settlements,
    user_calls,
    user_transactions,
    user_wallets,
)
from tests.billing_checks import call_row, money_tables
from tests.conftest import Cli
from tests.factories import T0, add_badge, add_call, add_user

NOW = T0 + timedelta(hours=1)  # 07:00 UTC, 12:30 on 2026-11-29 in Kolkata


def _records(engine: Engine) -> list[Any]:
    with transaction(engine) as s:
        return list(s.execute(sa.select(ops_settlements).order_by(ops_settlements.c.call_id)))


@pytest.fixture
def settled(cli: Cli, engine: Engine) -> dict[str, Any]:
    """Two calls of one silver listener (1.50 / 8.50) that coins deduct ends at NOW, and a
    third whose caller pays."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        add_badge(s, listener, date(2026, 11, 29), "silver", "1.50", "8.50")
        # 7m30s in, 10 spent, 25 coins left: charged 20 (two minutes), 3 paid minutes: 4.50
        audio = add_call(
            s, add_user(s, balance=25), listener, start=NOW - timedelta(seconds=450), coins_spent=10
        )
        # 2m05s in, 60 spent, nothing left: 1 paid minute, 8.50
        video = add_call(
            s,
            add_user(s, balance=0),
            listener,
            start=NOW - timedelta(seconds=125),
            call_type="video",
            coins_spent=60,
        )
        add_call(s, add_user(s, balance=500), listener, start=NOW - timedelta(seconds=65))
        s.commit()
    result = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")
    assert result.exit_code == 0, result.stderr
    return {"listener": listener, "audio": audio, "video": video, "doc": json.loads(result.stdout)}


def test_each_settled_call_is_recorded_as_settled_and_paid(
    engine: Engine, settled: dict[str, Any]
) -> None:
    with transaction(engine) as s:
        run_uuid = s.scalar(sa.select(ops_job_runs.c.run_uuid))
        wallet_id = s.scalar(
            sa.select(user_wallets.c.wallet_id).where(user_wallets.c.user_id == settled["listener"])
        )
        earn_rows = dict(
            s.execute(
                sa.select(
                    user_transactions.c.transaction_id, user_transactions.c.money_change
                ).where(
                    user_transactions.c.wallet_id == wallet_id,
                    user_transactions.c.tx_type == "earn",
                )
            ).all()
        )
    assert run_uuid is not None and len(run_uuid) == 32
    records = _records(engine)
    assert [(r.call_id, r.run_uuid) for r in records] == [
        (settled["audio"], run_uuid),
        (settled["video"], run_uuid),
    ]
    assert [
        (
            r.end_time,
            r.duration_seconds,
            r.duration_minutes,
            r.coins_spent,
            r.listener_money_earned,
            r.paid_minutes,
            r.rate_per_minute,
            r.earnings,
            r.listener_wallet_id,
        )
        for r in records
    ] == [
        (NOW, 450, 7, 30, 4, 3, Decimal("1.50"), Decimal("4.50"), wallet_id),
        (NOW, 125, 2, 60, 8, 1, Decimal("8.50"), Decimal("8.50"), wallet_id),
    ]
    assert all(r.settled_at is not None for r in records)
    # each record names its own earn row
    assert {r.earn_transaction_id: r.earnings for r in records} == earn_rows
    for record in records:
        row = call_row(engine, record.call_id)
        assert (row.status, row.end_time, row.coins_spent, row.listener_money_earned) == (
            "dropped",
            record.end_time,
            record.coins_spent,
            record.listener_money_earned,
        )


def test_a_second_settlement_of_a_call_is_impossible(
    engine: Engine, settled: dict[str, Any]
) -> None:
    (first, _) = _records(engine)
    with transaction(engine) as s, pytest.raises(IntegrityError):
        s.execute(sa.insert(ops_settlements).values(dict(first._mapping)))


def test_a_settled_call_the_app_set_ongoing_again_is_never_settled_twice(
    cli: Cli, engine: Engine, settled: dict[str, Any]
) -> None:
    with transaction(engine) as s:
        s.execute(
            sa.update(user_calls)
            .where(user_calls.c.call_id == settled["audio"])
            .values(status="ongoing", end_time=None)
        )
        s.commit()
    before = money_tables(engine)
    result = cli("--now", (NOW + timedelta(minutes=5)).isoformat(), "--json", "coins", "deduct")
    assert result.exit_code == 1
    report = json.loads(result.stdout)["report"]
    assert report["skipped"] == [
        {
            "call_id": settled["audio"],
            "problem": "settled by saathii-ops before (the app changed it since)",
        }
    ]
    assert settled["audio"] not in [c["call_id"] for c in report["ended"]]
    assert (
        call_row(engine, settled["audio"])
        == before["user_calls"][[r[0] for r in before["user_calls"]].index(settled["audio"])]
    )
    assert len(_records(engine)) == 2


def test_coins_deduct_and_calls_cleanup_leave_a_half_ended_call_untouched(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=100, online=True, last_seen=NOW, wait_time=0)
        listener = add_user(s, role="listener", balance=0, online=True, last_seen=NOW)
        half = add_call(s, caller, listener, start=NOW - timedelta(minutes=5), coins_spent=10)
        s.execute(sa.update(user_calls).where(user_calls.c.call_id == half).values(end_time=NOW))
        s.commit()
    before = money_tables(engine)
    for command in (("coins", "deduct"), ("calls", "cleanup")):
        result = cli("--now", NOW.isoformat(), "--json", *command)
        assert result.exit_code == 1
        report = json.loads(result.stdout)["report"]
        assert report["skipped"] == [
            {"call_id": half, "problem": "end_time is set: half-ended by the app"}
        ]
        assert (report["half_ended_calls"], report["coins_charged"], report["ended"]) == (
            1,
            0,
            [],
        )
    assert money_tables(engine) == before
    assert _records(engine) == []
    human = cli("--now", NOW.isoformat(), "coins", "deduct")
    assert f"call_id={half}" in human.stdout and "half-ended by the app" in human.stdout
