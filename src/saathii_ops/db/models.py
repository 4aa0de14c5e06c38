"""The app's tables exactly as SPEC §1 lists them, and the project's own tables.

The app's tables are mapped, never altered: the first migration creates them
as `app-schema.sql` does, and `db adopt` checks a live database against
`APP_TABLE_COLUMNS`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("sex IN ('male', 'female')", name="users_sex_check"),)

    user_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(10), unique=True)
    sex: Mapped[str | None] = mapped_column(sa.String(10))
    dob: Mapped[date] = mapped_column(sa.Date)
    phone: Mapped[str] = mapped_column(sa.String(20), unique=True)
    preferred_language: Mapped[str | None] = mapped_column(sa.String(50))
    profile_image_url: Mapped[str | None] = mapped_column(sa.Text)
    rating: Mapped[Decimal | None] = mapped_column(sa.Numeric(3, 2), server_default=sa.text("0"))
    interests: Mapped[list[str] | None] = mapped_column(TextArray)
    bio: Mapped[str | None] = mapped_column(sa.Text)
    country: Mapped[str | None] = mapped_column(sa.String(100), server_default="India")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (
        sa.CheckConstraint("role IN ('customer', 'listener')", name="user_roles_role_check"),
    )

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


class UserWallet(Base):
    __tablename__ = "user_wallets"

    wallet_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="CASCADE"), unique=True
    )
    balance_coins: Mapped[int | None] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    withdrawable_money: Mapped[Decimal | None] = mapped_column(
        Money, server_default=sa.text("0.00")
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


class UserTransaction(Base):
    __tablename__ = "user_transactions"
    __table_args__ = (
        sa.CheckConstraint(
            "tx_type IN ('purchase', 'spend', 'earn', 'withdraw', 'bonus', 'referral_bonus')",
            name="user_transactions_tx_type_check",
        ),
    )

    transaction_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    wallet_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_wallets.wallet_id", ondelete="CASCADE")
    )
    tx_type: Mapped[str | None] = mapped_column(sa.String(20))
    coins_change: Mapped[int | None] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    money_change: Mapped[Decimal | None] = mapped_column(Money, server_default=sa.text("0.00"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


class UserStatus(Base):
    __tablename__ = "user_status"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    is_online: Mapped[bool | None] = mapped_column(sa.Boolean, server_default=sa.false())
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    is_busy: Mapped[bool | None] = mapped_column(sa.Boolean, server_default=sa.false())
    wait_time: Mapped[int | None] = mapped_column(sa.Integer)
    is_active: Mapped[bool | None] = mapped_column(sa.Boolean, server_default=sa.true())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


def one_of(column: str, values: list[StrEnum]) -> str:
    """A check constraint's text: `column` holds one of `values`."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


class UserCall(Base):
    __tablename__ = "user_calls"
    __table_args__ = (
        sa.CheckConstraint("call_type IN ('audio', 'video')", name="user_calls_call_type_check"),
        sa.CheckConstraint(one_of("status", list(CallStatus)), name="user_calls_status_check"),
        sa.Index("idx_calls_user", "user_id"),
        sa.Index("idx_calls_listener", "listener_id"),
    )

    call_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.user_id", ondelete="CASCADE"))
    listener_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="CASCADE")
    )
    call_type: Mapped[str | None] = mapped_column(sa.String(10))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime, server_default=NOW)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(sa.Integer)
    duration_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    coins_spent: Mapped[int | None] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    listener_money_earned: Mapped[int | None] = mapped_column(
        sa.BigInteger, server_default=sa.text("0")
    )
    status: Mapped[str | None] = mapped_column(sa.String(20), server_default=CallStatus.ONGOING)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


class ListenerBadge(Base):
    __tablename__ = "listener_badges"
    __table_args__ = (
        sa.CheckConstraint(
            "badge IN ('gold', 'silver', 'bronze', 'basic')", name="listener_badges_badge_check"
        ),
    )

    listener_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    badge: Mapped[str | None] = mapped_column(sa.String(20))
    audio_rate_per_minute: Mapped[Decimal] = mapped_column(Rate)
    video_rate_per_minute: Mapped[Decimal] = mapped_column(Rate)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, server_default=NOW)


def table(model: type[Base]) -> sa.Table:
    """The Core table of a model, for set-based statements."""
    return cast(sa.Table, model.__table__)


APP_TABLES = (User, UserRole, UserWallet, UserTransaction, UserStatus, UserCall, ListenerBadge)

# What `db adopt` requires of a live database: every table with these columns.
APP_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    model.__tablename__: tuple(column.name for column in table(model).columns)
    for model in APP_TABLES
}


# --- the project's own tables -------------------------------------------------


