"""The settlement record: one row per call saathii-ops settled, and the run identifier
that names the run which settled it.

No foreign keys to the app's tables: the app deletes users (and their calls) as it
pleases, and our record must never stop it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from saathii_ops.db.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a column and a unique index, not batch mode: `db upgrade --sql` must work on SQLite too
    op.add_column("ops_job_runs", sa.Column("run_uuid", sa.String(32)))
    op.create_index("ops_job_runs_run_uuid_key", "ops_job_runs", ["run_uuid"], unique=True)
    op.create_table(
        "ops_settlements",
        sa.Column("call_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("run_uuid", sa.String(32), nullable=False),
        sa.Column("settled_at", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=False),
        sa.Column("duration_seconds", sa.Integer, nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("coins_spent", sa.BigInteger, nullable=False),
        sa.Column("listener_money_earned", sa.BigInteger, nullable=False),
        sa.Column("paid_minutes", sa.BigInteger, nullable=False),
        sa.Column("rate_per_minute", sa.Numeric(5, 2), nullable=False),
        sa.Column("earnings", sa.Numeric(12, 2), nullable=False),
        sa.Column("listener_wallet_id", sa.Integer),
        sa.Column("earn_transaction_id", sa.Integer),
    )
    op.create_index("ix_ops_settlements_run_uuid", "ops_settlements", ["run_uuid"])


def downgrade() -> None:
    op.drop_index("ix_ops_settlements_run_uuid", table_name="ops_settlements")
    op.drop_table("ops_settlements")
    op.drop_index("ops_job_runs_run_uuid_key", table_name="ops_job_runs")
    op.drop_column("ops_job_runs", "run_uuid")
