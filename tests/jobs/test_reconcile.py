"""`wallets reconcile` (SPEC §13): corrections for what the audit finds,
recorded in ops_corrections; history is never edited. The app's writes are plain SQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_corrections, user_calls, user_transactions, user_wallets
from saathii_ops.jobs import reconcile_apply
from tests.conftest import Cli
from tests.factories import add_call, add_user
from tests.support.half_ended import ENDED_AGAIN_AT, LATER, NOW, app_ends_call, half_ended_call

REASON = "top-up race of 2026-11-29, ticket OPS-7"


def run(cli: Cli, *args: str, now: datetime = LATER) -> tuple[int, dict[str, Any]]:
    result = cli("--now", now.isoformat(), "--json", "wallets", *args)
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def audit(cli: Cli) -> tuple[int, dict[str, Any]]:
    code, doc = run(cli, "audit")
    return code, doc["report"]


def wallet(engine: Engine, user_id: int) -> tuple[int, int, int]:
    """(wallet_id, balance_coins, Σ coins_change of its ledger)."""
    with transaction(engine) as s:
        wallet_id, balance = s.execute(
            sa.select(user_wallets.c.wallet_id, user_wallets.c.balance_coins).where(
                user_wallets.c.user_id == user_id
            )
        ).one()
        total = s.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(user_transactions.c.coins_change), 0)).where(
                user_transactions.c.wallet_id == wallet_id
            )
        )
    return wallet_id, balance, int(total)


def ledger_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every ledger row, in full: history is never edited or deleted."""
    with transaction(engine) as s:
        rows = s.execute(sa.select(user_transactions).order_by(user_transactions.c.transaction_id))
        return [tuple(getattr(row, c.name) for c in user_transactions.columns) for row in rows]


def corrections(engine: Engine) -> list[dict[str, Any]]:
    c = ops_corrections.c
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(
                c.corrected_by,
                c.reason,
                c.finding,
                c.action,
                c.wallet_id,
                c.call_id,
                c.coins_change,
                c.uncollectable_coins,
                c.transaction_id,
                c.before,
                c.after,
            ).order_by(c.correction_id)
        ).all()
    return [row._asdict() for row in rows]