# The audit row's reason for an ok run with rows it could not process (it exits 1).
class RunOutcome(StrEnum):
    """How a job run ended (ops_job_runs.outcome, the run's output, its pings)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    DRY_RUN = "dry-run"  # never recorded: a dry-run writes nothing


SOME_ROWS_FAILED = "some rows failed"


class JobRun(Base):
    """The audit row of one job run (SPEC §9)."""

    __tablename__ = "ops_job_runs"
    __table_args__ = (
        sa.CheckConstraint(
            one_of("outcome", [RunOutcome.OK, RunOutcome.FAILED, RunOutcome.SKIPPED]),
            name="ops_job_runs_outcome",
        ),
        sa.Index("ix_ops_job_runs_job_started", "job", "started_at"),
    )

    run_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    job: Mapped[str] = mapped_column(sa.String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(sa.String(10))
    reason: Mapped[str | None] = mapped_column(sa.String(40))
    counts: Mapped[dict[str, int] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    host: Mapped[str] = mapped_column(sa.String(255))
    run_now: Mapped[datetime] = mapped_column(UTCDateTime)
    # the run's identifier (also the monitoring pings' rid), named by the settlements it made
    run_uuid: Mapped[str | None] = mapped_column(sa.String(32), unique=True)


class JobControl(Base):
    """A pause switch per job, shared by every host (SPEC §9)."""

    __tablename__ = "ops_job_controls"

    job: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    paused: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(sa.String(255))
    # why it was paused (`jobs pause --reason`); cleared by a resume
    reason: Mapped[str | None] = mapped_column(sa.Text)


class Settlement(Base):
    """A call saathii-ops settled, as it settled it (SPEC §5): at most one row per call.

    Written in the settlement's own transaction; `wallets audit` compares the call's
    row with it to see the app change a call after we settled it.
    """

    __tablename__ = "ops_settlements"

    # the primary key makes a second settlement of a call impossible, not only checked
    call_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    run_uuid: Mapped[str] = mapped_column(sa.String(32))  # ops_job_runs.run_uuid
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the database's clock
    # the call's row as settlement wrote it (status 'dropped')
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int] = mapped_column(sa.Integer)
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    coins_spent: Mapped[int] = mapped_column(sa.BigInteger)
    listener_money_earned: Mapped[int] = mapped_column(sa.BigInteger)
    # what the listener was paid, and where
    paid_minutes: Mapped[int] = mapped_column(sa.BigInteger)
    rate_per_minute: Mapped[Decimal] = mapped_column(Rate)
    earnings: Mapped[Decimal] = mapped_column(Money)
    listener_wallet_id: Mapped[int | None] = mapped_column(sa.Integer)  # None: nothing earned
    earn_transaction_id: Mapped[int | None] = mapped_column(sa.Integer)


class HalfEndedObservation(Base):
    """What saathii-ops first saw of a half-ended call (an ongoing call with an end_time,
    the app's end-call with the reason 'ongoing'): at most one row per call.

    Recorded by the real runs of billing, call cleanup and the audit (and `wallets
    reconcile`); the audit compares the call's later versions with it, so that the app
    ending the call again (paying its listener a second time) stays visible.
    """

    __tablename__ = "ops_half_ended_calls"

    call_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the database's clock
    run_uuid: Mapped[str | None] = mapped_column(sa.String(32))  # the run that saw it
    # the call's row as it was seen (status 'ongoing')
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    coins_spent: Mapped[int] = mapped_column(sa.BigInteger)
    listener_money_earned: Mapped[int | None] = mapped_column(sa.BigInteger)


class Correction(Base):
    """A correction `wallets reconcile --apply` made for a finding of the audit (SPEC §13):
    who, when, why, the finding, the row before and after. History is never edited:
    a correction changes a balance or a call's status and adds ledger rows."""

    __tablename__ = "ops_corrections"
    __table_args__ = (
        sa.Index("ix_ops_corrections_wallet_id", "wallet_id"),
        sa.Index("ix_ops_corrections_call_id", "call_id"),
    )

    correction_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the database's clock
    corrected_by: Mapped[str] = mapped_column(sa.String(255))  # user@host
    reason: Mapped[str] = mapped_column(sa.Text)
    finding: Mapped[str] = mapped_column(sa.String(40))
    action: Mapped[str] = mapped_column(sa.String(20))
    wallet_id: Mapped[int | None] = mapped_column(sa.Integer)
    call_id: Mapped[int | None] = mapped_column(sa.Integer)
    # the change made to the wallet's balance_coins (<= 0), and the ledger row written
    coins_change: Mapped[int] = mapped_column(sa.BigInteger)
    # coins that could not be taken (the balance would go below zero)
    uncollectable_coins: Mapped[int] = mapped_column(sa.BigInteger)
    transaction_id: Mapped[int | None] = mapped_column(sa.Integer)
    before: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
