"""Duplicate rows never stop a run: the app's listener_badges without its key
(listener_id, date), holding two rows for one listener and day.

Every job reads the row of the latest assigned_at (docs/decisions.md#badges); the
dry-run equals the real run; `wallets audit` names the duplicates; `db adopt` says which
of the keys the jobs rely on are missing.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import listener_badges
from tests.billing_checks import assert_ledger_balanced, call_row, wallet
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user
from tests.support.schema import create_app_tables, table_names

NOW = T0 + timedelta(minutes=30)
TODAY = date(2026, 11, 29)  # NOW in Asia/Kolkata


def drop_badge_key(engine: Engine, backend: str) -> None:
    """listener_badges as the app may have it: without its primary key."""
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("ALTER TABLE listener_badges DROP CONSTRAINT listener_badges_pkey")
            return
        ddl = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'listener_badges'"
        ).scalar_one()
        keyless = ddl.replace("PRIMARY KEY (listener_id, date), ", "")
        assert keyless != ddl
        conn.exec_driver_sql("ALTER TABLE listener_badges RENAME TO listener_badges_keyed")
        conn.exec_driver_sql(keyless)
        conn.exec_driver_sql("INSERT INTO listener_badges SELECT * FROM listener_badges_keyed")
        conn.exec_driver_sql("DROP TABLE listener_badges_keyed")


def add_badge_row(engine: Engine, listener: int, day: date, badge: str, assigned: datetime) -> None:
    rates = {"gold": ("1.80", "10.00"), "silver": ("1.50", "8.50"), "basic": ("1.00", "6.00")}
    audio, video = rates[badge]
    with transaction(engine) as s:
        s.execute(
            sa.insert(listener_badges).values(
                listener_id=listener,
                date=day,
                badge=badge,
                audio_rate_per_minute=Decimal(audio),
                video_rate_per_minute=Decimal(video),
                assigned_at=assigned,
                updated_at=assigned,
                created_at=assigned,
            )
        )
        s.commit()


def run_json(cli: Cli, *args: str, exit_code: int = 0) -> dict[str, Any]:
    result = cli("--now", NOW.isoformat(), "--json", *args)
    assert result.exit_code == exit_code, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_coins_deduct_reads_one_badge_row_and_the_dry_run_equals_the_run(
    cli: Cli, engine: Engine, backend: str
) -> None:
    drop_badge_key(engine, backend)
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        poor = add_user(s, balance=5)
        rich = add_user(s, balance=1000)
        # 3.5 minutes in, one minute paid: owes 30; 5 coins pay no minute: it ends
        ending = add_call(
            s, poor, listener, start=NOW - timedelta(minutes=3, seconds=30), coins_spent=10
        )
        charged = add_call(
            s, rich, listener, start=NOW - timedelta(minutes=3, seconds=30), coins_spent=10
        )
        s.commit()
    # the later assignment is silver: the jobs read it, not the earlier gold
    add_badge_row(engine, listener, TODAY, "silver", T0 - timedelta(hours=1))
    add_badge_row(engine, listener, TODAY, "gold", T0 - timedelta(hours=2))

    dry = run_json(cli, "coins", "deduct", "--dry-run")["report"]
    assert [e["call_id"] for e in dry["ended"]] == [ending]
    assert dry["ended"][0]["listener_earnings"] == "1.50"  # 1 paid minute at silver 1.50
    assert (dry["calls_charged"], dry["coins_charged"]) == (1, 30)

    real = run_json(cli, "coins", "deduct")
    assert real["outcome"] == "ok", real
    report = real["report"]
    assert report["ended"] == dry["ended"]
    assert {k: report[k] for k in ("calls_charged", "coins_charged", "listener_earnings")} == {
        k: dry[k] for k in ("calls_charged", "coins_charged", "listener_earnings")
    }
    assert call_row(engine, ending).status == "dropped"
    assert call_row(engine, charged).coins_spent == 40
    assert wallet(engine, listener) == (0, Decimal("1.50"))
    assert_ledger_balanced(engine)


def test_badges_assign_dry_run_and_run_agree_on_the_keyless_table(
    cli: Cli, engine: Engine, backend: str
) -> None:
    drop_badge_key(engine, backend)
    with transaction(engine) as s:
        listener = add_user(s, role="listener")
        other = add_user(s, role="listener")
        caller = add_user(s, balance=0)
        add_call(
            s,
            caller,
            listener,
            start=NOW - timedelta(days=1),
            status="completed",
            duration_minutes=130,
        )
        s.commit()
    add_badge_row(engine, listener, TODAY, "basic", T0 - timedelta(hours=3))
    add_badge_row(engine, listener, TODAY, "gold", T0 - timedelta(hours=2))

    dry = run_json(cli, "badges", "assign", "--dry-run")["report"]
    expected = [
        (listener, "silver", "gold"),  # replaces the row the jobs read: the later gold
        (other, "basic", None),
    ]
    assert [(a["listener_id"], a["badge"], a["replaces"]) for a in dry["assignments"]] == expected
    real = run_json(cli, "badges", "assign")
    assert real["outcome"] == "ok", real
    assert real["report"]["assignments"] == dry["assignments"]
    assert (real["report"]["silver"], real["report"]["basic"], real["report"]["total"]) == (1, 1, 2)
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(listener_badges.c.listener_id, listener_badges.c.badge).order_by(
                listener_badges.c.listener_id
            )
        ).all()
    # both of the app's rows now say what the run assigned; no row added for them
    assert [tuple(r) for r in rows] == [
        (listener, "silver"),
        (listener, "silver"),
        (other, "basic"),
    ]


def test_wallets_audit_names_the_duplicate_badge_rows(
    cli: Cli, engine: Engine, backend: str
) -> None:
    drop_badge_key(engine, backend)
    with transaction(engine) as s:
        listener = add_user(s, role="listener")
        s.commit()
    add_badge_row(engine, listener, TODAY, "gold", T0 - timedelta(hours=2))
    add_badge_row(engine, listener, TODAY, "silver", T0 - timedelta(hours=1))
    add_badge_row(engine, listener, TODAY - timedelta(days=1), "basic", T0 - timedelta(days=1))

    report = run_json(cli, "wallets", "audit", exit_code=1)["report"]
    assert report["duplicate_badge_days"] == 1
    assert report["duplicate_badges"] == [
        {
            "listener_id": listener,
            "date": TODAY.isoformat(),
            "rows": 2,
            "badge": "silver",
            "audio_rate_per_minute": "1.50",
            "video_rate_per_minute": "8.50",
            "finding": "several listener_badges rows for one listener and day (the table lacks "
            "its key): the jobs read this one; delete the others",
        }
    ]


def test_db_adopt_warns_of_the_badge_key_and_refuses_without_the_wallet_key(
    empty_db_url: str, backend: str
) -> None:
    create_app_tables(empty_db_url, backend)
    engine = make_engine(parse_url(empty_db_url))
    drop_badge_key(engine, backend)
    cli = Cli(empty_db_url)
    if backend == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE user_wallets DROP CONSTRAINT user_wallets_user_id_key"
            )
        refused = cli("db", "adopt")
        assert refused.exit_code == 3
        assert refused.stderr == (
            "error: cannot adopt: the jobs rely on keys the app's tables lack: user_wallets "
            "(user_id) unique (a user's two wallets would both be billed); a DBA adds them "
            "(saathii-ops never changes the app's tables)\n"
        )
        assert "alembic_version" not in table_names(empty_db_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE user_wallets ADD UNIQUE (user_id)")
    engine.dispose()

    adopted = run_json(cli, "db", "adopt")
    assert adopted["missing_keys"] == [
        "listener_badges (listener_id, date) is not unique: the jobs read one row per listener "
        "and day (docs/decisions.md#badges); `wallets audit` names the duplicates"
    ]
    assert adopted["adopted_revision"] == "0001"
