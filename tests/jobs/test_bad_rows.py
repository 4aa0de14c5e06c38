"""One bad row never stops billing (SPEC §4): a call whose values would overflow a
column of the app's schema, or whose listener's badge row is absurd, is reported
and skipped; the ordinary call beside it is billed and committed; the run exits 1;
a dry-run reports the same; `status` and `wallets audit` count it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_runs
from tests.billing_checks import assert_ledger_balanced, call_row, money_tables, wallet
from tests.conftest import Cli
from tests.factories import T0, add_badge, add_call, add_user

NOW = T0 + timedelta(hours=1)
GONE = NOW - timedelta(hours=1)  # last_seen of a party that has gone: cleanup ends its calls


@dataclass
class Fixture:
    bad_call: int
    ordinary_call: int
    ordinary_caller: int


def _parties(
    s: Session, *, caller_balance: int = 1000, listener_money: Decimal = Decimal("0.00")
) -> tuple[int, int]:
    caller = add_user(s, balance=caller_balance, online=True, last_seen=GONE)
    listener = add_user(s, role="listener", balance=0, money=listener_money)
    return caller, listener


def _very_old_start(s: Session) -> int:
    caller, listener = _parties(s)
    return add_call(s, caller, listener, start=datetime(1900, 1, 1, tzinfo=UTC), coins_spent=10)


def _negative_badge_rate(s: Session) -> int:
    # a caller who cannot pay: the call ends and would pay -5.00 a minute
    poor, listener = _parties(s, caller_balance=0)
    add_badge(s, listener, NOW.date(), "gold", "-5", "-5")
    return add_call(s, poor, listener, start=NOW - timedelta(minutes=3), coins_spent=30)


def _listener_wallet_full(s: Session) -> int:
    poor, listener = _parties(s, caller_balance=0, listener_money=Decimal("9999999999.00"))
    return add_call(s, poor, listener, start=NOW - timedelta(minutes=3), coins_spent=30)


def _coins_spent(amount: int) -> Callable[[Session], int]:
    def make(s: Session) -> int:
        caller, listener = _parties(s)
        return add_call(s, caller, listener, start=NOW - timedelta(minutes=3), coins_spent=amount)

    return make


BAD_ROWS: dict[str, tuple[Callable[[Session], int], str]] = {
    "start_time 1900-01-01": (
        _very_old_start,
        "start_time is so long ago that duration_seconds would overflow INT",
    ),
    "negative badge rate": (
        _negative_badge_rate,
        "the listener's listener_badges row has a negative or absurd rate for audio calls "
        "(listener {listener})",
    ),
    "listener wallet at the NUMERIC(12,2) maximum": (
        _listener_wallet_full,
        "the listener's withdrawable_money would overflow NUMERIC(12,2)",
    ),
    "coins_spent 1e12": (
        _coins_spent(10**12),
        "coins_spent pays for more minutes than any call can last",
    ),
    "coins_spent near the BIGINT maximum": (
        _coins_spent(9223372036854775000),
        "coins_spent pays for more minutes than any call can last",
    ),
}


def _fixture(engine: Engine, make_bad: Callable[[Session], int]) -> Fixture:
    with transaction(engine) as s:
        bad = make_bad(s)
        caller = add_user(s, balance=1000, online=True, last_seen=GONE)
        listener = add_user(s, role="listener", balance=0)
        # audio, 4m30s in: due 50, spent 10, owes 40
        ordinary = add_call(
            s, caller, listener, start=NOW - timedelta(minutes=4, seconds=30), coins_spent=10
        )
        s.commit()
    return Fixture(bad, ordinary, caller)


@pytest.mark.parametrize("kind", list(BAD_ROWS))
@pytest.mark.parametrize("job", ["coins deduct", "calls cleanup"])
def test_the_ordinary_call_beside_a_bad_row_is_billed_and_the_run_exits_1(
    cli: Cli, engine: Engine, kind: str, job: str
) -> None:
    make_bad, problem = BAD_ROWS[kind]
    fx = _fixture(engine, make_bad)
    bad_before = call_row(engine, fx.bad_call)
    problem = problem.format(listener=bad_before.listener_id)
    at_now = ("--now", NOW.isoformat(), "--json", *job.split())

    untouched = money_tables(engine)
    preview = cli(*at_now, "--dry-run")
    assert preview.exit_code == 1, preview.stderr
    assert money_tables(engine) == untouched

    result = cli(*at_now)

    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)["report"]
    assert report["skipped"] == [{"call_id": fx.bad_call, "problem": problem}]
    previewed = json.loads(preview.stdout)["report"]
    # the dry-run names the call it would charge (the ordinary one, not the bad row)
    assert [c["call_id"] for c in previewed.pop("charged")] == [fx.ordinary_call]
    assert report.pop("charged") is None
    assert previewed == report
    assert report["coins_charged"] == 40
    assert call_row(engine, fx.ordinary_call).coins_spent == 50
    assert wallet(engine, fx.ordinary_caller) == (960, Decimal("0.00"))
    if job == "calls cleanup":
        assert call_row(engine, fx.ordinary_call).status == "dropped"
    assert call_row(engine, fx.bad_call) == bad_before
    assert_ledger_balanced(engine)
    with transaction(engine) as s:
        outcome, reason = s.execute(sa.select(ops_job_runs.c.outcome, ops_job_runs.c.reason)).one()
    assert (outcome, reason) == ("ok", "some rows failed")


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_status_and_wallets_audit_count_the_bad_row(cli: Cli, engine: Engine, kind: str) -> None:
    _fixture(engine, BAD_ROWS[kind][0])
    status = cli("--now", NOW.isoformat(), "status", "--json")
    assert status.exit_code == 1
    assert json.loads(status.stdout)["data"]["unbillable_calls"] == 1
    audit = cli("--now", NOW.isoformat(), "wallets", "audit", "--json")
    assert audit.exit_code == 1
    assert json.loads(audit.stdout)["report"]["calls_unbillable"] == 1


def test_an_absurd_badge_rate_is_a_bad_row_and_a_sane_one_is_paid(cli: Cli, engine: Engine) -> None:
    """Absurd: above ten times the highest rate of the badge table (audio 1.80: 18.00)."""
    with transaction(engine) as s:
        absurd = add_user(s, role="listener", balance=0)
        generous = add_user(s, role="listener", balance=0)
        add_badge(s, absurd, NOW.date(), "gold", "18.01", "10.00")
        add_badge(s, generous, NOW.date(), "gold", "18.00", "10.00")
        calls = {
            listener: add_call(
                s,
                add_user(s, balance=0),
                listener,
                start=NOW - timedelta(minutes=3, seconds=30),
                coins_spent=30,
            )
            for listener in (absurd, generous)
        }
        s.commit()

    result = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")

    assert result.exit_code == 1
    report = json.loads(result.stdout)["report"]
    assert [s["call_id"] for s in report["skipped"]] == [calls[absurd]]
    # owes 10, cannot pay: ends with 3 paid minutes at 18.00
    assert [(c["call_id"], c["listener_earnings"]) for c in report["ended"]] == [
        (calls[generous], "54.00")
    ]
    assert wallet(engine, generous) == (0, Decimal("54.00"))


def test_two_calls_that_together_would_overflow_the_listeners_wallet_are_both_skipped(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        # each call pays 3 minutes at 1.00: one would fit the wallet, both would not
        listener = add_user(s, role="listener", balance=0, money=Decimal("9999999994.00"))
        calls = [
            add_call(
                s,
                add_user(s, balance=0),
                listener,
                start=NOW - timedelta(minutes=2, seconds=30),
                coins_spent=30,
            )
            for _ in range(2)
        ]
        s.commit()
    result = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")
    assert result.exit_code == 1
    report = json.loads(result.stdout)["report"]
    assert [s["call_id"] for s in report["skipped"]] == calls
    assert wallet(engine, listener) == (0, Decimal("9999999994.00"))


def test_an_infinite_start_time_is_a_bad_row(cli: Cli, engine: Engine, backend: str) -> None:
    """PostgreSQL's timestamptz 'infinity' cannot be subtracted from: once every run failed."""
    if backend != "postgresql":
        pytest.skip("'infinity' is a PostgreSQL timestamp")
    fx = _fixture(engine, _coins_spent(10))
    with transaction(engine) as s:
        s.execute(
            sa.text("UPDATE user_calls SET start_time = '-infinity' WHERE call_id = :id"),
            {"id": fx.bad_call},
        )
        s.commit()
    for job in ("coins deduct", "calls cleanup"):
        result = cli("--now", NOW.isoformat(), "--json", *job.split())
        assert result.exit_code == 1, result.stderr
        assert json.loads(result.stdout)["report"]["skipped"] == [
            {"call_id": fx.bad_call, "problem": "start_time is not a finite time"}
        ]
    assert wallet(engine, fx.ordinary_caller) == (960, Decimal("0.00"))
    assert call_row(engine, fx.ordinary_call).status == "dropped"
