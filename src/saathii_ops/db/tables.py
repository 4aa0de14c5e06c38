"""The app's tables exactly as SPEC §1 lists them, and the project's own tables.

The app's tables are described, never altered: the first migration creates them
as `app-schema.sql` does, and `db adopt` checks a live database against
`APP_TABLE_COLUMNS`. Core tables, not ORM classes: every statement is set-based, and
declaring twelve mapped classes cost ~45 ms of CPU on every job's start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from saathii_ops.db.calls import CallStatus


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """TIMESTAMPTZ on PostgreSQL; on SQLite a naive UTC text value. Always aware UTC in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # a raw SQLite value, e.g. from CURRENT_TIMESTAMP
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# the generic ARRAY is PostgreSQL's on PostgreSQL; it keeps the PostgreSQL dialect unloaded
# on SQLite (a job run's start-up)
TextArray = sa.ARRAY(sa.Text()).with_variant(sa.JSON(), "sqlite")
Money = sa.Numeric(12, 2)
Rate = sa.Numeric(5, 2)
NOW = sa.func.now()


metadata = sa.MetaData()


users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(10), unique=True, nullable=False),
    sa.Column("sex", sa.String(10)),
    sa.Column("dob", sa.Date, nullable=False),
    sa.Column("phone", sa.String(20), unique=True, nullable=False),
    sa.Column("preferred_language", sa.String(50)),
    sa.Column("profile_image_url", sa.Text),
    sa.Column("rating", sa.Numeric(3, 2), server_default=sa.text("0")),
    sa.Column("interests", TextArray),
    sa.Column("bio", sa.Text),
    sa.Column("country", sa.String(100), server_default="India"),
    sa.Column("updated_at", UTCDateTime, server_default=NOW),
    sa.Column("created_at", UTCDateTime, server_default=NOW),
    sa.CheckConstraint("sex IN ('male', 'female')", name="users_sex_check"),
)


user_roles = sa.Table(
    "user_roles",
    metadata,
    sa.Column("user_id", sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(20), primary_key=True),
    sa.Column("assigned_at", UTCDateTime, server_default=NOW),
    sa.CheckConstraint("role IN ('customer', 'listener')", name="user_roles_role_check"),
)


user_wallets = sa.Table(
    "user_wallets",
    metadata,
    sa.Column("wallet_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.user_id", ondelete="CASCADE"), unique=True),
    sa.Column("balance_coins", sa.BigInteger, server_default=sa.text("0")),
    sa.Column("withdrawable_money", Money, server_default=sa.text("0.00")),
    sa.Column("updated_at", UTCDateTime, server_default=NOW),
    sa.Column("created_at", UTCDateTime, server_default=NOW),
)


user_transactions = sa.Table(
    "user_transactions",
    metadata,
    sa.Column("transaction_id", sa.Integer, primary_key=True),
    sa.Column("wallet_id", sa.ForeignKey("user_wallets.wallet_id", ondelete="CASCADE")),
    sa.Column("tx_type", sa.String(20)),
    sa.Column("coins_change", sa.BigInteger, server_default=sa.text("0")),
    sa.Column("money_change", Money, server_default=sa.text("0.00")),
    sa.Column("updated_at", UTCDateTime, server_default=NOW),
    sa.Column("created_at", UTCDateTime, server_default=NOW),
    sa.CheckConstraint(
        "tx_type IN ('purchase', 'spend', 'earn', 'withdraw', 'bonus', 'referral_bonus')",
        name="user_transactions_tx_type_check",
    ),
)


