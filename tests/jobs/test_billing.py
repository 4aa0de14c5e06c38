"""Coin deduction (SPEC §4) and settlement (SPEC §5), at the service layer and through the CLI.

Every expected value is worked out by hand from the SPEC: audio 10 coins a
minute, video 60; basic listener rates 1.00 / 6.00 rupees a minute.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.billing import charging, settlement
from saathii_ops.billing import plan as plan_module
from saathii_ops.billing.plan import CHUNK_SIZE, StoredPlan
from saathii_ops.billing.report import BillingReport
from saathii_ops.db.engine import is_sqlite, transaction
from saathii_ops.db.tables import ops_job_runs, user_calls
from saathii_ops.demo import sample_data
from saathii_ops.jobs import call_cleanup
from saathii_ops.settings import Settings
from tests.billing_checks import (
    assert_ledger_balanced,
    call_row,
    ledger_rows,
    money_tables,
    run_service,
    status_of,
    wallet,
)
from tests.factories import T0, add_badge, add_call, add_user, run_context

NOW = T0 + timedelta(hours=1)  # 07:00 UTC, 12:30 in Asia/Kolkata


pytestmark = pytest.mark.usefixtures("ledger_stays_balanced")


def deduct(engine: Engine, now: datetime = NOW, *, apply: bool = True) -> BillingReport:
    return run_service(engine, billing.deduct, now, apply=apply)


def one_call(
    engine: Engine,
    *,
    elapsed: timedelta,
    coins_spent: int | None,
    balance: int | None,
    call_type: str | None = "audio",
    listener_money: Decimal | None = Decimal("0.00"),
) -> dict[str, int]:
    """A caller (busy, wait_time 5) on one call with a listener (busy), started `elapsed` ago."""
    with transaction(engine) as s:
        caller = add_user(s, balance=balance, online=True, last_seen=NOW, busy=True, wait_time=5)
        listener = add_user(
            s,
            role="listener",
            balance=None if listener_money is None else 0,
            money=listener_money or Decimal("0.00"),
            online=True,
            last_seen=NOW,
            busy=True,
        )
        call = add_call(
            s,
            caller,
            listener,
            start=NOW - elapsed,
            call_type=call_type,
            coins_spent=coins_spent,
        )
        s.commit()
    return {"caller": caller, "listener": listener, "call": call}


# --- the formulas ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "call_type", "coins_spent", "charge"),
    [
        pytest.param(timedelta(seconds=0), "audio", 10, 0, id="start: first minute prepaid"),
        pytest.param(timedelta(seconds=59), "audio", 10, 0, id="59s: first minute prepaid"),
        pytest.param(timedelta(seconds=60), "audio", 10, 10, id="60s: second minute"),
        pytest.param(timedelta(seconds=119), "audio", 10, 10, id="119s: still two minutes"),
        pytest.param(timedelta(seconds=450), "audio", 10, 70, id="catch up 7 missed minutes"),
        pytest.param(timedelta(minutes=3), "video", 60, 180, id="video: 3 more minutes"),
        pytest.param(timedelta(seconds=10), "audio", 0, 10, id="first minute not prepaid"),
        pytest.param(timedelta(seconds=60), "audio", 50, 0, id="paid ahead: nothing owed"),
        pytest.param(timedelta(seconds=125), "audio", 15, 15, id="part minutes: owed exactly"),
        pytest.param(timedelta(seconds=-30), "audio", 0, 0, id="starts in 30s: nothing"),
        pytest.param(timedelta(minutes=-10), "video", 0, 0, id="starts in 10min: nothing"),
    ],
)
def test_coins_due_per_started_minute(
    engine: Engine, elapsed: timedelta, call_type: str, coins_spent: int, charge: int
) -> None:
    ids = one_call(
        engine, elapsed=elapsed, coins_spent=coins_spent, balance=1000, call_type=call_type
    )

    report = deduct(engine)

    assert wallet(engine, ids["caller"]) == (1000 - charge, Decimal("0.00"))
    spend_rows = [row for row in ledger_rows(engine, ids["caller"]) if row[0] == "spend"]
    assert spend_rows == ([("spend", -charge, Decimal("0.00"))] if charge else [])
    call = call_row(engine, ids["call"])
    assert (call.status, call.coins_spent, call.end_time) == ("ongoing", coins_spent + charge, None)
    assert report.coins_charged == charge
    assert (report.calls_charged, report.calls_ended) == (1 if charge else 0, 0)
    assert report.ended == []


def test_catch_up_is_one_ledger_row_and_counted_once(engine: Engine) -> None:
    ids = one_call(engine, elapsed=timedelta(minutes=7, seconds=30), coins_spent=10, balance=500)

    report = deduct(engine)

    # a call only charged is counted, not listed
    assert (report.ended, report.skipped) == ([], [])
    assert (report.calls_charged, report.coins_charged, report.minutes_charged) == (1, 70, 7)
    assert ledger_rows(engine, ids["caller"]) == [
        ("purchase", 500, Decimal("0.00")),
        ("spend", -70, Decimal("0.00")),
    ]
    # the call goes on: nobody's busy flag is touched
    assert status_of(engine, ids["caller"]) == (True, 5)


# --- idempotence ---------------------------------------------------------------------


def test_a_second_run_at_the_same_instant_charges_nothing(engine: Engine) -> None:
    ids = one_call(engine, elapsed=timedelta(minutes=3, seconds=1), coins_spent=10, balance=100)

    first = deduct(engine)
    second = deduct(engine)

    assert (first.coins_charged, second.coins_charged) == (30, 0)
    assert (second.calls_charged, second.calls_ended, second.ended) == (0, 0, [])
    assert wallet(engine, ids["caller"]) == (70, Decimal("0.00"))
    assert call_row(engine, ids["call"]).coins_spent == 40


def test_runs_every_half_minute_charge_each_started_minute_once(engine: Engine) -> None:
    ids = one_call(engine, elapsed=timedelta(seconds=50), coins_spent=10, balance=100)

    charged = [deduct(engine, NOW + timedelta(seconds=s)).coins_charged for s in (0, 30, 60, 70)]

    # elapsed 50 s, 80 s, 110 s, 120 s: minutes started 1, 2, 2, 3
    assert charged == [0, 10, 0, 10]
    assert call_row(engine, ids["call"]).coins_spent == 30
    assert [r[1] for r in ledger_rows(engine, ids["caller"])] == [100, -10, -10]


def test_a_missed_run_is_caught_up_by_the_next(engine: Engine) -> None:
    ids = one_call(engine, elapsed=timedelta(seconds=5), coins_spent=10, balance=1000)

    deduct(engine, NOW + timedelta(minutes=1))
    # the runs at +2 … +8 minutes never happened: at +9 (elapsed 545 s) the call has
    # started its 10th minute, and 2 are paid
    report = deduct(engine, NOW + timedelta(minutes=9))

    assert report.coins_charged == 80
    assert (report.calls_charged, report.minutes_charged) == (1, 8)
    assert call_row(engine, ids["call"]).coins_spent == 100


# --- not enough coins: charge whole minutes, end, settle -----------------------------


@pytest.mark.parametrize(
    (
        "call_type",
        "elapsed",
        "coins_spent",
        "balance",
        "charge",
        "earnings",
    ),
    [
        # due 60, owed 50; 25 coins cover 2 minutes: paid 3 minutes at 1.00
        pytest.param("audio", timedelta(minutes=5, seconds=10), 10, 25, 20, "3.00", id="audio"),
        # due 240, owed 180; 100 coins cover 1 minute: paid 2 minutes at 6.00
        pytest.param("video", timedelta(minutes=3), 60, 100, 60, "12.00", id="video"),
        # a negative balance counts as 0: paid the prepaid minute only
        pytest.param("audio", timedelta(seconds=70), 10, -30, 0, "1.00", id="negative balance"),
        # no wallet is a balance of 0
        pytest.param("audio", timedelta(seconds=70), 10, None, 0, "1.00", id="no wallet"),
        # 15 spent, due 30: 5 coins make a whole second minute, the third is unpaid
        pytest.param("audio", timedelta(seconds=125), 15, 12, 5, "2.00", id="part minutes"),
        # nothing was ever paid: the listener earns nothing
        pytest.param("audio", timedelta(seconds=70), 0, 5, 0, "0.00", id="nothing paid"),
    ],
)
def test_a_caller_who_cannot_pay_is_charged_whole_minutes_and_the_call_ends(
    engine: Engine,
    call_type: str,
    elapsed: timedelta,
    coins_spent: int,
    balance: int | None,
    charge: int,
    earnings: str,
) -> None:
    ids = one_call(
        engine, elapsed=elapsed, coins_spent=coins_spent, balance=balance, call_type=call_type
    )

    report = deduct(engine)

    e = int(elapsed.total_seconds())
    call = call_row(engine, ids["call"])
    assert (call.status, call.end_time) == ("dropped", NOW)
    assert (call.duration_seconds, call.duration_minutes) == (e, max(1, e // 60))
    assert call.coins_spent == coins_spent + charge
    assert call.listener_money_earned == int(Decimal(earnings))
    if balance is None:
        assert wallet(engine, ids["caller"]) is None
    else:
        assert wallet(engine, ids["caller"]) == (balance - charge, Decimal("0.00"))
    assert wallet(engine, ids["listener"]) == (0, Decimal(earnings))
    earn_rows = [("earn", 0, Decimal(earnings))] if Decimal(earnings) else []
    assert ledger_rows(engine, ids["listener"]) == earn_rows
    assert status_of(engine, ids["caller"]) == (False, None)
    assert status_of(engine, ids["listener"]) == (False, None)
    (bill,) = report.ended
    assert (bill.coins_charged, bill.reasons) == (charge, ["insufficient_balance"])
    assert bill.listener_earnings == Decimal(earnings)
    assert (report.calls_ended, report.listener_earnings) == (1, Decimal(earnings))


def test_listener_is_paid_at_the_badge_rate_of_the_calls_business_date(engine: Engine) -> None:
    start = datetime(2026, 11, 28, 18, 29, 30, tzinfo=UTC)  # 23:59:30 on the 28th in Kolkata
    now = start + timedelta(minutes=5, seconds=10)  # 00:04:40 on the 29th
    with transaction(engine) as s:
        caller = add_user(s, balance=25, online=True, last_seen=now, busy=True, wait_time=2)
        listener = add_user(
            s, role="listener", balance=0, money=Decimal("100.00"), online=True, busy=True
        )
        add_badge(s, listener, date(2026, 11, 28), "gold", "1.80", "10.00")
        add_badge(s, listener, date(2026, 11, 29), "silver", "1.50", "8.50")
        call = add_call(s, caller, listener, start=start, coins_spent=10)
        s.commit()

    report = deduct(engine, now)

    # due 60, owed 50, 25 coins cover 2 minutes: 3 paid minutes at gold's 1.80
    assert report.ended[0].listener_earnings == Decimal("5.40")
    assert wallet(engine, listener) == (0, Decimal("105.40"))
    assert ledger_rows(engine, listener)[-1] == ("earn", 0, Decimal("5.40"))
    assert call_row(engine, call).listener_money_earned == 5
    assert wallet(engine, caller) == (5, Decimal("0.00"))


def test_a_listener_without_a_wallet_gets_one(engine: Engine) -> None:
    ids = one_call(
        engine,
        elapsed=timedelta(minutes=2),
        coins_spent=60,
        balance=0,
        call_type="video",
        listener_money=None,
    )
    assert wallet(engine, ids["listener"]) is None

    deduct(engine)

    assert wallet(engine, ids["listener"]) == (0, Decimal("6.00"))
    assert ledger_rows(engine, ids["listener"]) == [("earn", 0, Decimal("6.00"))]


# --- a caller with several calls -----------------------------------------------------


# a chunk per call: each caller's calls, their wallet and their listeners' are charged and
# settled in different chunks, as at 50,000 calls
one_call_per_chunk = pytest.mark.parametrize("chunk_size", [CHUNK_SIZE, 1])


@one_call_per_chunk
def test_a_callers_balance_goes_to_their_calls_in_start_order(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    monkeypatch.setattr(plan_module, "CHUNK_SIZE", chunk_size)
    with transaction(engine) as s:
        caller = add_user(s, balance=30)
        first_listener, second_listener, third_listener = (
            add_user(s, role="listener", balance=0) for _ in range(3)
        )
        # created first (lower call_id) but started last
        late = add_call(
            s, caller, third_listener, start=NOW - timedelta(seconds=65), coins_spent=10
        )
        early = add_call(
            s, caller, first_listener, start=NOW - timedelta(minutes=3, seconds=10), coins_spent=10
        )
        middle = add_call(
            s, caller, second_listener, start=NOW - timedelta(minutes=2), coins_spent=10
        )
        s.commit()

    report = deduct(engine)

    # owed: early 30, middle 20, late 10; the 30 coins pay early in full
    ended = {b.call_id: b.coins_charged for b in report.ended}
    assert ended == {middle: 0, late: 0}
    assert (report.calls_charged, report.coins_charged) == (1, 30)
    assert wallet(engine, caller) == (0, Decimal("0.00"))
    assert [call_row(engine, c).status for c in (early, middle, late)] == [
        "ongoing",
        "dropped",
        "dropped",
    ]


@one_call_per_chunk
def test_a_balance_shared_by_two_calls_pays_what_it_covers_in_order(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    monkeypatch.setattr(plan_module, "CHUNK_SIZE", chunk_size)
    with transaction(engine) as s:
        caller = add_user(s, balance=100)
        listeners = [add_user(s, role="listener", balance=0) for _ in range(2)]
        start = NOW - timedelta(minutes=2, seconds=30)
        # same start: call_id decides
        video = add_call(s, caller, listeners[0], start=start, call_type="video", coins_spent=60)
        audio = add_call(s, caller, listeners[1], start=start, coins_spent=10)
        s.commit()

    report = deduct(engine)

    # video owes 120 and gets 60 (one whole minute of the 100); audio owes 20 and gets 20
    (ended,) = report.ended
    assert (ended.call_id, ended.coins_charged) == (video, 60)
    assert (report.calls_charged, report.coins_charged) == (2, 80)
    assert call_row(engine, audio).coins_spent == 30
    assert wallet(engine, caller) == (20, Decimal("0.00"))
    assert ended.listener_earnings == Decimal("12.00")


# --- rows that cannot be billed -----------------------------------------------------


def _insert_unknown_call_type(engine: Engine, caller: int, listener: int) -> int:
    """A call_type the CHECK constraint forbids, as a broken app might still write."""
    with transaction(engine) as s:
        if is_sqlite(s):
            s.execute(sa.text("PRAGMA ignore_check_constraints = 1"))
        else:
            s.execute(sa.text("ALTER TABLE user_calls DROP CONSTRAINT user_calls_call_type_check"))
        call = add_call(
            s, caller, listener, start=NOW - timedelta(minutes=5), call_type="fax", coins_spent=0
        )
        if is_sqlite(s):
            s.execute(sa.text("PRAGMA ignore_check_constraints = 0"))
        s.commit()
    return call


def test_rows_that_cannot_be_billed_are_reported_and_skipped(cli: Any, engine: Engine) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=100)
        listener = add_user(s, role="listener", balance=0)
        start = NOW - timedelta(minutes=5)
        no_type = add_call(s, caller, listener, start=start, call_type=None, coins_spent=10)
        negative = add_call(s, caller, listener, start=start, coins_spent=-10)
        no_listener = add_call(s, caller, None, start=start, coins_spent=10)
        good = add_call(s, caller, listener, start=start, coins_spent=10)
        s.commit()
    fax = _insert_unknown_call_type(engine, caller, listener)
    before = {c: call_row(engine, c) for c in (no_type, negative, no_listener, fax)}

    result = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")

    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "ok"
    assert doc["report"]["skipped"] == [
        {"call_id": no_type, "problem": "unknown call_type None"},
        {"call_id": negative, "problem": "coins_spent is negative"},
        {"call_id": no_listener, "problem": "no listener_id"},
        {"call_id": fax, "problem": "unknown call_type 'fax'"},
    ]
    assert doc["report"]["skipped_calls"] == 4
    # the good call was charged and committed; the bad ones are untouched
    assert (doc["report"]["calls_charged"], doc["report"]["ended"]) == (1, [])
    assert call_row(engine, good).coins_spent == 60
    assert wallet(engine, caller) == (50, Decimal("0.00"))
    assert {c: call_row(engine, c) for c in before} == before
    with transaction(engine) as s:
        run = s.execute(sa.select(ops_job_runs.c.outcome, ops_job_runs.c.counts)).one()
    assert (run.outcome, run.counts["skipped_calls"], run.counts["coins_charged"]) == ("ok", 4, 50)


# --- dry-run and the CLI ------------------------------------------------------------


@pytest.fixture
def calls_of_every_kind(engine: Engine) -> dict[str, int]:
    """A call that pays, one that catches up, one that cannot pay, one owing nothing."""
    with transaction(engine) as s:
        rich = add_user(s, balance=1000, online=True, last_seen=NOW, busy=True, wait_time=90)
        poor = add_user(s, balance=15, online=True, last_seen=NOW, busy=True, wait_time=1)
        listeners = [
            add_user(s, role="listener", balance=0, online=True, last_seen=NOW, busy=True)
            for _ in range(3)
        ]
        ids = {
            "pays": add_call(
                s, rich, listeners[0], start=NOW - timedelta(seconds=61), coins_spent=10
            ),
            "video_behind": add_call(
                s,
                rich,
                listeners[1],
                start=NOW - timedelta(minutes=4),
                call_type="video",
                coins_spent=120,
            ),
            "cannot_pay": add_call(
                s, poor, listeners[2], start=NOW - timedelta(minutes=3), coins_spent=20
            ),
            "owes_nothing": add_call(
                s, poor, listeners[2], start=NOW - timedelta(seconds=30), coins_spent=10
            ),
        }
        s.commit()
    return ids


def test_dry_run_reports_what_the_real_run_does_and_changes_nothing(
    cli: Any, engine: Engine, calls_of_every_kind: dict[str, int]
) -> None:
    ids = calls_of_every_kind
    before = money_tables(engine)

    dry = cli("--now", NOW.isoformat(), "--json", "coins", "deduct", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert money_tables(engine) == before

    real = cli("--now", NOW.isoformat(), "coins", "deduct", "--json")
    assert real.exit_code == 0, real.stderr
    dry_doc, real_doc = json.loads(dry.stdout), json.loads(real.stdout)
    assert (dry_doc["outcome"], real_doc["outcome"]) == ("dry-run", "ok")
    # the dry-run names every call it would charge; the real run counts them
    charged = dry_doc["report"].pop("charged")
    assert real_doc["report"].pop("charged") is None
    assert charged == [
        {
            "call_id": ids[kind],
            "caller_id": call_row(engine, ids[kind]).user_id,
            "coins_charged": coins,
            "minutes_charged": minutes,
        }
        for kind, coins, minutes in sorted(
            [("pays", 10, 1), ("video_behind", 180, 3), ("cannot_pay", 10, 1)],
            key=lambda kind: ids[kind[0]],
        )
    ]
    assert dry_doc["report"] == real_doc["report"]
    report = real_doc["report"]
    # pays: 10; video_behind: due 300, spent 120 → 180; cannot_pay: owes 20, 15 cover 10
    # the calls only charged are counted; the one that ends is listed in full
    assert report["ended"] == [
        {
            "call_id": ids["cannot_pay"],
            "caller_id": call_row(engine, ids["cannot_pay"]).user_id,
            "listener_id": call_row(engine, ids["cannot_pay"]).listener_id,
            "call_type": "audio",
            "coins_charged": 10,
            "minutes_charged": 1,
            "coins_spent": 30,
            "reasons": ["insufficient_balance"],
            "listener_earnings": "3.00",
        }
    ]
    assert "cache_updates" not in report
    assert [call_row(engine, ids[c]).coins_spent for c in ("pays", "video_behind")] == [20, 300]
    assert {k: report[k] for k in ("calls_charged", "coins_charged", "minutes_charged")} == {
        "calls_charged": 3,
        "coins_charged": 200,
        "minutes_charged": 5,
    }
    assert (report["calls_ended"], report["listener_earnings"]) == (1, "3.00")
    assert money_tables(engine) != before

    after_first = money_tables(engine)
    again = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")
    assert json.loads(again.stdout)["report"]["calls_charged"] == 0
    assert money_tables(engine) == after_first


def test_runs_are_recorded_with_their_counts(
    cli: Any, engine: Engine, calls_of_every_kind: dict[str, int]
) -> None:
    cli("--now", NOW.isoformat(), "coins", "deduct", "--dry-run")
    cli("--now", NOW.isoformat(), "coins", "deduct")
    with transaction(engine) as s:
        runs = s.execute(
            sa.select(ops_job_runs.c.job, ops_job_runs.c.outcome, ops_job_runs.c.counts)
        ).all()
    assert [(r.job, r.outcome) for r in runs] == [("coins-deduct", "ok")]
    assert runs[0].counts == {
        "calls_charged": 3,
        "coins_charged": 200,
        "minutes_charged": 5,
        "calls_ended": 1,
        "skipped_calls": 0,
        "half_ended_calls": 0,
        "replanned_calls": 0,
        "held_calls": 0,
    }


def test_human_output_lists_each_call(cli: Any, calls_of_every_kind: dict[str, int]) -> None:
    result = cli("--now", NOW.isoformat(), "coins", "deduct", "--dry-run")
    assert result.exit_code == 0
    # one line for the run, then each call that ends, indented
    headline, *calls = result.stdout.splitlines()
    assert headline.startswith("job=coins-deduct outcome=dry-run exit_code=0 ")
    assert headline.endswith(
        ' summary="charged 3 calls 200 coins (5 minutes), '
        'ended 1 (listeners earned 3.00), skipped 0"'
    )
    cannot_pay = calls_of_every_kind["cannot_pay"]
    assert calls[0].startswith(f"  ended call_id={cannot_pay} ")
    assert "reasons=insufficient_balance" in result.stdout


def test_a_report_does_not_grow_with_the_calls_it_charges(cli: Any, engine: Engine) -> None:
    """3 charged calls or 60: the same report (counts, the call that ends, the bad row),
    the same JSON size but for the digits of its counts, the same lines of text."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        bad_caller = add_user(s, balance=100)
        add_call(s, bad_caller, listener, start=NOW - timedelta(minutes=3), coins_spent=-10)
        s.commit()

    def one_round(charged_calls: int) -> tuple[list[str], dict[str, Any]]:
        with transaction(engine) as s:
            for _ in range(charged_calls):
                caller = add_user(s, balance=1000)
                add_call(s, caller, listener, start=NOW - timedelta(minutes=2), coins_spent=10)
            poor = add_user(s, balance=0)
            add_call(s, poor, listener, start=NOW - timedelta(minutes=2), coins_spent=10)
            s.commit()
        text = cli("--now", NOW.isoformat(), "coins", "deduct", "--dry-run")
        real = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")
        assert (text.exit_code, real.exit_code) == (1, 1), real.stderr  # the bad row
        return text.stdout.splitlines(), json.loads(real.stdout)["report"]

    few_lines, few = one_round(3)
    many_lines, many = one_round(60)

    assert (few["calls_charged"], few["coins_charged"]) == (3, 60)
    assert (many["calls_charged"], many["coins_charged"]) == (60, 1200)
    assert [len(r["ended"]) for r in (few, many)] == [1, 1]
    assert [len(r["skipped"]) for r in (few, many)] == [1, 1]
    assert few.keys() == many.keys()
    # the counts gain a digit or two; a listed call would add hundreds of characters
    assert 0 <= len(json.dumps(many)) - len(json.dumps(few)) <= 10
    # a cron log entry: one line for the run, then the call that ends and the bad row
    assert len(few_lines) == len(many_lines) == 3, many_lines
    assert many_lines[0].startswith("job=coins-deduct outcome=dry-run exit_code=1 ")
    assert ' summary="charged 60 calls ' in many_lines[0]
    assert [line.split()[0] for line in many_lines[1:]] == ["ended", "skipped"]


