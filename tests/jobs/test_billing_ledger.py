"""The ledger as a property: over random callers, balances, calls and run times,
no coin or rupee is created or lost, no balance goes below zero, and every
call is paid exactly as the SPEC's formulas say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import user_calls, user_transactions, user_wallets
from saathii_ops.jobs import call_cleanup
from saathii_ops.settings import Settings
from tests.billing_checks import assert_ledger_balanced
from tests.factories import T0, add_call, add_user, run_context

NOW = T0 + timedelta(hours=2)
RATES = {"audio": 10, "video": 60}
BASIC = {"audio": Decimal("1.00"), "video": Decimal("6.00")}


@dataclass(frozen=True)
class CallSpec:
    caller: int  # index into the example's callers
    call_type: str
    started_seconds_ago: int
    coins_spent: int


@dataclass(frozen=True)
class Example:
    balances: list[int | None]  # one per caller; None: no wallet
    calls: list[CallSpec]
    runs: list[tuple[int, str]]  # (seconds after NOW, job)


examples = st.builds(
    Example,
    balances=st.lists(st.one_of(st.none(), st.integers(-20, 400)), min_size=1, max_size=3),
    calls=st.lists(
        st.builds(
            CallSpec,
            caller=st.integers(0, 2),
            call_type=st.sampled_from(["audio", "video"]),
            started_seconds_ago=st.integers(-90, 1500),
            coins_spent=st.one_of(st.sampled_from([0, 10, 60, 120]), st.integers(0, 150)),
        ),
        min_size=1,
        max_size=5,
    ),
    runs=st.lists(
        st.tuples(st.integers(0, 900), st.sampled_from(["deduct", "cleanup"])),
        min_size=1,
        max_size=4,
    ).map(sorted),
)


def _coins_due(call_type: str, elapsed: int) -> int:
    return 0 if elapsed < 0 else RATES[call_type] * (elapsed // 60 + 1)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=examples)
def test_no_coin_or_rupee_is_created_or_lost(engine: Engine, example: Example) -> None:
    service_settings = Settings()
    with transaction(engine) as s:
        callers = [
            add_user(s, balance=b, online=True, last_seen=NOW + timedelta(hours=1))
            for b in example.balances
        ]
        listener = add_user(s, role="listener", balance=0)
        # a listener seen an hour ago: some runs' cleanup ends calls as stale
        stale_listener = add_user(
            s, role="listener", online=True, last_seen=NOW - timedelta(hours=1)
        )
        call_ids = {
            add_call(
                s,
                callers[spec.caller % len(callers)],
                stale_listener if n % 3 == 2 else listener,
                start=NOW - timedelta(seconds=spec.started_seconds_ago),
                call_type=spec.call_type,
                coins_spent=spec.coins_spent,
            ): spec
            for n, spec in enumerate(example.calls)
        }
        s.commit()
    start_balances = dict(zip(callers, example.balances, strict=True))

    for offset, job in example.runs:
        now = NOW + timedelta(seconds=offset)
        service = billing.deduct if job == "deduct" else call_cleanup.cleanup
        with transaction(engine, read_only=True) as s:
            preview = service(run_context(s, now, service_settings, apply=False))
        with transaction(engine) as s:
            applied = service(run_context(s, now, service_settings, apply=True))
            s.commit()
        assert preview == applied

        assert_ledger_balanced(engine)
        with transaction(engine) as s:
            rows = {
                r.call_id: r
                for r in s.execute(sa.select(user_calls).where(user_calls.c.call_id.in_(call_ids)))
            }
            balances = dict(
                s.execute(
                    sa.select(user_wallets.c.user_id, user_wallets.c.balance_coins).where(
                        user_wallets.c.user_id.in_(callers)
                    )
                ).all()
            )
            spent_by_wallet = dict(
                s.execute(
                    sa.select(user_wallets.c.user_id, sa.func.sum(user_transactions.c.coins_change))
                    .join(
                        user_transactions, user_transactions.c.wallet_id == user_wallets.c.wallet_id
                    )
                    .where(
                        user_wallets.c.user_id.in_(callers), user_transactions.c.tx_type == "spend"
                    )
                    .group_by(user_wallets.c.user_id)
                ).all()
            )
        for caller, start in start_balances.items():
            if start is None:
                assert caller not in balances
                continue
            # never below zero, never more than it was; what left it went to its calls
            assert balances[caller] >= min(start, 0)
            assert balances[caller] <= start
            added = sum(
                rows[c].coins_spent - spec.coins_spent
                for c, spec in call_ids.items()
                if rows[c].user_id == caller
            )
            assert start - balances[caller] == added == -spent_by_wallet.get(caller, 0)
        for call_id, spec in call_ids.items():
            row = rows[call_id]
            rate = RATES[spec.call_type]
            due = _coins_due(spec.call_type, int((now - row.start_time).total_seconds()))
            assert row.coins_spent <= max(due, spec.coins_spent)  # never beyond coins due
            if row.status == "dropped":
                earned = BASIC[spec.call_type] * (row.coins_spent // rate)
                assert row.listener_money_earned == int(earned)
            elif job == "deduct":
                assert row.coins_spent >= due  # paid in full, or it would have ended

    with transaction(engine) as s:  # the next example starts with no ongoing call
        s.execute(
            sa.update(user_calls).where(user_calls.c.status == "ongoing").values(status="completed")
        )
        s.commit()