user_status = sa.Table(
    "user_status",
    metadata,
    sa.Column("user_id", sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("is_online", sa.Boolean, server_default=sa.false()),
    sa.Column("last_seen", UTCDateTime, server_default=NOW),
    sa.Column("is_busy", sa.Boolean, server_default=sa.false()),
    sa.Column("wait_time", sa.Integer),
    sa.Column("is_active", sa.Boolean, server_default=sa.true()),
    sa.Column("updated_at", UTCDateTime, server_default=NOW),
    sa.Column("created_at", UTCDateTime, server_default=NOW),
)


def one_of(column: str, values: list[StrEnum]) -> str:
    """A check constraint's text: `column` holds one of `values`."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


user_calls = sa.Table(
    "user_calls",
    metadata,
    sa.Column("call_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.user_id", ondelete="CASCADE")),
    sa.Column("listener_id", sa.ForeignKey("users.user_id", ondelete="CASCADE")),
    sa.Column("call_type", sa.String(10)),
    sa.Column("start_time", UTCDateTime, server_default=NOW, nullable=False),
    sa.Column("end_time", UTCDateTime),
    sa.Column("duration_seconds", sa.Integer),
    sa.Column("duration_minutes", sa.Integer),
    sa.Column("coins_spent", sa.BigInteger, server_default=sa.text("0")),
    sa.Column("listener_money_earned", sa.BigInteger, server_default=sa.text("0")),
    sa.Column("status", sa.String(20), server_default=CallStatus.ONGOING),
    sa.Column("updated_at", UTCDateTime, server_default=NOW),
    sa.Column("created_at", UTCDateTime, server_default=NOW),
    sa.CheckConstraint("call_type IN ('audio', 'video')", name="user_calls_call_type_check"),
    sa.CheckConstraint(one_of("status", list(CallStatus)), name="user_calls_status_check"),
    sa.Index("idx_calls_user", "user_id"),
    sa.Index("idx_calls_listener", "listener_id"),
)


listener_badges = sa.Table(
    "listener_badges",
    metadata,
    sa.Column("listener_id", sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("badge", sa.String(20)),
    sa.Column("audio_rate_per_minute", Rate, nullable=False),
    sa.Column("video_rate_per_minute", Rate, nullable=False),
    sa.Column("assigned_at", UTCDateTime, server_default=NOW),
    sa.Column("updated_at", UTCDateTime, server_default=NOW),
    sa.Column("created_at", UTCDateTime, server_default=NOW),
    sa.CheckConstraint(
        "badge IN ('gold', 'silver', 'bronze', 'basic')", name="listener_badges_badge_check"
    ),
)


APP_TABLES = (
    users,
    user_roles,
    user_wallets,
    user_transactions,
    user_status,
    user_calls,
    listener_badges,
)

# What `db adopt` requires of a live database: every table with these columns.
APP_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    app_table.name: tuple(column.name for column in app_table.columns) for app_table in APP_TABLES
}


# --- the project's own tables -------------------------------------------------


class RunOutcome(StrEnum):
    """How a job run ended (ops_job_runs.outcome, the run's output, its pings)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"  # never recorded: a dry-run writes nothing


# The audit row's reason for an ok run with rows it could not process (it exits 1).
SOME_ROWS_FAILED = "some rows failed"


# The audit row of one job run (SPEC §9).
ops_job_runs = sa.Table(
    "ops_job_runs",
    metadata,
    sa.Column("run_id", sa.Integer, primary_key=True),
    sa.Column("job", sa.String(40), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(40)),
    sa.Column("counts", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("run_now", UTCDateTime, nullable=False),
    # the run's identifier (also the monitoring pings' rid), named by the settlements it made
    sa.Column("run_uuid", sa.String(32), unique=True),
    sa.CheckConstraint(
        one_of("outcome", [RunOutcome.OK, RunOutcome.FAILED, RunOutcome.SKIPPED]),
        name="ops_job_runs_outcome",
    ),
    sa.Index("ix_ops_job_runs_job_started", "job", "started_at"),
)


# A pause switch per job, shared by every host (SPEC §9).
ops_job_controls = sa.Table(
    "ops_job_controls",
    metadata,
    sa.Column("job", sa.String(40), primary_key=True),
    sa.Column("paused", sa.Boolean, default=False, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("changed_by", sa.String(255), nullable=False),
    # why it was paused (`jobs pause --reason`); cleared by a resume
    sa.Column("reason", sa.Text),
)


# A call saathii-ops settled, as it settled it (SPEC §5): at most one row per call.
#
# Written in the settlement's own transaction; `wallets audit` compares the call's
# row with it to see the app change a call after we settled it.
ops_settlements = sa.Table(
    "ops_settlements",
    metadata,
    # the primary key makes a second settlement of a call impossible, not only checked
    sa.Column("call_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("run_uuid", sa.String(32), nullable=False),  # ops_job_runs.run_uuid
    sa.Column("settled_at", UTCDateTime, nullable=False),  # the database's clock
    # the call's row as settlement wrote it (status 'dropped')
    sa.Column("end_time", UTCDateTime, nullable=False),
    sa.Column("duration_seconds", sa.Integer, nullable=False),
    sa.Column("duration_minutes", sa.Integer, nullable=False),
    sa.Column("coins_spent", sa.BigInteger, nullable=False),
    sa.Column("listener_money_earned", sa.BigInteger, nullable=False),
    # what the listener was paid, and where
    sa.Column("paid_minutes", sa.BigInteger, nullable=False),
    sa.Column("rate_per_minute", Rate, nullable=False),
    sa.Column("earnings", Money, nullable=False),
    sa.Column("listener_wallet_id", sa.Integer),  # None: nothing earned
    sa.Column("earn_transaction_id", sa.Integer),
)


# What saathii-ops first saw of a half-ended call (an ongoing call with an end_time,
# the app's end-call with the reason 'ongoing'): at most one row per call.
#
# Recorded by the real runs of billing, call cleanup and the audit (and `wallets
# reconcile`); the audit compares the call's later versions with it, so that the app
# ending the call again (paying its listener a second time) stays visible.
ops_half_ended_calls = sa.Table(
    "ops_half_ended_calls",
    metadata,
    sa.Column("call_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),  # the database's clock
    sa.Column("run_uuid", sa.String(32)),  # the run that saw it
    # the call's row as it was seen (status 'ongoing')
    sa.Column("end_time", UTCDateTime, nullable=False),
    sa.Column("coins_spent", sa.BigInteger, nullable=False),
    sa.Column("listener_money_earned", sa.BigInteger),
)


# A correction `wallets reconcile --apply` made for a finding of the audit (SPEC §13):
# who, when, why, the finding, the row before and after. History is never edited:
# a correction changes a balance or a call's status and adds ledger rows.
ops_corrections = sa.Table(
    "ops_corrections",
    metadata,
    sa.Column("correction_id", sa.Integer, primary_key=True),
    sa.Column("corrected_at", UTCDateTime, nullable=False),  # the database's clock
    sa.Column("corrected_by", sa.String(255), nullable=False),  # user@host
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("finding", sa.String(40), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("wallet_id", sa.Integer),
    sa.Column("call_id", sa.Integer),
    # the change made to the wallet's balance_coins (<= 0), and the ledger row written
    sa.Column("coins_change", sa.BigInteger, nullable=False),
    # coins that could not be taken (the balance would go below zero)
    sa.Column("uncollectable_coins", sa.BigInteger, nullable=False),
    sa.Column("transaction_id", sa.Integer),
    sa.Column("before", sa.JSON, nullable=False),
    sa.Column("after", sa.JSON, nullable=False),
    sa.Index("ix_ops_corrections_wallet_id", "wallet_id"),
    sa.Index("ix_ops_corrections_call_id", "call_id"),
)
