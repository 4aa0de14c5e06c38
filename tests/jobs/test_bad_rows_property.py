"""Bad rows as a property: over random mixes of good calls and every kind of bad row
(sharing callers with the good ones), coin deduction bills every good call exactly
as the SPEC's formulas say, leaves every bad one untouched and reports it with its
reason, conserves coins and rupees, and its dry-run reports what the real run does;
call cleanup afterwards skips the same bad rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.billing.problems import Problem
from saathii_ops.billing.report import BillingReport
from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import user_calls, user_wallets
from saathii_ops.jobs import call_cleanup
from saathii_ops.settings import Settings
from tests.billing_checks import assert_ledger_balanced, call_row
from tests.factories import T0, add_badge, add_call, add_user, run_context

NOW = T0 + timedelta(hours=2)  # 13:30 in Asia/Kolkata: the badge rows are for this date
RATES = {"audio": 10, "video": 60}
LISTENER_RATES = {  # rupees per minute, by listener
    "basic": {"audio": Decimal("1.00"), "video": Decimal("6.00")},  # no badge row
    "gold": {"audio": Decimal("1.80"), "video": Decimal("10.00")},
}

# kind of bad row -> the problem billing reports for it
BAD_KINDS = {
    "no_call_type": Problem.UNKNOWN_CALL_TYPE,
    "negative_coins_spent": Problem.NEGATIVE_COINS_SPENT,
    "no_listener": Problem.NO_LISTENER,
    "start_1900": Problem.START_TIME_OUT_OF_RANGE,
    "coins_spent_1e12": Problem.COINS_SPENT_OUT_OF_RANGE,
    "coins_spent_near_bigint_max": Problem.COINS_SPENT_OUT_OF_RANGE,
    "negative_badge_rate": Problem.BAD_BADGE_RATE,
    "absurd_badge_rate": Problem.BAD_BADGE_RATE,
    "listener_wallet_full": Problem.LISTENER_WALLET_OVERFLOW,
}


@dataclass(frozen=True)
class CallSpec:
    caller: int  # index into the example's callers
    kind: str  # "good" or a key of BAD_KINDS
    listener: str  # for a good call: "basic" or "gold"
    call_type: str
    started_seconds_ago: int
    coins_spent: int


@dataclass(frozen=True)
class Example:
    balances: list[int | None]  # one per caller; None: no wallet
    calls: list[CallSpec]


examples = st.builds(
    Example,
    balances=st.lists(st.one_of(st.none(), st.integers(-20, 400)), min_size=1, max_size=3),
    calls=st.lists(
        st.builds(
            CallSpec,
            caller=st.integers(0, 2),
            kind=st.one_of(st.just("good"), st.sampled_from(sorted(BAD_KINDS))),
            listener=st.sampled_from(sorted(LISTENER_RATES)),
            call_type=st.sampled_from(["audio", "video"]),
            started_seconds_ago=st.integers(-90, 1500),
            coins_spent=st.one_of(st.sampled_from([0, 10, 60, 120]), st.integers(0, 150)),
        ),
        min_size=1,
        max_size=8,
    ),
)


@dataclass(frozen=True)
class Expected:
    coins_charged: int
    minutes_charged: int
    coins_spent: int
    ends: bool
    listener_earnings: Decimal | None


def _expected_bills(
    goods: dict[int, tuple[CallSpec, int, datetime]], balances: dict[int, int | None]
) -> dict[int, Expected]:
    """SPEC §4 and §5, written out: per caller, in order of start_time and call_id, each
    call owes r * (⌊e / 60⌋ + 1) - coins_spent; it is charged what the balance left by
    the earlier ones covers (in whole minutes when not all), and ends when that is not
    all it owes, paying its listener rate * ⌊coins_spent / r⌋."""
    bills = {}
    available = {caller: max(balance or 0, 0) for caller, balance in balances.items()}
    for call_id, (spec, caller, start) in sorted(goods.items(), key=lambda g: (g[1][2], g[0])):
        rate = RATES[spec.call_type]
        elapsed = int((NOW - start).total_seconds() // 1)
        due = 0 if elapsed < 0 else rate * (elapsed // 60 + 1)
        owed = due - spec.coins_spent
        left = available[caller]
        if owed <= 0:
            charge = 0
        elif left >= owed:
            charge = owed
        else:
            charge = max(rate * ((spec.coins_spent + left) // rate) - spec.coins_spent, 0)
        available[caller] = left - charge
        ends = owed > 0 and charge < owed
        spent = spec.coins_spent + charge
        if charge or ends:
            earned = LISTENER_RATES[spec.listener][spec.call_type] * (spent // rate)
            bills[call_id] = Expected(
                coins_charged=charge,
                minutes_charged=spent // rate - spec.coins_spent // rate,
                coins_spent=spent,
                ends=ends,
                listener_earnings=earned.quantize(Decimal("0.01")) if ends else None,
            )
    return bills


def _add_calls(engine: Engine, example: Example) -> tuple[dict[int, int | None], dict, dict]:
    """The example's rows; returns the callers' balances, the good calls, the bad calls."""
    with transaction(engine) as s:
        callers = [
            add_user(s, balance=b, online=True, last_seen=NOW + timedelta(hours=1))
            for b in example.balances
        ]
        listeners = {
            "basic": add_user(s, role="listener", balance=0),
            "gold": add_user(s, role="listener", balance=0),
            "negative_badge_rate": add_user(s, role="listener", balance=0),
            "absurd_badge_rate": add_user(s, role="listener", balance=0),
            "listener_wallet_full": add_user(
                s, role="listener", balance=0, money=Decimal("9999999999.00")
            ),
        }
        day = NOW.date()
        add_badge(s, listeners["gold"], day, "gold", "1.80", "10.00")
        add_badge(s, listeners["negative_badge_rate"], day, "gold", "-5.00", "-5.00")
        add_badge(s, listeners["absurd_badge_rate"], day, "gold", "500.00", "999.99")
        goods: dict[int, tuple[CallSpec, int, datetime]] = {}
        bads: dict[int, Problem] = {}
        for spec in example.calls:
            caller = callers[spec.caller % len(callers)]
            start = NOW - timedelta(seconds=spec.started_seconds_ago)
            listener: int | None = listeners.get(spec.kind, listeners[spec.listener])
            call_type: str | None = spec.call_type
            coins_spent = spec.coins_spent
            if spec.kind == "no_call_type":
                call_type = None
            elif spec.kind == "negative_coins_spent":
                coins_spent = -1 - coins_spent
            elif spec.kind == "no_listener":
                listener = None
            elif spec.kind == "start_1900":
                start = datetime(1900, 1, 1, tzinfo=UTC)
            elif spec.kind == "coins_spent_1e12":
                coins_spent = 10**12
            elif spec.kind == "coins_spent_near_bigint_max":
                coins_spent = 9223372036854775000
            elif spec.kind == "listener_wallet_full":
                # a call that has not started yet earns nothing, so it cannot overflow
                start = NOW - timedelta(seconds=max(spec.started_seconds_ago, 0))
            call_id = add_call(
                s, caller, listener, start=start, call_type=call_type, coins_spent=coins_spent
            )
            if spec.kind == "good":
                goods[call_id] = (spec, caller, start)
            else:
                bads[call_id] = BAD_KINDS[spec.kind]
        s.commit()
    return dict(zip(callers, example.balances, strict=True)), goods, bads


def _balances(engine: Engine, callers: list[int]) -> dict[int, int]:
    with transaction(engine) as s:
        return dict(
            s.execute(
                sa.select(user_wallets.c.user_id, user_wallets.c.balance_coins).where(
                    user_wallets.c.user_id.in_(callers)
                )
            ).all()
        )


def _check_skipped(report: BillingReport, bads: dict[int, Problem]) -> None:
    assert {s.call_id for s in report.skipped} == set(bads)
    for skipped in report.skipped:
        assert skipped.problem.startswith(bads[skipped.call_id].description), skipped
    assert report.skipped_calls == len(bads)
    assert not {b.call_id for b in report.ended} & set(bads)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=examples)
def test_good_calls_are_billed_exactly_and_bad_rows_are_skipped(
    engine: Engine, example: Example
) -> None:
    service_settings = Settings()
    with transaction(engine) as s:  # no ongoing call of an earlier example (or a failed one)
        s.execute(
            sa.update(user_calls).where(user_calls.c.status == "ongoing").values(status="completed")
        )
        s.commit()
    balances, goods, bads = _add_calls(engine, example)
    bad_rows = {call_id: call_row(engine, call_id) for call_id in bads}

    with transaction(engine, read_only=True) as s:
        preview = billing.deduct(run_context(s, NOW, service_settings, apply=False))
    with transaction(engine) as s:
        applied = billing.deduct(run_context(s, NOW, service_settings, apply=True))
        s.commit()

    assert preview == applied
    _check_skipped(applied, bads)
    expected = _expected_bills(goods, balances)
    # the calls that end in full; the others counted (and each checked in its row below)
    assert {
        b.call_id: Expected(
            b.coins_charged, b.minutes_charged, b.coins_spent, True, b.listener_earnings
        )
        for b in applied.ended
    } == {call_id: bill for call_id, bill in expected.items() if bill.ends}
    assert (applied.calls_charged, applied.coins_charged, applied.minutes_charged) == (
        sum(1 for bill in expected.values() if bill.coins_charged),
        sum(bill.coins_charged for bill in expected.values()),
        sum(bill.minutes_charged for bill in expected.values()),
    )
    for call_id in goods:
        row = call_row(engine, call_id)
        bill = expected.get(call_id)
        assert row.coins_spent == (bill.coins_spent if bill else goods[call_id][0].coins_spent)
        assert row.status == ("dropped" if bill and bill.ends else "ongoing")
        if bill and bill.listener_earnings is not None:
            assert row.listener_money_earned == int(bill.listener_earnings)
    assert {call_id: call_row(engine, call_id) for call_id in bads} == bad_rows
    # conservation: what left each wallet is what its good calls were charged
    after = _balances(engine, list(balances))
    for caller, start in balances.items():
        charged = sum(bill.coins_charged for c, bill in expected.items() if goods[c][1] == caller)
        if start is None:  # no wallet: a balance of 0, nothing charged
            assert caller not in after and charged == 0
        else:
            assert after[caller] == start - charged
    assert_ledger_balanced(engine)

    # call cleanup (the 1900 call is over the longest-call limit) skips the same rows
    later = NOW + timedelta(minutes=5)
    with transaction(engine, read_only=True) as s:
        cleanup_preview = call_cleanup.cleanup(run_context(s, later, service_settings, apply=False))
    with transaction(engine) as s:
        cleaned = call_cleanup.cleanup(run_context(s, later, service_settings, apply=True))
        s.commit()
    assert cleanup_preview == cleaned
    assert {s.call_id for s in cleaned.skipped} <= set(bads)
    assert {call_id: call_row(engine, call_id) for call_id in bads} == bad_rows
    assert_ledger_balanced(engine)
