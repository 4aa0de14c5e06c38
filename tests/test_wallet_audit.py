"""`wallets audit` (SPEC §13): ledger drift and calls charged more or less than due."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db import transaction
from saathii_ops.models import UserWallet
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user

NOW = T0 + timedelta(hours=1)


def _set_wallet(engine: Engine, user_id: int, **values: object) -> None:
    with transaction(engine) as s:
        s.execute(sa.update(UserWallet).where(UserWallet.user_id == user_id).values(**values))
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
    doc = json.loads(result.stdout)
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
    doc = json.loads(result.stdout)
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
    assert "wallets_off: 2" in human.stdout
    assert "drift=undercharged" in human.stdout
