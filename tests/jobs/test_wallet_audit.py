"""`wallets audit` (SPEC §13): ledger drift and calls charged more or less than due."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_runs, user_calls, user_transactions, user_wallets
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user

NOW = T0 + timedelta(hours=1)


def _set_wallet(engine: Engine, user_id: int, **values: object) -> None:
    with transaction(engine) as s:
        s.execute(sa.update(user_wallets).where(user_wallets.c.user_id == user_id).values(**values))
        s.commit()


def test_a_healthy_database_audits_clean(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=100)
        listener = add_user(s, role="listener", balance=0, money=Decimal("10.00"))
        # audio, 3m30s in: due now 40, due by now - 2 minutes (90 s) 20
        add_call(s, caller, listener, start=NOW - timedelta(minutes=3, seconds=30), coins_spent=40)
        s.commit()
    result = cli("--now", NOW.isoformat(), "wallets", "audit", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)["report"]
    assert (doc["wallets_off"], doc["calls_overcharged"], doc["calls_undercharged"]) == (0, 0, 0)


def test_drifted_wallets_and_calls_are_named_with_exit_1(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        coins_off = add_user(s, balance=100)
        money_off = add_user(s, role="listener", balance=0, money=Decimal("10.00"))
        fine = add_user(s, balance=70)
        calls = {
            "fine": add_call(
                s, fine, money_off, start=NOW - timedelta(minutes=3, seconds=30), coins_spent=40
            ),
            "over": add_call(
                s, fine, money_off, start=NOW - timedelta(minutes=3, seconds=30), coins_spent=50
            ),
            "under": add_call(
                s, fine, money_off, start=NOW - timedelta(minutes=5, seconds=10), coins_spent=30
            ),
            "fresh_minute": add_call(
                s, fine, money_off, start=NOW - timedelta(minutes=2, seconds=10), coins_spent=20
            ),
            "video_first_minute": add_call(
                s,
                fine,
                money_off,
                start=NOW - timedelta(seconds=30),
                call_type="video",
                coins_spent=60,
            ),
            "ended": add_call(
                s,
                fine,
                money_off,
                start=NOW - timedelta(hours=1),
                coins_spent=999,
                status="completed",
            ),
        }
        s.commit()
    _set_wallet(engine, coins_off, balance_coins=150)
    _set_wallet(engine, money_off, withdrawable_money=Decimal("12.50"))

    result = cli("--now", NOW.isoformat(), "--json", "wallets", "audit")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)["report"]
    assert (doc["wallets_off"], doc["calls_overcharged"], doc["calls_undercharged"]) == (2, 1, 1)
    assert [
        (w["user_id"], w["coins_difference"], w["money_difference"]) for w in doc["wallets"]
    ] == [
        (coins_off, 50, "0.00"),
        (money_off, 0, "2.50"),
    ]
    assert [
        (c["call_id"], c["coins_spent"], c["coins_due_now"], c["coins_due_by_now"], c["drift"])
        for c in doc["calls"]
    ] == [
        (calls["over"], 50, 40, 20, "overcharged"),
        (calls["under"], 30, 60, 40, "undercharged"),
    ]

    human = cli("--now", NOW.isoformat(), "wallets", "audit")
    assert human.exit_code == 1
    assert " wallets_off=2 " in human.stdout
    assert "drift=undercharged" in human.stdout


def _ledger(engine: Engine, user_id: int, tx_type: str, coins: int, money: str) -> None:
    """A row the app writes, with the wallet change it makes."""
    with transaction(engine) as s:
        wallet_id = s.scalar(
            sa.select(user_wallets.c.wallet_id).where(user_wallets.c.user_id == user_id)
        )
        s.execute(
            sa.insert(user_transactions).values(
                wallet_id=wallet_id,
                tx_type=tx_type,
                coins_change=coins,
                money_change=Decimal(money),
            )
        )
        s.execute(
            sa.update(user_wallets)
            .where(user_wallets.c.wallet_id == wallet_id)
            .values(balance_coins=user_wallets.c.balance_coins + coins)
        )
        s.commit()


def _audit(cli: Cli, now: datetime = NOW) -> tuple[int, dict[str, Any]]:
    result = cli("--now", now.isoformat(), "--json", "wallets", "audit")
    return result.exit_code, json.loads(result.stdout)["report"]


def test_purchase_rupees_are_not_wallet_money_and_coin_earnings_count(
    cli: Cli, engine: Engine
) -> None:
    """The app's purchase rows carry the rupees paid in money_change; its end-call pays
    listeners in coins with 'earn' rows in coins_change; our earn rows are rupees."""
    with transaction(engine) as s:
        caller = add_user(s, balance=0)
        listener = add_user(s, role="listener", balance=0, money=Decimal("4.50"))
        s.commit()
    _ledger(engine, caller, "purchase", 500, "49.00")
    _ledger(engine, caller, "spend", -10, "0.00")
    _ledger(engine, listener, "earn", 3, "0.00")  # the app: int(1.50 * 2) coins
    with transaction(engine) as s:  # a withdrawal of 2.00 rupees (the app's)
        s.execute(
            sa.update(user_wallets)
            .where(user_wallets.c.user_id == listener)
            .values(withdrawable_money=Decimal("2.50"))
        )
        s.commit()
    _ledger(engine, listener, "withdraw", 0, "-2.00")

    code, report = _audit(cli)
    assert code == 0, report
    assert report["wallets_off"] == 0

    # a purchase's rupees credited to withdrawable money would be wrong: it is found
    _set_wallet(engine, caller, withdrawable_money=Decimal("49.00"))
    code, report = _audit(cli)
    assert code == 1
    assert [(w["user_id"], w["money_difference"]) for w in report["wallets"]] == [(caller, "49.00")]


def _settled_call(cli: Cli, engine: Engine) -> dict[str, int]:
    """coins deduct settles a call: 7m30s in, 10 coins spent, the caller has 20 more:
    charged 20, 3 paid minutes at 1.00 = 3.00 rupees."""
    with transaction(engine) as s:
        caller = add_user(s, balance=20, online=True, last_seen=NOW)
        listener = add_user(s, role="listener", balance=0, online=True, last_seen=NOW)
        call = add_call(s, caller, listener, start=NOW - timedelta(seconds=450), coins_spent=10)
        s.commit()
    result = cli("--now", NOW.isoformat(), "coins", "deduct")
    assert result.exit_code == 0, result.stderr
    return {"caller": caller, "listener": listener, "call": call}


def test_a_call_the_app_ends_again_after_our_settlement_is_named_with_both_versions(
    cli: Cli, engine: Engine
) -> None:
    ids = _settled_call(cli, engine)
    assert _audit(cli)[0] == 0
    later = NOW + timedelta(seconds=1)
    with transaction(engine) as s:  # the app's unguarded end-call, then its payment in coins
        s.execute(
            sa.update(user_calls)
            .where(user_calls.c.call_id == ids["call"])
            .values(status="completed", end_time=later, listener_money_earned=3)
        )
        s.commit()
    _ledger(engine, ids["listener"], "earn", 3, "0.00")

    code, report = _audit(cli, later)
    assert code == 1
    assert (report["calls_changed_after_settlement"], report["wallets_off"]) == (1, 0)
    (changed,) = report["changed_after_settlement"]
    run_uuid = changed.pop("run_uuid")
    settled_at = changed.pop("settled_at")
    assert changed == {
        "call_id": ids["call"],
        "finding": "ended again after settlement — the listener may have been paid twice",
        "earnings": "3.00",
        "settled_status": "dropped",
        "status_now": "completed",
        "settled_end_time": NOW.isoformat(),
        "end_time_now": later.isoformat(),
        "settled_coins_spent": 30,
        "coins_spent_now": 30,
        "settled_listener_money_earned": 3,
        "listener_money_earned_now": 3,
    }
    with transaction(engine) as s:
        run = s.execute(
            sa.select(ops_job_runs.c.run_uuid).where(ops_job_runs.c.job == "coins-deduct")
        ).one()
    assert run_uuid == run.run_uuid
    assert settled_at is not None

    human = cli("--now", later.isoformat(), "wallets", "audit")
    assert human.exit_code == 1
    assert f"call_id={ids['call']}" in human.stdout
    assert "ended again after settlement" in human.stdout


def test_half_ended_calls_are_named_and_not_judged_by_their_charge(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=100)
        listener = add_user(s, role="listener", balance=0)
        # 10 minutes in, 10 coins spent: undercharged, were it not half-ended
        half = add_call(s, caller, listener, start=NOW - timedelta(minutes=10), coins_spent=10)
        s.execute(
            sa.update(user_calls)
            .where(user_calls.c.call_id == half)
            .values(end_time=NOW - timedelta(minutes=9), listener_money_earned=1)
        )
        s.commit()
    code, report = _audit(cli)
    assert code == 1
    assert (report["calls_half_ended"], report["calls_undercharged"]) == (1, 0)
    assert report["half_ended"] == [
        {
            "call_id": half,
            "caller_id": caller,
            "listener_id": listener,
            "end_time": (NOW - timedelta(minutes=9)).isoformat(),
            "coins_spent": 10,
            "listener_money_earned": 1,
        }
    ]


def test_the_audit_is_a_job_recorded_with_its_counts_and_status_sees_its_findings(
    cli: Cli, engine: Engine
) -> None:
    ids = _settled_call(cli, engine)
    # today's badges, due at 00:01 IST: without them status is unhealthy
    assert cli("--now", NOW.isoformat(), "badges", "assign").exit_code == 0
    assert cli("--now", NOW.isoformat(), "wallets", "audit", "--dry-run").exit_code == 0
    assert cli("--now", NOW.isoformat(), "wallets", "audit").exit_code == 0
    assert cli("--now", NOW.isoformat(), "status").exit_code == 0
    with transaction(engine) as s:
        s.execute(
            sa.update(user_calls)
            .where(user_calls.c.call_id == ids["call"])
            .values(status="completed")
        )
        s.commit()
    assert cli("--now", NOW.isoformat(), "wallets", "audit").exit_code == 1

    with transaction(engine) as s:
        runs = s.execute(
            sa.select(ops_job_runs.c.outcome, ops_job_runs.c.reason, ops_job_runs.c.counts)
            .where(ops_job_runs.c.job == "wallets-audit")
            .order_by(ops_job_runs.c.run_id)
        ).all()
    counts = {
        "wallets_off": 0,
        "calls_changed_after_settlement": 0,
        "calls_ended_again_after_half_end": 0,
        "calls_half_ended": 0,
        "calls_overcharged": 0,
        "calls_undercharged": 0,
        "calls_unbillable": 0,
        "duplicate_badge_days": 0,
    }
    assert [tuple(r) for r in runs] == [
        ("ok", None, counts),
        ("ok", "some rows failed", dict(counts, calls_changed_after_settlement=1)),
    ]
    status = cli("--now", NOW.isoformat(), "--json", "status")
    assert status.exit_code == 1
    assert json.loads(status.stdout)["problems"] == [
        "wallets-audit's last run (at "
        + _started_at(engine)
        + ") exited 1: calls changed after settlement 1"
    ]


def _started_at(engine: Engine) -> str:
    with transaction(engine) as s:
        started = s.scalar(
            sa.select(sa.func.max(ops_job_runs.c.started_at)).where(
                ops_job_runs.c.job == "wallets-audit"
            )
        )
    assert started is not None
    return started.strftime("%Y-%m-%d %H:%M:%S UTC")
