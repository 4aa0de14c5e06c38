"""A half-ended call paid twice, end to end, with the faithful app double
(tests/simulated_app.py) on the app's own schema: the app half-ends a call, billing sees
it, the app ends it again (its listener paid twice); the audit and status name it;
`wallets reconcile --reverse` takes the second payment back and the audit is clean."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from saathii_ops.db.engine import make_engine, parse_url
from tests.conftest import Cli
from tests.simulated_app import SimulatedApp

APP_TODAY = date(2026, 12, 4)


@pytest.fixture
def app(app_db: str) -> Iterator[SimulatedApp]:
    simulated = SimulatedApp(app_db, today=lambda: APP_TODAY)
    yield simulated
    simulated.close()


def coins_and_ledger(url: str, user_id: int) -> tuple[int, int]:
    engine = make_engine(parse_url(url))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT w.balance_coins, coalesce(sum(t.coins_change), 0) FROM user_wallets w "
                "LEFT JOIN user_transactions t USING (wallet_id) WHERE w.user_id = :u "
                "GROUP BY w.balance_coins"
            ),
            {"u": user_id},
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1])


def report(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("--json", "wallets", *args)
    document = json.loads(result.stdout)
    return result.exit_code, document["report"] if args == ("audit",) else document


def test_the_app_paying_twice_after_a_half_end_is_named_then_reversed(
    app: SimulatedApp, app_db: str
) -> None:
    cli = Cli(app_db)
    listener = app.sign_up(1, "listener")
    app.verify_listener(listener)
    caller = app.sign_up(2, "customer")
    app.purchase(caller, 100, Decimal("9.00"))
    call = app.start_call(caller, listener, started_ago=150).call_id

    app.end_call(call, reason="ongoing")  # half-ended: the listener is paid 1 coin
    assert cli("coins", "deduct").exit_code == 1  # skips it, and records what it saw
    app.end_call(call, reason="completed")  # ended again: paid 1 coin more
    assert coins_and_ledger(app_db, listener) == (2, 2)

    code, audit = report(cli, "audit")
    assert code == 1
    assert (audit["calls_ended_again_after_half_end"], audit["wallets_off"]) == (1, 0)
    (again,) = audit["ended_again_after_half_end"]
    assert (again["seen_status"], again["status_now"]) == ("ongoing", "completed")
    assert again["seen_listener_money_earned"] == again["listener_money_earned_now"] == 1
    assert cli("status").exit_code == 1

    code, preview = report(cli, "reconcile")
    assert (code, [i["action"] for i in preview["items"]]) == (0, ["choose"])
    code, applied = report(
        cli, "reconcile", "--apply", "--reverse", "--call", str(call), "--reason", "paid twice"
    )
    assert (code, applied["coins_reversed"]) == (0, 1)
    assert coins_and_ledger(app_db, listener) == (1, 1)
    code, audit = report(cli, "audit")
    assert code == 0, audit
    code, resolved = report(cli, "audit", "--resolved")
    assert [(c["finding"], c["action"], c["call_id"]) for c in resolved["corrections"]] == [
        ("ended_again_after_half_end", "reversed", call)
    ]
