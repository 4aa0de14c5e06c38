"""PostgreSQL only: billing on a database the app created, and billing under concurrency
(two runs at once, a run racing the app)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.billing import charging, conservation
from saathii_ops.billing.plan import plan_query
from saathii_ops.billing.report import BillingReport
from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import ops_job_runs, user_calls, user_roles, user_status
from saathii_ops.jobs import call_cleanup
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.billing_checks import (
    assert_ledger_balanced,
    call_row,
    ledger_rows,
    money_tables,
    run_service,
    status_of,
    wait_for_a_lock_wait,
    wallet,
)
from tests.conftest import Cli
from tests.factories import T0, add_badge, add_call, add_user, run_context
from tests.simulated_app import SimulatedApp
from tests.support.installed import SAATHII_OPS

T = T0 + timedelta(hours=1)  # 07:00 UTC, 12:30 on 2026-11-29 in Kolkata
FRESH = T - timedelta(seconds=20)


pytestmark = pytest.mark.usefixtures("postgresql_only")


# --- the app's own database ----------------------------------------------------------


@pytest.fixture
def adopted(app_db: str) -> Iterator[Engine]:
    """The app's database (its DDL), adopted and upgraded (conftest's `app_db`)."""
    engine = make_engine(parse_url(app_db))
    yield engine
    engine.dispose()


def test_coins_deduct_and_calls_cleanup_on_the_apps_database(app_db: str, adopted: Engine) -> None:
    engine = adopted
    with transaction(engine) as s:

        def party(role: str = "customer", **kw: Any) -> int:
            seen = kw.pop("seen", FRESH)
            return add_user(s, role=role, online=True, last_seen=seen, busy=True, **kw)

        u = {
            "A": party(balance=500, wait_time=30),
            "B": party(balance=100, wait_time=1),
            "C": party(wait_time=1),  # no wallet
            "D": party(balance=1000, wait_time=50, seen=T - timedelta(minutes=15)),
            "E": party(balance=1000, wait_time=9),
            "F": party(balance=50, wait_time=0),
            **{f"L{n}": party("listener", balance=0) for n in (1, 4, 5, 6)},
            "L2": party("listener"),  # no wallet
            "L3": party("listener", balance=0, money=Decimal("20.00")),
        }
        add_badge(s, u["L1"], date(2026, 11, 29), "gold", "1.80", "10.00")
        add_badge(s, u["L3"], date(2026, 11, 29), "silver", "1.50", "8.50")
        add_badge(s, u["L3"], date(2026, 11, 28), "gold", "1.80", "10.00")
        c = {
            1: add_call(s, u["A"], u["L1"], start=T - timedelta(seconds=450), coins_spent=10),
            2: add_call(
                s,
                u["B"],
                u["L2"],
                start=T - timedelta(minutes=3),
                call_type="video",
                coins_spent=60,
            ),
            3: add_call(s, u["C"], u["L3"], start=T - timedelta(seconds=65), coins_spent=10),
            4: add_call(s, u["D"], u["L4"], start=T - timedelta(minutes=20), coins_spent=210),
            5: add_call(s, u["E"], u["L5"], start=T - timedelta(minutes=242), coins_spent=2400),
            6: add_call(s, u["F"], u["L6"], start=T - timedelta(minutes=2), coins_spent=30),
        }
        s.commit()
    assert_ledger_balanced(engine)
    cli = Cli(app_db)

    deducted = cli("--now", T.isoformat(), "--json", "coins", "deduct")
    cleaned = cli("--now", T.isoformat(), "--json", "calls", "cleanup")

    assert (deducted.exit_code, cleaned.exit_code) == (0, 0), deducted.stderr + cleaned.stderr

    def ended(doc: Any) -> dict[int, tuple[int, list[str], str]]:
        return {
            b["call_id"]: (b["coins_charged"], b["reasons"], b["listener_earnings"])
            for b in json.loads(doc.stdout)["report"]["ended"]
        }

    def charged(doc: Any) -> tuple[int, int]:
        report = json.loads(doc.stdout)["report"]
        return report["calls_charged"], report["coins_charged"]

    assert ended(deducted) == {
        c[2]: (60, ["insufficient_balance"], "12.00"),  # 2 video minutes at 6.00
        c[3]: (0, ["insufficient_balance"], "1.50"),  # the silver badge of its date
    }
    # and, counted: c1 70 (7 missed minutes), c5 30 (deduction applies no cleanup rule)
    assert charged(deducted) == (3, 160)
    assert ended(cleaned) == {
        c[4]: (0, ["caller_stale"], "21.00"),
        c[5]: (0, ["too_long"], "243.00"),
        c[6]: (0, ["wait_time_up"], "3.00"),
    }
    assert charged(cleaned) == (0, 0)
    assert {user: wallet(engine, u[user]) for user in u} == {
        "A": (430, Decimal("0.00")),
        "B": (40, Decimal("0.00")),
        "C": None,
        "D": (1000, Decimal("0.00")),
        "E": (970, Decimal("0.00")),
        "F": (50, Decimal("0.00")),
        "L1": (0, Decimal("0.00")),
        "L2": (0, Decimal("12.00")),
        "L3": (0, Decimal("21.50")),
        "L4": (0, Decimal("21.00")),
        "L5": (0, Decimal("243.00")),
        "L6": (0, Decimal("3.00")),
    }
    written = {user: ledger_rows(engine, u[user])[-1] for user in ("A", "B", "E")}
    assert written == {
        "A": ("spend", -70, Decimal("0.00")),
        "B": ("spend", -60, Decimal("0.00")),
        "E": ("spend", -30, Decimal("0.00")),
    }
    for user, money in {
        "L2": "12.00",
        "L3": "1.50",
        "L4": "21.00",
        "L5": "243.00",
        "L6": "3.00",
    }.items():
        assert ledger_rows(engine, u[user])[-1] == ("earn", 0, Decimal(money)), user
    assert ledger_rows(engine, u["L1"]) == []
    calls = {
        n: (
            row.status,
            row.end_time,
            row.duration_seconds,
            row.duration_minutes,
            row.coins_spent,
            row.listener_money_earned,
        )
        for n, row in ((n, call_row(engine, call)) for n, call in c.items())
    }
    assert calls == {
        1: ("ongoing", None, None, None, 80, 0),
        2: ("dropped", T, 180, 3, 120, 12),
        3: ("dropped", T, 65, 1, 10, 1),
        4: ("dropped", T, 1200, 20, 210, 21),
        5: ("dropped", T, 14520, 242, 2430, 243),
        6: ("dropped", T, 120, 2, 30, 3),
    }
    assert status_of(engine, u["A"]) == (True, 30)
    assert status_of(engine, u["L1"]) == (True, None)
    for user in ("B", "C", "D", "E", "F", "L2", "L3", "L4", "L5", "L6"):
        assert status_of(engine, u[user]) == (False, None), user
    assert_ledger_balanced(engine)

    after = money_tables(engine)
    again = [
        cli("--now", T.isoformat(), "--json", *cmd)
        for cmd in (("coins", "deduct"), ("calls", "cleanup"))
    ]
    assert [
        (report["calls_charged"], report["ended"])
        for report in (json.loads(r.stdout)["report"] for r in again)
    ] == [(0, []), (0, [])]
    assert money_tables(engine) == after


# --- concurrency -----------------------------------------------------------------------


@pytest.fixture
def busy_callers(engine: Engine) -> dict[int, int]:
    """60 callers, each on one call that owes 1-4 minutes; some cannot pay it all.

    Returns each caller's balance before billing.
    """
    balances: dict[int, int] = {}
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        for n in range(60):
            balance = (5, 25, 100, 1000)[n % 4]
            caller = add_user(s, balance=balance)
            balances[caller] = balance
            add_call(
                s,
                caller,
                listener,
                start=T - timedelta(seconds=60 * (n % 4 + 1) + 5),
                call_type="video" if n % 5 == 0 else "audio",
                coins_spent=60 if n % 5 == 0 else 10,
            )
        s.commit()
    return balances


def _expected_balances(engine: Engine, balances: dict[int, int]) -> dict[int, int]:
    """Each caller's balance after one run: what one run's plan charges them, read before
    any run (the report counts the calls only charged, it does not list them)."""
    planned = plan_query(T, Settings(), None)
    with transaction(engine, read_only=True) as s:
        charges = s.execute(
            sa.select(planned.c.caller_id, sa.func.sum(planned.c.charge)).group_by(
                planned.c.caller_id
            )
        ).all()
    expected = dict(balances)
    for caller_id, charge in charges:
        expected[caller_id] -= charge
    return expected


def _balances(engine: Engine, users: dict[int, int]) -> dict[int, int]:
    result = {}
    for user in users:
        found = wallet(engine, user)
        assert found is not None
        result[user] = found[0]
    return result


def test_two_coins_deduct_processes_started_together_charge_once(
    db_url: str, engine: Engine, busy_callers: dict[int, int]
) -> None:
    with transaction(engine, read_only=True) as s:
        one_run = billing.deduct(run_context(s, T, Settings(), apply=False))
    assert one_run.coins_charged > 0 and one_run.calls_ended > 0
    expected = _expected_balances(engine, busy_callers)

    argv = [
        SAATHII_OPS,
        "--database-url",
        db_url,
        "--now",
        T.isoformat(),
        "--json",
        "coins",
        "deduct",
    ]
    processes = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    docs = [json.loads(out) for out, _ in outputs]
    outcomes = sorted(d["outcome"] for d in docs)
    assert outcomes in (["ok", "ok"], ["ok", "skipped"])
    charged = sorted(d["report"]["coins_charged"] for d in docs if d["outcome"] == "ok")
    assert charged[-1] == one_run.coins_charged
    assert charged[:-1] in ([], [0])  # a second run after the first finds nothing owed
    assert _balances(engine, busy_callers) == expected
    with transaction(engine) as s:
        spend_rows = s.scalar(
            sa.text("SELECT count(*) FROM user_transactions WHERE tx_type = 'spend'")
        )
        outcomes_recorded = sorted(s.scalars(sa.select(ops_job_runs.c.outcome)))
    assert spend_rows == one_run.calls_charged
    assert outcomes_recorded == outcomes
    assert_ledger_balanced(engine)


def _run_in_thread(
    db_url: str, service: Callable[..., BillingReport], results: dict[str, Any], name: str
) -> threading.Thread:
    def work() -> None:
        engine = make_engine(parse_url(db_url))
        try:
            with transaction(engine) as s:
                results[name] = service(run_context(s, T, Settings(), apply=True))
                s.commit()
        except Exception as exc:  # reported by the test
            results[name] = exc
        finally:
            engine.dispose()

    thread = threading.Thread(target=work, name=name)
    thread.start()
    return thread


def test_a_run_racing_another_leaves_its_held_callers_and_charges_nothing_twice(
    db_url: str, engine: Engine, busy_callers: dict[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No job lock here: coin deduction holds its plan (and its row locks) open while call
    cleanup, a different job, bills the same callers. Cleanup must not wait for them: it
    leaves those callers' calls, named, for its next run, which finds nothing owed,
    instead of charging the same minutes again."""
    with transaction(engine) as s:
        stale_calls = dict(
            s.execute(
                sa.select(user_calls.c.call_id, user_calls.c.user_id)
                .order_by(user_calls.c.call_id)
                .limit(10)
            ).all()
        )
        for caller in stale_calls.values():
            s.execute(
                sa.insert(user_status).values(
                    user_id=caller, is_online=True, last_seen=T - timedelta(hours=1)
                )
            )
        s.commit()
    with transaction(engine, read_only=True) as s:
        one_run = billing.deduct(run_context(s, T, Settings(), apply=False))
    expected = _expected_balances(engine, busy_callers)

    planned, release = threading.Event(), threading.Event()
    holdings = conservation.holdings

    def pause_deduction_after_planning(session: Any, plan: Any) -> Any:
        if threading.current_thread().name == "deduct" and not planned.is_set():
            planned.set()
            assert release.wait(30)
        return holdings(session, plan)

    monkeypatch.setattr(conservation, "holdings", pause_deduction_after_planning)
    results: dict[str, Any] = {}
    deduct = _run_in_thread(db_url, billing.deduct, results, "deduct")
    assert planned.wait(30)
    cleanup = _run_in_thread(db_url, call_cleanup.cleanup, results, "cleanup")
    cleanup.join(30)
    cleanup_ended_while_held = not cleanup.is_alive()
    release.set()
    deduct.join(60)
    cleanup.join(60)

    assert cleanup_ended_while_held, f"cleanup waited for the deduction's locks: {results}"
    deducted, held_back = results["deduct"], results["cleanup"]
    assert isinstance(deducted, BillingReport) and isinstance(held_back, BillingReport), results
    assert deducted == one_run
    assert held_back.coins_charged == 0 and held_back.calls_ended == 0
    assert {h.call_id for h in held_back.held} == set(stale_calls)
    assert {h.held for h in held_back.held} <= {"the call", "the caller's wallet"}

    # cleanup's next run ends the stale callers' calls still ongoing, all paid up
    cleaned = run_service(engine, call_cleanup.cleanup, T, apply=True)
    ended_by_deduction = {b.call_id for b in one_run.ended}
    assert ended_by_deduction & set(stale_calls) and set(stale_calls) - ended_by_deduction
    assert [b.call_id for b in cleaned.ended] == sorted(set(stale_calls) - ended_by_deduction)
    assert all(b.reasons == ["caller_stale"] for b in cleaned.ended)
    assert cleaned.coins_charged == 0 and cleaned.held == []
    assert _balances(engine, busy_callers) == expected
    assert_ledger_balanced(engine)