# --- conservation and guards: a failed run changes nothing ---------------------------


def _failed_runs(engine: Engine) -> list[str | None]:
    with transaction(engine) as s:
        return list(
            s.scalars(sa.select(ops_job_runs.c.error).where(ops_job_runs.c.outcome == "failed"))
        )


def test_a_conservation_violation_rolls_the_run_back(
    cli: Any,
    engine: Engine,
    calls_of_every_kind: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault planted in the ledger step: one coin too few written for the whole run."""
    charge = charging.charge_chunk

    def short_by_one_coin(session: Any, now: datetime, plan: Any, chunk: Any) -> int:
        written = charge(session, now, plan, chunk)
        ledger = charging.ledger
        session.execute(
            sa.update(ledger)
            .where(
                ledger.c.transaction_id
                == sa.select(sa.func.max(ledger.c.transaction_id)).scalar_subquery()
            )
            .values(coins_change=ledger.c.coins_change + 1)
        )
        return written + 1

    monkeypatch.setattr(charging, "charge_chunk", short_by_one_coin)
    before = money_tables(engine)

    result = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")

    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "failed"
    assert doc["error"].startswith("ConservationError: conservation violated")
    assert money_tables(engine) == before
    (error,) = _failed_runs(engine)
    assert error is not None and "spend rows 199" in error


def test_a_rupee_conservation_violation_rolls_the_run_back(
    cli: Any,
    engine: Engine,
    calls_of_every_kind: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault planted in settlement: a listener credited a paisa more than the ledger says."""
    settle = settlement.settle

    def generous(session: Any, now: datetime, plan: StoredPlan, chunk: Any, run_id: str) -> Any:
        settled = settle(session, now, plan, chunk, run_id)
        wallets = settlement.wallets
        session.execute(
            sa.update(wallets)
            .where(wallets.c.user_id.in_(sa.select(plan.listener_id).where(plan.ends)))
            .values(withdrawable_money=wallets.c.withdrawable_money + Decimal("0.01"))
        )
        return settled

    monkeypatch.setattr(settlement, "settle", generous)
    before = money_tables(engine)

    result = cli("--now", NOW.isoformat(), "coins", "deduct")

    assert result.exit_code == 1
    assert money_tables(engine) == before
    (error,) = _failed_runs(engine)
    assert error is not None and "credited to listeners 3.01" in error


def test_a_call_the_app_ended_after_the_plan_is_not_settled_again(
    cli: Any,
    engine: Engine,
    calls_of_every_kind: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between billing and settlement the app completes the call (simulated inside the
    run's transaction, since the job's row locks keep the real app out): the guarded
    settlement refuses it and the run is rolled back; the next run leaves the call alone."""
    cannot_pay = calls_of_every_kind["cannot_pay"]
    charge = charging.charge_chunk

    def app_completes_the_call(session: Any, now: datetime, plan: Any, chunk: Any) -> int:
        written = charge(session, now, plan, chunk)
        session.execute(
            sa.update(user_calls)
            .where(user_calls.c.call_id == cannot_pay)
            .values(status="completed")
        )
        return written

    monkeypatch.setattr(charging, "charge_chunk", app_completes_the_call)
    before = money_tables(engine)

    result = cli("--now", NOW.isoformat(), "coins", "deduct")

    assert result.exit_code == 1
    assert money_tables(engine) == before
    (error,) = _failed_runs(engine)
    assert error == "PlanChanged: calls ended: 0 rows changed, the plan expected 1"

    # the app's change, committed for real: the call is not ongoing, so nobody settles it
    monkeypatch.undo()
    with transaction(engine) as s:
        s.execute(
            sa.update(user_calls)
            .where(user_calls.c.call_id == cannot_pay)
            .values(status="completed")
        )
        s.commit()
    listener = call_row(engine, cannot_pay).listener_id
    result = cli("--now", NOW.isoformat(), "--json", "coins", "deduct")
    assert result.exit_code == 0
    assert cannot_pay not in [c["call_id"] for c in json.loads(result.stdout)["report"]["ended"]]
    assert call_row(engine, cannot_pay).status == "completed"
    assert ledger_rows(engine, listener) == []


# --- on realistic data --------------------------------------------------------------


def test_on_sample_data_every_ongoing_call_is_paid_up_and_the_ledger_holds(
    engine: Engine,
) -> None:
    settings = Settings()
    with transaction(engine) as s:
        sample = sample_data.fill(s, NOW, settings, users=400, seed=11)
        s.commit()
    assert_ledger_balanced(engine)

    with transaction(engine) as s:
        deducted = billing.deduct(run_context(s, NOW, settings, apply=True))
        cleaned = call_cleanup.cleanup(run_context(s, NOW, settings, apply=True))
        s.commit()

    assert deducted.calls_charged > 0 and deducted.calls_ended > 0
    assert cleaned.calls_ended > 0 and deducted.skipped_calls == cleaned.skipped_calls == 0
    with transaction(engine) as s:
        # what a fresh plan finds at the same instant: nothing
        for again in (
            billing.deduct(run_context(s, NOW, settings, apply=False)),
            call_cleanup.cleanup(run_context(s, NOW, settings, apply=False)),
        ):
            assert (again.calls_charged, again.calls_ended, again.ended) == (0, 0, [])
        ongoing = s.scalar(
            sa.select(sa.func.count())
            .select_from(user_calls)
            .where(user_calls.c.status == "ongoing")
        )
    assert ongoing == sample.ongoing_calls - deducted.calls_ended - cleaned.calls_ended
