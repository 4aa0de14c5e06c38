"""The app's seven tables, exactly as the Saathii backend creates them (app-schema.sql).

A live app database already has them: `saathii-ops db adopt` records this
revision as applied instead of running it.

Revision ID: 0001
Revises:
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from saathii_ops.db.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now()),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now()),
    ]


def _user_fk(
    name: str = "user_id", *, primary_key: bool = False, unique: bool = False
) -> sa.Column[int]:
    return sa.Column(
        name,
        sa.Integer,
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        primary_key=primary_key,
        unique=unique,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(10), nullable=False, unique=True),
        sa.Column("sex", sa.String(10), sa.CheckConstraint("sex IN ('male', 'female')")),
        sa.Column("dob", sa.Date, nullable=False),
        sa.Column("phone", sa.String(20), nullable=False, unique=True),
        sa.Column("preferred_language", sa.String(50)),
        sa.Column("profile_image_url", sa.Text),
        sa.Column("rating", sa.Numeric(3, 2), server_default=sa.text("0")),
        sa.Column("interests", postgresql.ARRAY(sa.Text()).with_variant(sa.JSON(), "sqlite")),
        sa.Column("bio", sa.Text),
        sa.Column("country", sa.String(100), server_default="India"),
        *_timestamps(),
    )
    op.create_table(
        "user_roles",
        _user_fk(primary_key=True),
        sa.Column(
            "role",
            sa.String(20),
            sa.CheckConstraint("role IN ('customer', 'listener')"),
            primary_key=True,
        ),
        sa.Column("assigned_at", UTCDateTime(), server_default=sa.func.now()),
    )
    op.create_table(
        "user_wallets",
        sa.Column("wallet_id", sa.Integer, primary_key=True),
        _user_fk(unique=True),
        sa.Column("balance_coins", sa.BigInteger, server_default=sa.text("0")),
        sa.Column("withdrawable_money", sa.Numeric(12, 2), server_default=sa.text("0.00")),
        *_timestamps(),
    )
    op.create_table(
        "user_transactions",
        sa.Column("transaction_id", sa.Integer, primary_key=True),
        sa.Column(
            "wallet_id",
            sa.Integer,
            sa.ForeignKey("user_wallets.wallet_id", ondelete="CASCADE"),
        ),
        sa.Column(
            "tx_type",
            sa.String(20),
            sa.CheckConstraint(
                "tx_type IN ('purchase', 'spend', 'earn', 'withdraw', 'bonus', 'referral_bonus')"
            ),
        ),
        sa.Column("coins_change", sa.BigInteger, server_default=sa.text("0")),
        sa.Column("money_change", sa.Numeric(12, 2), server_default=sa.text("0.00")),
        *_timestamps(),
    )
    op.create_table(
        "user_status",
        _user_fk(primary_key=True),
        sa.Column("is_online", sa.Boolean, server_default=sa.false()),
        sa.Column("last_seen", UTCDateTime(), server_default=sa.func.now()),
        sa.Column("is_busy", sa.Boolean, server_default=sa.false()),
        sa.Column("wait_time", sa.Integer),
        sa.Column("is_active", sa.Boolean, server_default=sa.true()),
        *_timestamps(),
    )
    op.create_table(
        "user_calls",
        sa.Column("call_id", sa.Integer, primary_key=True),
        _user_fk(),
        _user_fk("listener_id"),
        sa.Column(
            "call_type", sa.String(10), sa.CheckConstraint("call_type IN ('audio', 'video')")
        ),
        sa.Column("start_time", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("end_time", UTCDateTime()),
        sa.Column("duration_seconds", sa.Integer),
        sa.Column("duration_minutes", sa.Integer),
        sa.Column("coins_spent", sa.BigInteger, server_default=sa.text("0")),
        sa.Column("listener_money_earned", sa.BigInteger, server_default=sa.text("0")),
        sa.Column(
            "status",
            sa.String(20),
            sa.CheckConstraint("status IN ('ongoing', 'completed', 'dropped')"),
            server_default="ongoing",
        ),
        *_timestamps(),
    )
    op.create_index("idx_calls_user", "user_calls", ["user_id"])
    op.create_index("idx_calls_listener", "user_calls", ["listener_id"])
    op.create_table(
        "listener_badges",
        _user_fk("listener_id", primary_key=True),
        sa.Column("date", sa.Date, nullable=False, primary_key=True),
        sa.Column(
            "badge",
            sa.String(20),
            sa.CheckConstraint("badge IN ('gold', 'silver', 'bronze', 'basic')"),
        ),
        sa.Column("audio_rate_per_minute", sa.Numeric(5, 2), nullable=False),
        sa.Column("video_rate_per_minute", sa.Numeric(5, 2), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), server_default=sa.func.now()),
        *_timestamps(),
    )


def downgrade() -> None:
    for table in (
        "listener_badges",
        "user_calls",
        "user_status",
        "user_transactions",
        "user_wallets",
        "user_roles",
        "users",
    ):
        op.drop_table(table)