def test_a_call_the_app_is_ending_is_left_to_the_app(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app holds the call's row (ending it) while cleanup runs: cleanup skips it
    instead of settling it too; when the app commits, the call is settled once, by the app."""
    with transaction(engine) as s:
        caller = add_user(s, balance=100, online=True, last_seen=T - timedelta(hours=1))
        listener = add_user(s, role="listener", balance=0)
        other_caller = add_user(s, balance=100, online=True, last_seen=T - timedelta(hours=1))
        racing = add_call(s, caller, listener, start=T - timedelta(minutes=5), coins_spent=60)
        other = add_call(s, other_caller, listener, start=T - timedelta(minutes=5), coins_spent=60)
        s.commit()

    app = engine.connect()
    app_tx = app.begin()
    app.execute(
        sa.update(user_calls)
        .where(user_calls.c.call_id == racing)
        .values(status="completed", end_time=T, duration_minutes=5)
    )
    try:
        result = Cli(db_url)("--now", T.isoformat(), "--json", "calls", "cleanup")
    finally:
        app_tx.commit()
        app.close()

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    assert [b["call_id"] for b in report["ended"]] == [other]
    assert call_row(engine, racing).status == "completed"
    assert call_row(engine, other).status == "dropped"
    # the listener was paid by us for the other call only (6 minutes at 1.00)
    assert ledger_rows(engine, listener) == [("earn", 0, Decimal("6.00"))]
    again = Cli(db_url)("--now", T.isoformat(), "--json", "calls", "cleanup")
    assert json.loads(again.stdout)["report"]["ended"] == []
    assert_ledger_balanced(engine)


def test_dry_run_takes_no_row_locks(
    db_url: str, engine: Engine, busy_callers: dict[int, int]
) -> None:
    """A dry-run is read-only: it must not wait for, or take, row locks."""
    holder = engine.connect()
    tx = holder.begin()
    holder.execute(sa.text("SELECT * FROM user_wallets FOR UPDATE"))
    try:
        result = Cli(db_url)("--now", T.isoformat(), "--json", "coins", "deduct", "--dry-run")
    finally:
        tx.rollback()
        holder.close()
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["report"]["coins_charged"] > 0


def test_the_app_topping_up_during_a_run_is_no_conservation_alarm(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app buys coins for the caller and the listener while the run charges and
    settles them: the run checks what it wrote, the app's coins land after it. The app's
    top-up writes back the balance it read before our debit (fact 13 of
    tests/simulated_app.py): the caller's debit is erased, which is `wallets audit`'s to
    name, not an alarm of the run's."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        s.execute(sa.insert(user_roles).values(user_id=listener, role="customer"))  # buys coins
        caller = add_user(s, balance=25)
        # owes 3 minutes (30 coins) at T0, can pay 2: charged 20 and ended, 2 minutes paid
        add_call(s, caller, listener, start=T0 - timedelta(seconds=150))
        s.commit()
    simulated = SimulatedApp(db_url)
    charge = charging.charge_chunk
    buyers: list[threading.Thread] = []

    def charge_while_the_app_buys(*args, **kwargs):  # type: ignore[no-untyped-def]
        for user in (caller, listener):
            buyer = threading.Thread(target=simulated.purchase, args=(user, 100, Decimal("9")))
            buyer.start()
            wait_for_a_lock_wait(engine, buyer)
            buyers.append(buyer)
        return charge(*args, **kwargs)

    monkeypatch.setattr(charging, "charge_chunk", charge_while_the_app_buys)
    try:
        result = run_job(engine, Settings(), get_job("coins-deduct"), now=T0, dry_run=False)
        for buyer in buyers:
            buyer.join()
    finally:
        simulated.close()
    assert (result.outcome, result.error) == ("ok", None)
    assert wallet(engine, caller) == (25 + 100, Decimal("0.00"))  # read 25: our 20 erased
    assert wallet(engine, listener) == (100, Decimal("2.00"))  # 2 paid minutes, basic audio
