"""Call cleanup (SPEC §6): the three expiry rules, billing before settling, dry-run.

Limits: a party is stale after 10 minutes without last_seen; the longest call
is 240 minutes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.billing.report import BillingReport
from saathii_ops.db.engine import transaction
from saathii_ops.jobs import call_cleanup
from saathii_ops.settings import Settings
from tests.billing_checks import (
    call_row,
    ledger_rows,
    money_tables,
    run_service,
    status_of,
    wallet,
)
from tests.factories import T0, add_call, add_user, run_context

NOW = T0 + timedelta(hours=6)
FRESH = NOW - timedelta(minutes=1)


pytestmark = pytest.mark.usefixtures("ledger_stays_balanced")


def cleanup(engine: Engine, now: datetime = NOW, *, apply: bool = True) -> BillingReport:
    return run_service(engine, call_cleanup.cleanup, now, apply=apply)


def paid_up(elapsed: timedelta, rate: int = 10) -> int:
    """coins_spent of a call billed up to NOW"""
    return rate * (int(elapsed.total_seconds()) // 60 + 1)


def add_pair_call(
    s: Any,
    *,
    elapsed: timedelta = timedelta(minutes=5),
    caller_seen: datetime | None = FRESH,
    listener_seen: datetime | None = FRESH,
    caller_wait: int | None = 4,
    listener_wait: int | None = None,
    balance: int = 1000,
    coins_spent: int | None = None,
) -> int:
    """A call between a new caller and a new listener; a `None` last_seen means no
    user_status row at all. Paid up to NOW unless `coins_spent` says otherwise."""

    def party(seen: datetime | None, wait: int | None, **kw: Any) -> int:
        if seen is None:
            return add_user(s, **kw)
        return add_user(s, online=True, last_seen=seen, busy=True, wait_time=wait, **kw)

    caller = party(caller_seen, caller_wait, balance=balance)
    listener = party(listener_seen, listener_wait, role="listener", balance=0)
    spent = paid_up(elapsed) if coins_spent is None else coins_spent
    return add_call(s, caller, listener, start=NOW - elapsed, coins_spent=spent)


@pytest.fixture
def calls_by_fate(engine: Engine) -> dict[str, int]:
    stale = NOW - timedelta(minutes=10, seconds=1)
    limit = NOW - timedelta(minutes=10)
    with transaction(engine) as s:
        ids = {
            "healthy": add_pair_call(s),
            "healthy_but_owing": add_pair_call(s, coins_spent=10),
            "caller_stale": add_pair_call(s, caller_seen=stale),
            "caller_seen_at_the_limit": add_pair_call(s, caller_seen=limit),
            "listener_stale": add_pair_call(s, listener_seen=NOW - timedelta(minutes=30)),
            "caller_without_status": add_pair_call(s, caller_seen=None),
            "listener_without_status": add_pair_call(s, listener_seen=None),
            "too_long": add_pair_call(s, elapsed=timedelta(minutes=240, seconds=1)),
            "exactly_longest": add_pair_call(s, elapsed=timedelta(minutes=240)),
            "wait_time_zero": add_pair_call(s, caller_wait=0),
            "wait_time_negative": add_pair_call(s, caller_wait=-2),
            "wait_time_one": add_pair_call(s, caller_wait=1),
            "listener_wait_time_zero": add_pair_call(s, listener_wait=0),
            "stale_and_too_long": add_pair_call(
                s, elapsed=timedelta(hours=5), caller_seen=stale, listener_seen=stale
            ),
        }
        s.commit()
    return ids


def test_each_rule_ends_the_right_calls_and_only_those(
    engine: Engine, calls_by_fate: dict[str, int]
) -> None:
    ids = calls_by_fate

    report = cleanup(engine)

    assert {b.call_id: b.reasons for b in report.ended} == {
        ids["caller_stale"]: ["caller_stale"],
        ids["listener_stale"]: ["listener_stale"],
        ids["too_long"]: ["too_long"],
        ids["wait_time_zero"]: ["wait_time_up"],
        ids["wait_time_negative"]: ["wait_time_up"],
        ids["stale_and_too_long"]: ["caller_stale", "listener_stale", "too_long"],
    }
    assert all(b.coins_charged == 0 for b in report.ended)
    assert (report.calls_charged, report.coins_charged) == (0, 0)
    ended = {b.call_id for b in report.ended}
    for name, call_id in ids.items():
        row = call_row(engine, call_id)
        if call_id in ended:
            assert (row.status, row.end_time) == ("dropped", NOW), name
        else:
            assert (row.status, row.end_time, row.coins_spent) == (
                "ongoing",
                None,
                paid_up(timedelta(minutes=5) if name != "exactly_longest" else timedelta(hours=4))
                if name != "healthy_but_owing"
                else 10,
            ), name
    # 6 minutes paid on a 5-minute call: 6.00; 241 minutes at 240:01; 301 at 5:00:00
    earnings = {b.call_id: b.listener_earnings for b in report.ended}
    assert earnings[ids["caller_stale"]] == Decimal("6.00")
    assert earnings[ids["too_long"]] == Decimal("241.00")
    assert earnings[ids["stale_and_too_long"]] == Decimal("301.00")
    assert report.calls_ended == 6
    assert report.listener_earnings == Decimal("6.00") * 4 + Decimal("542.00")


def test_owed_minutes_are_billed_before_the_call_ends(engine: Engine) -> None:
    with transaction(engine) as s:
        call = add_pair_call(
            s,
            elapsed=timedelta(minutes=4, seconds=20),
            caller_seen=NOW - timedelta(minutes=12),
            coins_spent=20,
            balance=100,
        )
        s.commit()
    caller, listener = call_row(engine, call).user_id, call_row(engine, call).listener_id

    (bill,) = cleanup(engine).ended

    # due 50, spent 20: 30 more, then 5 paid minutes at 1.00
    assert (bill.coins_charged, bill.minutes_charged, bill.coins_spent) == (30, 3, 50)
    assert (bill.reasons, bill.listener_earnings) == (["caller_stale"], Decimal("5.00"))
    assert ledger_rows(engine, caller) == [
        ("purchase", 100, Decimal("0.00")),
        ("spend", -30, Decimal("0.00")),
    ]
    assert ledger_rows(engine, listener) == [("earn", 0, Decimal("5.00"))]
    row = call_row(engine, call)
    assert (row.status, row.coins_spent, row.duration_seconds, row.duration_minutes) == (
        "dropped",
        50,
        260,
        4,
    )
    assert row.listener_money_earned == 5
    assert status_of(engine, caller) == (False, None)
    assert status_of(engine, listener) == (False, None)


def test_an_expired_call_that_cannot_pay_in_full_says_so(engine: Engine) -> None:
    with transaction(engine) as s:
        call = add_pair_call(
            s, elapsed=timedelta(minutes=4, seconds=20), caller_wait=0, coins_spent=20, balance=25
        )
        s.commit()

    (bill,) = cleanup(engine).ended

    assert (bill.coins_charged, bill.coins_spent) == (20, 40)
    assert bill.reasons == ["wait_time_up", "insufficient_balance"]
    assert bill.listener_earnings == Decimal("4.00")
    assert wallet(engine, call_row(engine, call).user_id) == (5, Decimal("0.00"))


def test_billing_shares_the_balance_exactly_as_coin_deduction_would(engine: Engine) -> None:
    """The caller's older call comes first: cleanup charges the expired newer call only
    what coin deduction would have, and leaves the older one to coin deduction."""
    with transaction(engine) as s:
        caller = add_user(s, balance=30, online=True, last_seen=FRESH, busy=True, wait_time=3)
        listeners = [
            add_user(s, role="listener", balance=0, online=True, last_seen=seen, busy=True)
            for seen in (FRESH, NOW - timedelta(minutes=20))
        ]
        older = add_call(
            s, caller, listeners[0], start=NOW - timedelta(seconds=150), coins_spent=10
        )
        newer = add_call(
            s, caller, listeners[1], start=NOW - timedelta(seconds=140), coins_spent=10
        )
        s.commit()

    # both owe 20; coin deduction would give the older 20 and the newer 10
    (bill,) = cleanup(engine).ended
    assert (bill.call_id, bill.coins_charged) == (newer, 10)
    assert bill.reasons == ["listener_stale", "insufficient_balance"]
    assert wallet(engine, caller) == (20, Decimal("0.00"))
    assert call_row(engine, older).coins_spent == 10

    with transaction(engine) as s:
        deducted = billing.deduct(run_context(s, NOW, Settings(), apply=True))
        s.commit()
    assert (deducted.calls_charged, deducted.coins_charged, deducted.ended) == (1, 20, [])
    assert call_row(engine, older).coins_spent == 30
    assert wallet(engine, caller) == (0, Decimal("0.00"))


def test_cli_dry_run_equals_the_real_run_and_a_second_run_changes_nothing(
    cli: Any, engine: Engine, calls_by_fate: dict[str, int]
) -> None:
    before = money_tables(engine)

    dry = cli("--now", NOW.isoformat(), "--json", "calls", "cleanup", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert money_tables(engine) == before

    real = cli("--now", NOW.isoformat(), "calls", "cleanup", "--json")
    assert real.exit_code == 0, real.stderr
    dry_doc, real_doc = json.loads(dry.stdout), json.loads(real.stdout)
    assert (dry_doc["outcome"], real_doc["outcome"]) == ("dry-run", "ok")
    # the dry-run also names every call it would charge: here, those it ends owing
    assert real_doc["report"].pop("charged") is None
    assert dry_doc["report"].pop("charged") == [
        {
            "call_id": e["call_id"],
            "caller_id": e["caller_id"],
            "coins_charged": e["coins_charged"],
            "minutes_charged": e["minutes_charged"],
        }
        for e in real_doc["report"]["ended"]
        if e["coins_charged"]
    ]
    assert dry_doc["report"] == real_doc["report"]
    assert real_doc["report"]["calls_ended"] == 6
    assert real_doc["report"]["listener_earnings"] == "566.00"

    after = money_tables(engine)
    again = cli("--now", NOW.isoformat(), "--json", "calls", "cleanup")
    assert json.loads(again.stdout)["report"]["ended"] == []
    assert money_tables(engine) == after


def test_human_output_names_each_call_and_why(cli: Any, calls_by_fate: dict[str, int]) -> None:
    result = cli("--now", NOW.isoformat(), "calls", "cleanup")
    assert result.exit_code == 0
    assert result.stdout.startswith("job=calls-cleanup outcome=ok exit_code=0 ")
    assert ' summary="charged 0 calls 0 coins (0 minutes), ended 6 ' in result.stdout
    too_long = calls_by_fate["too_long"]
    assert f"call_id={too_long}" in result.stdout
    assert " reasons=caller_stale,listener_stale,too_long " in result.stdout
