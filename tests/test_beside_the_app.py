"""PostgreSQL only: saathii-ops beside the app (issue 9), on a database built by the app's
DDL and written by the simulated app (tests/simulated_app.py) as the real one writes."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db import make_engine, parse_url, transaction
from saathii_ops.jobs import get_job
from saathii_ops.models import JobRun, Settlement, UserCall, UserTransaction, UserWallet
from saathii_ops.runner import RunResult, run_job
from saathii_ops.services.billing import BillingReport
from saathii_ops.services.wallet_audit import ENDED_AGAIN, WalletAuditReport
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.simulated_app import SimulatedApp, create_app_schema


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the app's DDL is PostgreSQL")


@pytest.fixture
def app_db(empty_db_url: str) -> str:
    """A database the app created, then `db adopt` and `db upgrade`."""
    create_app_schema(empty_db_url)
    for command in (("db", "adopt"), ("db", "upgrade")):
        result = Cli(empty_db_url)(*command)
        assert result.exit_code == 0, result.stderr
    return empty_db_url


@pytest.fixture
def app(app_db: str) -> Iterator[SimulatedApp]:
    simulated = SimulatedApp(app_db)
    yield simulated
    simulated.close()


@pytest.fixture
def app_engine(app_db: str) -> Iterator[Engine]:
    engine = make_engine(parse_url(app_db))
    yield engine
    engine.dispose()


def _json(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


# --- must show --------------------------------------------------------------------------


def test_the_apps_purchases_and_coin_earnings_audit_clean_until_it_re_ends_a_settled_call(
    app_db: str, app: SimulatedApp, app_engine: Engine
) -> None:
    cli = Cli(app_db)
    listener = app.sign_up(1, "listener")
    payer, broke = app.sign_up(2, "customer"), app.sign_up(3, "customer")
    app.purchase(payer, 500, Decimal("49.00"))  # the rupees the customer paid
    app.purchase(broke, 10, Decimal("1.00"))
    # the app ends a call itself, paying the listener in coins (int(1.00 * 2) = 2)
    finished = app.start_call(payer, listener, started_ago=90)
    assert finished is not None
    assert cli("coins", "deduct").exit_code == 0  # bills its second minute
    app.end_call(finished)
    # an ongoing call whose caller paid the first minute and cannot pay the second
    unpaid = app.start_call(broke, listener, started_ago=70)
    assert unpaid is not None

    clean = cli("--json", "wallets", "audit")
    assert clean.exit_code == 0, clean.stdout
    assert _json(clean)["report"]["wallets_off"] == 0

    deducted = cli("--json", "coins", "deduct")
    assert deducted.exit_code == 0, deducted.stderr
    (bill,) = _json(deducted)["report"]["ended"]
    assert (bill["call_id"], bill["listener_earnings"]) == (unpaid, "1.00")
    assert cli("wallets", "audit").exit_code == 0

    re_ended = app.end_call(unpaid)  # the client's end arrives after our settlement
    assert (re_ended.status_before, re_ended.status) == ("dropped", "completed")

    audit = cli("--json", "wallets", "audit")
    assert audit.exit_code == 1
    report = _json(audit)["report"]
    assert report["calls_changed_after_settlement"] == 1
    (changed,) = report["changed_after_settlement"]
    assert (changed["call_id"], changed["finding"], changed["earnings"]) == (
        unpaid,
        ENDED_AGAIN,
        "1.00",
    )
    assert (changed["settled_status"], changed["status_now"]) == ("dropped", "completed")
    assert changed["end_time_now"] != changed["settled_end_time"]
    # the app paid the listener again, in coins, with a row of its own: the ledger holds
    assert report["wallets_off"] == 0
    assert "ended again after settlement" in cli("wallets", "audit").stdout

    status = cli("--json", "status")
    assert status.exit_code == 1
    problems = _json(status)["problems"]
    assert any(
        p.startswith("wallets-audit's last run") and "calls changed after settlement 1" in p
        for p in problems
    ), problems


def test_coins_deduct_leaves_a_half_ended_call_alone_and_names_it(
    app_db: str, app: SimulatedApp, app_engine: Engine
) -> None:
    cli = Cli(app_db)
    listener = app.sign_up(1, "listener")
    caller = app.sign_up(2, "customer")
    app.purchase(caller, 100, Decimal("10.00"))
    call = app.start_call(caller, listener, started_ago=200)
    assert call is not None
    app.end_call(call, reason="ongoing")  # end_time set, listener paid, still 'ongoing'
    app.wait_time_up(caller)  # so that calls cleanup's rules hold for it too

    def state() -> tuple[Any, ...]:
        with transaction(app_engine) as s:
            row = s.execute(sa.select(UserCall.__table__).where(UserCall.call_id == call)).one()
            coins = s.scalar(
                sa.select(UserWallet.balance_coins).where(UserWallet.user_id == caller)
            )
        return (*row, coins)

    before = state()
    for command in (("coins", "deduct"), ("calls", "cleanup")):
        result = cli("--json", *command)
        assert result.exit_code == 1, result.stderr
        report = _json(result)["report"]
        assert report["skipped"] == [
            {"call_id": call, "problem": "end_time is set: half-ended by the app"}
        ]
        assert (report["half_ended_calls"], report["calls_charged"], report["ended"]) == (1, 0, [])
    assert state() == before
    with transaction(app_engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Settlement)) == 0

    audit = cli("--json", "wallets", "audit")
    assert audit.exit_code == 1
    assert [c["call_id"] for c in _json(audit)["report"]["half_ended"]] == [call]
    status = cli("--json", "status")
    assert status.exit_code == 1
    problems = _json(status)["problems"]
    assert any("coins-deduct's last run" in p and "half ended calls 1" in p for p in problems)


# --- the app racing four workers ----------------------------------------------------------


@dataclass
class Workers:
    """Threads each running coins deduct then calls cleanup through the runner, until told."""

    url: str
    count: int = 4
    results: list[RunResult] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work) for _ in range(self.count)]

    def _work(self) -> None:
        engine = make_engine(parse_url(self.url))
        settings = Settings()
        try:
            while not self.stop.is_set():
                for name in ("coins-deduct", "calls-cleanup"):
                    result = run_job(engine, settings, get_job(name), now=None, dry_run=False)
                    with self._lock:
                        self.results.append(result)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            engine.dispose()

    def __enter__(self) -> Workers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(120)


def _drive(app: SimulatedApp, callers: list[int], listeners: list[int], seconds: float) -> None:
    """The app's traffic: calls starting and ending (some with the reason 'ongoing'),
    wait times running out just as the client hangs up, top-ups and purchases."""
    rng = random.Random(9)
    on_call: dict[int, int] = {}  # caller -> call, as the app believes
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        idle = [c for c in callers if c not in on_call]
        busy = list(on_call)
        op = rng.random()
        if op < 0.25 and idle:
            caller = rng.choice(idle)
            call = app.start_call(
                caller,
                rng.choice(listeners),
                rng.choice(("audio", "audio", "video")),
                started_ago=rng.uniform(0, 150),
            )
            if call is not None:
                on_call[caller] = call
        elif op < 0.45 and busy:
            caller = rng.choice(busy)
            reason = rng.choice(("completed", "completed", "dropped", "ongoing"))
            app.end_call(on_call.pop(caller), reason=reason)
        elif op < 0.6 and busy:
            caller = rng.choice(busy)
            app.wait_time_up(caller)  # calls cleanup ends it; the client hangs up too
            time.sleep(rng.uniform(0.0, 0.6))
            app.end_call(on_call.pop(caller), reason="completed")
        elif op < 0.9 and busy:
            app.top_up(rng.choice(busy), 100, Decimal("10.00"), pause=rng.uniform(0.2, 1.0))
        else:
            app.purchase(rng.choice(callers), 50, Decimal("5.00"))
        time.sleep(0.02)


@pytest.mark.app_race
def test_the_app_racing_four_workers_harms_only_what_the_audit_names(
    app_db: str, app: SimulatedApp, app_engine: Engine
) -> None:
    listeners = [app.sign_up(n, "listener") for n in range(8)]
    callers = [app.sign_up(100 + n, "customer") for n in range(30)]
    rng = random.Random(1)
    for caller in callers:
        app.purchase(caller, rng.choice((20, 60, 150, 400)), Decimal("9.00"))

    with Workers(app_db) as workers:
        _drive(app, callers, listeners, seconds=25)
    assert not workers.errors, workers.errors
    # quiet now: one more run of each bills every call up to now
    settings = Settings()
    for name in ("coins-deduct", "calls-cleanup"):
        last = run_job(app_engine, settings, get_job(name), now=None, dry_run=False)
        workers.results.append(last)
    audited = run_job(app_engine, settings, get_job("wallets-audit"), now=None, dry_run=False)
    audit = audited.report
    assert isinstance(audit, WalletAuditReport)

    outcomes = Counter((r.job, r.outcome, r.reason) for r in workers.results)
    assert not [r.error for r in workers.results if r.outcome == "failed"], outcomes
    bills = [r.report for r in workers.results if isinstance(r.report, BillingReport)]
    ended_by_us = [b.call_id for report in bills for b in report.ended]
    re_ended = {e.call_id for e in app.ended if e.status_before == "dropped"}
    half_ended = {e.call_id: e for e in app.ended if e.status_before == e.status == "ongoing"}
    lost: Counter[int] = Counter()
    for debit in app.lost_debits:
        lost[debit.wallet_id] += debit.coins
    print(
        f"\nraces: {len(re_ended)} calls ended again after our settlement, "
        f"{len(half_ended)} half-ended, {len(app.lost_debits)} debits lost "
        f"({sum(lost.values())} coins), "
        f"{sum(b.replanned_calls for b in bills)} calls planned again under the locks; "
        f"{len(ended_by_us)} calls settled by us; runs: {dict(outcomes)}"
    )

    with transaction(app_engine) as s:
        assert s.scalar(sa.select(sa.func.min(UserWallet.balance_coins))) >= 0
        records = s.execute(sa.select(Settlement.__table__)).all()
        our_earn_rows = {
            row.transaction_id: row
            for row in s.execute(
                sa.select(UserTransaction.__table__).where(
                    UserTransaction.tx_type == "earn", UserTransaction.money_change > 0
                )
            )
        }
        half_ended_now = dict(
            s.execute(
                sa.select(UserCall.call_id, UserCall.coins_spent).where(
                    UserCall.call_id.in_(list(half_ended))
                )
            ).all()
        )
        run_uuids = set(s.scalars(sa.select(JobRun.run_uuid)))

    # every call we settled: in our record exactly once, paid exactly once, by one run
    assert len(ended_by_us) == len(set(ended_by_us))
    assert sorted(r.call_id for r in records) == sorted(ended_by_us)
    assert all(r.run_uuid in run_uuids for r in records)
    paid = [r for r in records if r.earnings > 0]
    assert sorted(our_earn_rows) == sorted(r.earn_transaction_id for r in paid)
    for record in paid:
        row = our_earn_rows[record.earn_transaction_id]
        assert (row.wallet_id, row.money_change) == (record.listener_wallet_id, record.earnings)
    # a half-ended call was never billed nor settled by us afterwards
    assert not set(half_ended) & set(ended_by_us)
    assert half_ended_now == {c: e.coins_spent for c, e in half_ended.items()}

    # the audit names every harm, and nothing else
    assert {c.call_id for c in audit.changed_after_settlement} == re_ended
    assert {c.call_id for c in audit.half_ended} == set(half_ended)
    assert {w.wallet_id: w.coins_difference for w in audit.wallets} == dict(lost)
    assert all(w.money_difference == 0 for w in audit.wallets)
    assert audit.calls == []
    assert audited.exit_code == (1 if re_ended or half_ended or lost else 0)
