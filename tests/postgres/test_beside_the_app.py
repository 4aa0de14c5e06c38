"""PostgreSQL only: saathii-ops beside the app, on a database built by the app's
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

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.billing.report import BillingReport
from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import (
    ops_half_ended_calls,
    ops_job_runs,
    ops_settlements,
    user_calls,
    user_transactions,
    user_wallets,
)
from saathii_ops.jobs.audit_findings import ENDED_AGAIN
from saathii_ops.jobs.wallet_audit import WalletAuditReport
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import RunResult, run_job
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.simulated_app import (
    AppError,
    SimulatedApp,
    libpq_dsn,
    observe_app_writes,
)

pytestmark = pytest.mark.usefixtures("postgresql_only")


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
    app.verify_listener(listener)
    payer, broke = app.sign_up(2, "customer"), app.sign_up(3, "customer")
    app.purchase(payer, 500, Decimal("49.00"))  # the rupees the customer paid
    app.purchase(broke, 10, Decimal("1.00"))
    # the app ends a call itself, paying the listener in coins (int(1.0 * 2) = 2)
    finished = app.start_call(payer, listener, started_ago=90).call_id
    assert cli("coins", "deduct").exit_code == 0  # bills its second minute
    assert app.end_call(finished).listener_money_earned == 2
    # an ongoing call whose caller paid the first minute and cannot pay the second
    unpaid = app.start_call(broke, listener, started_ago=70).call_id

    clean = cli("--json", "wallets", "audit")
    assert clean.exit_code == 0, clean.stdout
    assert _json(clean)["report"]["wallets_off"] == 0

    # the client's end reads the call; our run settles it before the app writes
    ours: list[Any] = []

    def coins_deduct_then_audit() -> None:
        ours.extend([cli("--json", "coins", "deduct"), cli("wallets", "audit")])

    re_ended = app.end_call(unpaid, after_read=coins_deduct_then_audit)
    deducted, audited_between = ours
    assert deducted.exit_code == 0, deducted.stderr
    (bill,) = _json(deducted)["report"]["ended"]
    assert (bill["call_id"], bill["listener_earnings"]) == (unpaid, "1.00")
    assert audited_between.exit_code == 0
    assert (re_ended.status, re_ended.listener_money_earned) == ("completed", 1)
    with pytest.raises(AppError) as late:  # a later end finds it ended: 404, nothing written
        app.end_call(unpaid)
    assert late.value.status == 404

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
    app.verify_listener(listener)
    # started over 240 minutes ago, so that calls cleanup's longest-call rule holds for it too
    call = app.start_call(caller, listener, started_ago=241 * 60).call_id
    app.end_call(call, reason="ongoing")  # end_time set, listener paid, still 'ongoing'

    def state() -> tuple[Any, ...]:
        with transaction(app_engine) as s:
            row = s.execute(sa.select(user_calls).where(user_calls.c.call_id == call)).one()
            coins = s.scalar(
                sa.select(user_wallets.c.balance_coins).where(user_wallets.c.user_id == caller)
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
        assert s.scalar(sa.select(sa.func.count()).select_from(ops_settlements)) == 0

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
        if any(thread.is_alive() for thread in self._threads):
            self.errors.append(TimeoutError("a billing worker still runs 120 s after the stop"))


@dataclass
class Traffic:
    """What the client did: the calls it tried to end after we had settled them (404), the
    top-ups of callers on a call."""

    not_found: set[int] = field(default_factory=set)
    top_ups_on_a_call: int = 0
    hang_ups: int = 0  # as the second minute fell due, by callers who could not pay it


def _drive(app: SimulatedApp, callers: list[int], listeners: list[int], seconds: float) -> Traffic:
    """The app's traffic: calls starting and ending (some with the reason 'ongoing', ended
    again later, some with 'coin_empty'), a few milliseconds of the app's own work between
    its read of a call and its write, top-ups of callers on a call (the app waiting on our
    wallet lock between its read and its write), purchases answered with 500 and retried."""
    rng = random.Random(9)
    traffic = Traffic()
    on_call: dict[int, int] = {}  # caller -> call, as the client believes
    half_ended: dict[int, int] = {}  # caller -> call it ended with the reason 'ongoing'
    peek = psycopg2.connect(libpq_dsn(app.url))  # the test's own reads, not the app's
    peek.autocommit = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        idle = [c for c in callers if c not in on_call and c not in half_ended]
        op = rng.random()
        try:
            if op < 0.2 and idle:
                caller = rng.choice(idle)
                on_call[caller] = app.start_call(
                    caller,
                    rng.choice(listeners),
                    rng.choice(("audio", "audio", "video")),
                    started_ago=rng.uniform(0, 150),
                ).call_id
            elif op < 0.4 and (broke := _can_pay_one_minute_only(peek, idle)):
                # the client hangs up as the second minute falls due, just as billing,
                # finding the caller unable to pay it, drops the call
                call = app.start_call(
                    rng.choice(broke), rng.choice(listeners), started_ago=60 - rng.uniform(0, 0.5)
                ).call_id
                traffic.hang_ups += 1
                time.sleep(rng.uniform(0, 0.5))
                work = rng.uniform(0.05, 0.4)
                try:
                    app.end_call(call, after_read=lambda w=work: time.sleep(w))
                except AppError as error:
                    assert error.status == 404, error  # we had ended it
                    traffic.not_found.add(call)
            elif op < 0.5 and idle:
                # a top-up as the call's next minute falls due: billing's debit commits
                # between the app's read of the balance and its write
                caller = rng.choice(idle)
                on_call[caller] = app.start_call(
                    caller,
                    rng.choice(listeners),
                    started_ago=60 * rng.randint(1, 3) - rng.uniform(0, 1.0),
                ).call_id
                traffic.top_ups_on_a_call += 1
                pause = rng.uniform(0.2, 0.8)
                app.purchase(caller, 20, Decimal("2.00"), after_read=lambda p=pause: time.sleep(p))
            elif op < 0.62 and on_call:
                caller = rng.choice(list(on_call))
                call = on_call[caller]
                reason = rng.choice(("completed", "completed", "dropped", "ongoing", "coin_empty"))
                work = rng.uniform(0.0, 0.3)
                try:
                    app.end_call(call, reason, after_read=lambda w=work: time.sleep(w))
                except AppError as error:
                    if error.status == 500:
                        continue  # coin_empty: still ongoing, both parties busy
                    assert error.status == 404, error  # we had ended it
                    traffic.not_found.add(call)
                else:
                    if reason == "ongoing":
                        half_ended[caller] = call
                del on_call[caller]
            elif op < 0.68 and half_ended:
                caller = rng.choice(list(half_ended))
                app.end_call(half_ended.pop(caller))  # the client ends it again
            elif op < 0.85 and on_call:
                traffic.top_ups_on_a_call += 1
                pause = rng.uniform(0, 0.5)
                app.purchase(
                    rng.choice(list(on_call)),
                    20,
                    Decimal("2.00"),
                    after_read=lambda p=pause: time.sleep(p),
                )
            else:
                caller = rng.choice(callers)
                try:
                    app.purchase(caller, 30, Decimal("3.00"), answers_500=rng.random() < 0.3)
                except AppError:
                    app.purchase(caller, 30, Decimal("3.00"))  # the client retries: bought twice
        except AppError as error:
            assert error.status in (400, 409), error  # no coins, a party busy
        time.sleep(0.02)
    peek.close()
    return traffic


def _can_pay_one_minute_only(peek: Any, callers: list[int]) -> list[int]:
    """The callers whose balance pays an audio call's first minute and not its second."""
    with peek.cursor() as cursor:
        cursor.execute(
            "SELECT user_id FROM user_wallets WHERE user_id = ANY(%(c)s) "
            "AND balance_coins BETWEEN 10 AND 19 ORDER BY user_id",
            {"c": callers},
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.app_race
def test_the_app_racing_four_workers_harms_only_what_the_audit_names(
    app_db: str, app: SimulatedApp, app_engine: Engine
) -> None:
    observe_app_writes(app_db)
    listeners = [app.sign_up(n, "listener") for n in range(10)]
    for listener in listeners:
        app.verify_listener(listener)
    callers = [app.sign_up(100 + n, "customer") for n in range(30)]
    rng = random.Random(1)
    for caller in callers:
        app.purchase(caller, rng.choice((10, 15, 20, 30, 60, 150)), Decimal("9.00"))

    with Workers(app_db) as workers:
        traffic = _drive(app, callers, listeners, seconds=25)
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

    # the truth, from the app's side: what its end-calls wrote and what its top-ups erased
    app_ends = Counter(w.call_id for w in app.end_writes)
    last_reason = {w.call_id: w.reason for w in app.end_writes}
    paid_twice_after_us = set(ended_by_us) & set(app_ends)
    paid_twice_by_the_app = {c for c, n in app_ends.items() if n > 1} - set(ended_by_us)
    still_half_ended = {c for c, reason in last_reason.items() if reason == "ongoing"} - set(
        ended_by_us
    )
    erased = app.erased_by_top_ups()
    races = len(traffic.not_found) + len(paid_twice_after_us)
    print(
        f"\nraces: {races} end-calls of calls we settled ({len(traffic.not_found)} answered "
        f"404, {len(paid_twice_after_us)} written: paid twice), {traffic.top_ups_on_a_call} "
        f"top-ups of callers on a call, {traffic.hang_ups} hang-ups as billing drops the "
        f"call; double payments: {len(paid_twice_after_us)} after our "
        f"settlement, {len(paid_twice_by_the_app)} by the app alone (a half-ended call ended "
        f"again); erased debits: {len(erased)} ({sum(erased.values())} coins); "
        f"{len(still_half_ended)} half-ended; {len(ended_by_us)} calls settled by us, "
        f"{sum(b.replanned_calls for b in bills)} planned again under the locks; "
        f"runs: {dict(outcomes)}"
    )

    with transaction(app_engine) as s:
        assert s.scalar(sa.select(sa.func.min(user_wallets.c.balance_coins))) >= 0
        records = s.execute(sa.select(ops_settlements)).all()
        our_earn_rows = {
            row.transaction_id: row
            for row in s.execute(
                sa.select(user_transactions).where(
                    user_transactions.c.tx_type == "earn", user_transactions.c.money_change > 0
                )
            )
        }
        run_uuids = set(s.scalars(sa.select(ops_job_runs.c.run_uuid)))

    # every call we settled: in our record exactly once, paid exactly once, by one run
    assert len(ended_by_us) == len(set(ended_by_us))
    assert sorted(r.call_id for r in records) == sorted(ended_by_us)
    assert all(r.run_uuid in run_uuids for r in records)
    paid = [r for r in records if r.earnings > 0]
    assert sorted(our_earn_rows) == sorted(r.earn_transaction_id for r in paid)
    for record in paid:
        row = our_earn_rows[record.earn_transaction_id]
        assert (row.wallet_id, row.money_change) == (record.listener_wallet_id, record.earnings)

    # the audit names every harm, and nothing else
    assert {c.call_id for c in audit.changed_after_settlement} == paid_twice_after_us
    assert {c.call_id for c in audit.half_ended} == still_half_ended
    assert {w.wallet_id: w.coins_difference for w in audit.wallets} == erased
    assert all(w.money_difference == 0 for w in audit.wallets)
    assert audit.calls == []
    # a half-ended call the app ended again paid its listener twice: named when a run of
    # ours saw its half-ended version first (ops_half_ended_calls) and the app's later end
    # changed it; one the app ended twice between two runs of ours leaves no trace
    with transaction(app_engine) as s:
        seen_then_changed = set(
            s.scalars(
                sa.select(ops_half_ended_calls.c.call_id)
                .join(user_calls, user_calls.c.call_id == ops_half_ended_calls.c.call_id)
                .where(user_calls.c.end_time != ops_half_ended_calls.c.end_time)
            )
        )
    named_again = {c.call_id for c in audit.ended_again_after_half_end}
    assert named_again == paid_twice_by_the_app & seen_then_changed
    print(
        f"half-ended calls the app ended again: {len(paid_twice_by_the_app)}, "
        f"named by the audit: {len(named_again)}"
    )
    harmed = paid_twice_after_us or still_half_ended or erased or named_again
    assert audited.exit_code == (1 if harmed else 0)