def app_top_up(engine: Engine, user_id: int, read_balance: int, coins: int) -> None:
    """The app's purchase: a read-modify-write of the balance it read earlier, then its row."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE user_wallets SET balance_coins = :b WHERE user_id = :u"),
            {"b": read_balance + coins, "u": user_id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change) "
                "SELECT wallet_id, 'purchase', :n, 49.00 FROM user_wallets WHERE user_id = :u"
            ),
            {"n": coins, "u": user_id},
        )


def erased_debit(cli: Cli, engine: Engine) -> int:
    """coins deduct charges 10 coins (balance 100 -> 90); the app's top-up of 50, which
    read the balance before, writes 150: the debit is erased (ledger 140)."""
    with transaction(engine) as s:
        caller = add_user(s, balance=100, online=True, last_seen=NOW)
        listener = add_user(s, role="listener", balance=0, online=True, last_seen=NOW)
        add_call(s, caller, listener, start=NOW - timedelta(seconds=90), coins_spent=10)
        s.commit()
    assert cli("--now", NOW.isoformat(), "coins", "deduct").exit_code == 0
    assert wallet(engine, caller)[1:] == (90, 90)
    app_top_up(engine, caller, read_balance=100, coins=50)
    assert wallet(engine, caller)[1:] == (150, 140)
    return caller


def test_an_erased_debit_is_previewed_then_applied_and_the_audit_no_longer_names_it(
    cli: Cli, engine: Engine, backend: str
) -> None:
    caller = erased_debit(cli, engine)
    wallet_id = wallet(engine, caller)[0]
    code, report = audit(cli)
    assert code == 1
    assert [(w["wallet_id"], w["coins_difference"]) for w in report["wallets"]] == [(wallet_id, 10)]

    # the preview: exit 0, what it would do, nothing changed
    rows = ledger_rows(engine)
    code, preview = run(cli, "reconcile")
    assert code == 0
    assert preview["applied"] is False
    assert (preview["corrections"], preview["coins_collected"]) == (1, 10)
    (item,) = preview["items"]
    assert {k: item[k] for k in ("finding", "action", "wallet_id", "call_id")} == {
        "finding": "erased_debit",
        "action": "collected",
        "wallet_id": wallet_id,
        "call_id": None,
    }
    assert (item["coins_change"], item["uncollectable_coins"]) == (-10, 0)
    assert wallet(engine, caller)[1:] == (150, 140)
    assert ledger_rows(engine) == rows
    assert corrections(engine) == []

    code, applied = run(cli, "reconcile", "--apply", "--reason", REASON)
    assert code == 0, applied
    assert (applied["applied"], applied["corrections"], applied["coins_collected"]) == (
        True,
        1,
        10,
    )
    # balance = ledger; the ledger already held our debit: no row added
    assert wallet(engine, caller)[1:] == (140, 140)
    assert ledger_rows(engine) == rows
    (recorded,) = corrections(engine)
    assert recorded["corrected_by"].count("@") == 1
    del recorded["corrected_by"]
    assert recorded == {
        "reason": REASON,
        "finding": "erased_debit",
        "action": "collected",
        "wallet_id": wallet_id,
        "call_id": None,
        "coins_change": -10,
        "uncollectable_coins": 0,
        "transaction_id": None,
        "before": {
            "wallet_id": wallet_id,
            "user_id": caller,
            "balance_coins": 150,
            "ledger_coins": 140,
            "written_off_coins": 0,
            "coins_difference": 10,
            "withdrawable_money": "0.00",
            "ledger_money": "0.00",
            "money_difference": "0.00",
        },
        "after": {"balance_coins": 140},
    }

    code, report = audit(cli)
    assert (code, report["wallets_off"], report["wallets"]) == (0, 0, [])
    code, again = run(cli, "reconcile")
    assert (code, again["corrections"], again["items"]) == (0, 0, [])
    human = cli("--now", LATER.isoformat(), "wallets", "reconcile")
    assert human.exit_code == 0
    assert "nothing to correct" in human.stdout

    code, listed = run(cli, "audit", "--resolved")
    assert code == 0
    assert listed["resolved"] == 1
    assert [(c["finding"], c["action"], c["wallet_id"]) for c in listed["corrections"]] == [
        ("erased_debit", "collected", wallet_id)
    ]


def test_what_the_balance_cannot_give_is_recorded_uncollectable_never_below_zero(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        user = add_user(s, balance=0)
        wallet_id = s.scalar(
            sa.select(user_wallets.c.wallet_id).where(user_wallets.c.user_id == user)
        )
        # ledger: bought 50, spent 80 (a debit of 40 was erased before the last 30 were
        # spent); the balance holds 10
        s.execute(
            sa.insert(user_transactions),
            [
                {"wallet_id": wallet_id, "tx_type": "purchase", "coins_change": 50},
                {"wallet_id": wallet_id, "tx_type": "spend", "coins_change": -80},
            ],
        )
        s.execute(
            sa.update(user_wallets).where(user_wallets.c.user_id == user).values(balance_coins=10)
        )
        s.commit()
    code, applied = run(cli, "reconcile", "--apply", "--reason", REASON)
    assert code == 0
    assert (applied["coins_collected"], applied["coins_uncollectable"]) == (10, 30)
    assert wallet(engine, user)[1:] == (0, -30)
    ((coins, uncollectable),) = [
        (c["coins_change"], c["uncollectable_coins"]) for c in corrections(engine)
    ]
    assert (coins, uncollectable) == (-10, 30)
    code, report = audit(cli)
    assert (code, report["wallets_off"]) == (0, 0)

    # a new erased debit on that wallet is found again, for its own amount
    app_top_up(engine, user, read_balance=5, coins=20)  # ledger -10, balance 25
    code, report = audit(cli)
    assert code == 1
    ((difference, written_off),) = [
        (w["coins_difference"], w["written_off_coins"]) for w in report["wallets"]
    ]
    assert (difference, written_off) == (5, 30)


def test_apply_needs_a_reason_and_one_choice_exit_2_nothing_changed(
    cli: Cli, engine: Engine
) -> None:
    caller = erased_debit(cli, engine)
    for args, message in (
        (("--apply",), "--apply needs --reason TEXT"),
        (("--apply", "--reason", "  "), "--reason is empty"),
        (("--apply", "--reason", "x", "--reverse", "--accept"), "exclude each other"),
    ):
        result = cli("--now", LATER.isoformat(), "wallets", "reconcile", *args)
        assert result.exit_code == 2, args
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert wallet(engine, caller)[1:] == (150, 140)
    assert corrections(engine) == []


def test_a_wallet_below_its_ledger_is_only_named_with_what_to_check(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        user = add_user(s, balance=100)
        s.execute(
            sa.update(user_wallets).where(user_wallets.c.user_id == user).values(balance_coins=70)
        )
        s.commit()
    code, preview = run(cli, "reconcile")
    assert code == 0
    (item,) = preview["items"]
    assert (item["finding"], item["action"], item["coins_change"]) == (
        "coins_below_ledger",
        "check",
        0,
    )
    assert "add the missing row or correct the balance, never both" in item["detail"]
    assert (preview["corrections"], preview["named_only"]) == (0, 1)
    code, applied = run(cli, "reconcile", "--apply", "--reason", REASON)
    assert (code, applied["corrections"], applied["named_only"]) == (0, 0, 1)
    assert wallet(engine, user)[1:] == (70, 100)
    assert corrections(engine) == []
    assert audit(cli)[0] == 1


def _settled_then_ended_again(cli: Cli, engine: Engine) -> dict[str, int]:
    """coins deduct settles a call (7m30s, 3 paid minutes, 3.00 rupees); the app ends it
    again and pays the listener 3 coins more."""
    with transaction(engine) as s:
        caller = add_user(s, balance=20, online=True, last_seen=NOW)
        listener = add_user(s, role="listener", balance=4, online=True, last_seen=NOW)
        call = add_call(s, caller, listener, start=NOW - timedelta(seconds=450), coins_spent=10)
        s.commit()
    assert cli("--now", NOW.isoformat(), "coins", "deduct").exit_code == 0
    app_ends_call(engine, call, reason="completed", at=NOW + timedelta(seconds=1), coins=3)
    return {"caller": caller, "listener": listener, "call": call}


def test_a_call_paid_twice_awaits_a_choice_then_is_reversed(cli: Cli, engine: Engine) -> None:
    ids = _settled_then_ended_again(cli, engine)
    wallet_id = wallet(engine, ids["listener"])[0]
    assert wallet(engine, ids["listener"])[1:] == (7, 7)

    code, preview = run(cli, "reconcile")
    assert code == 0
    (item,) = preview["items"]
    assert (item["finding"], item["action"], item["call_id"]) == (
        "ended_again_after_settlement",
        "choose",
        ids["call"],
    )
    assert preview["awaiting_decision"] == 1
    # applying without a choice changes nothing for it
    code, applied = run(cli, "reconcile", "--apply", "--reason", REASON)
    assert (code, applied["corrections"], applied["awaiting_decision"]) == (0, 0, 1)
    assert corrections(engine) == []

    history = ledger_rows(engine)
    code, applied = run(
        cli, "reconcile", "--apply", "--reverse", "--call", str(ids["call"]), "--reason", REASON
    )
    assert (code, applied["corrections"], applied["coins_reversed"]) == (0, 1, 3)
    after = ledger_rows(engine)  # one row added, none changed
    assert (after[: len(history)], len(after)) == (history, len(history) + 1)
    assert wallet(engine, ids["listener"])[1:] == (4, 4)  # the row and the balance: -3
    (recorded,) = corrections(engine)
    assert (recorded["finding"], recorded["action"], recorded["wallet_id"]) == (
        "ended_again_after_settlement",
        "reversed",
        wallet_id,
    )
    assert (recorded["coins_change"], recorded["after"]["balance_coins"]) == (-3, 4)
    with transaction(engine) as s:
        row = s.execute(
            sa.select(user_transactions.c.tx_type, user_transactions.c.coins_change).where(
                user_transactions.c.transaction_id == recorded["transaction_id"]
            )
        ).one()
    assert tuple(row) == ("earn", -3)
    code, report = audit(cli)
    assert (code, report["calls_changed_after_settlement"]) == (0, 0)


def test_a_half_ended_call_ended_again_is_accepted(cli: Cli, engine: Engine) -> None:
    ids = half_ended_call(engine)
    assert cli("--now", NOW.isoformat(), "wallets", "audit").exit_code == 1  # sees it
    app_ends_call(engine, ids["call"], reason="completed", at=ENDED_AGAIN_AT, coins=10)
    before = wallet(engine, ids["listener"])
    code, applied = run(
        cli, "reconcile", "--apply", "--accept", "--wallet", str(before[0]), "--reason", REASON
    )
    assert (code, applied["corrections"]) == (0, 1)
    assert wallet(engine, ids["listener"]) == before
    ((finding, action, call_id),) = [
        (c["finding"], c["action"], c["call_id"]) for c in corrections(engine)
    ]
    assert (finding, action, call_id) == ("ended_again_after_half_end", "accepted", ids["call"])
    code, report = audit(cli)
    assert (code, report["calls_ended_again_after_half_end"]) == (0, 0)


def test_a_half_ended_call_is_completed_and_billing_no_longer_skips_it(
    cli: Cli, engine: Engine
) -> None:
    ids = half_ended_call(engine)
    with transaction(engine) as s:
        end_time = s.scalar(
            sa.select(user_calls.c.end_time).where(user_calls.c.call_id == ids["call"])
        )
    code, applied = run(cli, "reconcile", "--apply", "--call", str(ids["call"]), "--reason", REASON)
    assert (code, applied["corrections"]) == (0, 1)
    with transaction(engine) as s:
        call = s.execute(
            sa.select(
                user_calls.c.status,
                user_calls.c.end_time,
                user_calls.c.coins_spent,
                user_calls.c.listener_money_earned,
            ).where(user_calls.c.call_id == ids["call"])
        ).one()
    assert tuple(call) == ("completed", end_time, 100, 10)
    ((finding, action),) = [(c["finding"], c["action"]) for c in corrections(engine)]
    assert (finding, action) == ("half_ended", "completed")
    code, report = audit(cli)
    assert code == 0, report
    assert (report["calls_half_ended"], report["calls_ended_again_after_half_end"]) == (0, 0)
    assert cli("--now", LATER.isoformat(), "coins", "deduct").exit_code == 0


def test_wallet_and_call_narrow_it(cli: Cli, engine: Engine) -> None:
    first = erased_debit(cli, engine)
    second = erased_debit(cli, engine)
    first_wallet = wallet(engine, first)[0]
    code, by_call = run(cli, "reconcile", "--call", "999999")
    assert (code, by_call["items"]) == (0, [])
    code, applied = run(
        cli, "reconcile", "--apply", "--wallet", str(first_wallet), "--reason", REASON
    )
    assert (code, applied["corrections"]) == (0, 1)
    assert wallet(engine, first)[1:] == (140, 140)
    assert wallet(engine, second)[1:] == (150, 140)


def test_a_conservation_failure_rolls_everything_back(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Balances that moved otherwise than planned (a writer outside the locks): exit 1,
    one line, nothing applied."""
    caller = erased_debit(cli, engine)
    real_total = reconcile_apply._total_balance
    calls = []

    def off_by_one(session: Any, wallet_ids: list[int]) -> int:
        calls.append(wallet_ids)
        return real_total(session, wallet_ids) + (1 if len(calls) == 2 else 0)

    monkeypatch.setattr(reconcile_apply, "_total_balance", off_by_one)
    result = cli("--now", LATER.isoformat(), "wallets", "reconcile", "--apply", "--reason", "x")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: conservation violated, nothing was changed: coins: planned -10, balances "
        "changed -9, reversal rows 0 (planned 0)\n"
    )
    assert wallet(engine, caller)[1:] == (150, 140)
    assert corrections(engine) == []


def test_apply_waits_for_a_billing_run_and_gives_up_with_exit_1(
    cli: Cli, engine: Engine, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A billing run in progress (its job lock held, here by another session) keeps
    `reconcile --apply` from changing anything; the preview does not wait for it."""
    if backend != "postgresql":
        pytest.skip("the advisory lock of another session: PostgreSQL")
    import socket

    from saathii_ops.runtime import locks
    from saathii_ops.runtime.registry import get_job

    caller = erased_debit(cli, engine)
    monkeypatch.setattr(locks, "LOCK_WAIT_SECONDS", 0.5)
    key = locks._lock_key(get_job("calls-cleanup").lock_name(socket.gethostname()))
    with engine.connect() as holder, holder.begin():
        holder.execute(
            sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"),
            {"ns": locks.ADVISORY_LOCK_NAMESPACE, "key": key},
        )
        result = cli("--now", LATER.isoformat(), "wallets", "reconcile", "--apply", "--reason", "x")
        assert result.exit_code == 1
        assert result.stderr == (
            "error: calls-cleanup held its lock for 0.5 s (a run in progress): nothing was "
            "changed; try again\n"
        )
        assert run(cli, "reconcile")[0] == 0
    assert wallet(engine, caller)[1:] == (150, 140)
    assert corrections(engine) == []
    code, applied = run(cli, "reconcile", "--apply", "--reason", "x")
    assert (code, applied["corrections"]) == (0, 1)


def test_a_call_half_ended_twice_is_completed_and_its_second_payment_awaits_a_choice(
    cli: Cli, engine: Engine
) -> None:
    """The app half-ends a call, then half-ends it again (paid twice, still 'ongoing'):
    --apply completes it; the second payment stays named until --reverse or --accept."""
    ids = half_ended_call(engine)
    assert cli("--now", NOW.isoformat(), "coins", "deduct").exit_code == 1  # sees it
    app_ends_call(engine, ids["call"], reason="ongoing", at=NOW, coins=10)

    code, applied = run(cli, "reconcile", "--apply", "--reason", REASON)
    assert code == 0, applied
    assert [(i["finding"], i["action"]) for i in applied["items"]] == [
        ("ended_again_after_half_end", "choose"),
        ("half_ended", "completed"),
    ]
    code, report = audit(cli)
    assert code == 1
    assert (report["calls_half_ended"], report["calls_ended_again_after_half_end"]) == (0, 1)
    (again,) = report["ended_again_after_half_end"]
    assert (again["seen_status"], again["status_now"]) == ("completed", "completed")
    assert again["end_time_now"] == NOW.isoformat()

    listener_before = wallet(engine, ids["listener"])
    code, applied = run(cli, "reconcile", "--apply", "--reverse", "--reason", REASON)
    assert (code, applied["corrections"], applied["coins_reversed"]) == (0, 1, 10)
    assert wallet(engine, ids["listener"])[1:] == (
        listener_before[1] - 10,
        listener_before[2] - 10,
    )
    assert audit(cli)[0] == 0


def test_wallet_narrows_to_its_findings_and_its_owners_calls_only(cli: Cli, engine: Engine) -> None:
    """--wallet of a caller takes the call paid twice (it reverses the listener's second
    payment) but not the listener's own wallet finding, though its row is locked too."""
    ids = _settled_then_ended_again(cli, engine)
    caller_wallet = wallet(engine, ids["caller"])[0]
    with transaction(engine) as s:  # the listener's wallet: 5 coins above its ledger
        s.execute(
            sa.update(user_wallets)
            .where(user_wallets.c.user_id == ids["listener"])
            .values(balance_coins=user_wallets.c.balance_coins + 5)
        )
        s.commit()
    code, applied = run(
        cli, "reconcile", "--apply", "--reverse", "--wallet", str(caller_wallet), "--reason", "x"
    )
    assert code == 0, applied
    assert [(i["finding"], i["action"]) for i in applied["items"]] == [
        ("ended_again_after_settlement", "reversed")
    ]
    assert wallet(engine, ids["listener"])[1:] == (12 - 3, 7 - 3)  # still 5 above
    code, rest = run(cli, "reconcile")
    assert [(i["finding"], i["coins_change"]) for i in rest["items"]] == [("erased_debit", -5)]
