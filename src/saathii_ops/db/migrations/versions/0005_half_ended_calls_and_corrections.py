"""What saathii-ops saw of half-ended calls (ops_half_ended_calls) and the corrections
`wallets reconcile --apply` made (ops_corrections).

New tables of the project's own only: nothing of the app's is locked or changed. No
foreign keys to the app's tables: the app deletes users (and their calls) as it pleases.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from saathii_ops.db.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_half_ended_calls",
        sa.Column("call_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("run_uuid", sa.String(32)),
        sa.Column("end_time", UTCDateTime(), nullable=False),
        sa.Column("coins_spent", sa.BigInteger, nullable=False),
        sa.Column("listener_money_earned", sa.BigInteger),
    )
    op.create_table(
        "ops_corrections",
        sa.Column("correction_id", sa.Integer, primary_key=True),
        sa.Column("corrected_at", UTCDateTime(), nullable=False),
        sa.Column("corrected_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("finding", sa.String(40), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("wallet_id", sa.Integer),
        sa.Column("call_id", sa.Integer),
        sa.Column("coins_change", sa.BigInteger, nullable=False),
        sa.Column("uncollectable_coins", sa.BigInteger, nullable=False),
        sa.Column("transaction_id", sa.Integer),
        sa.Column("before", sa.JSON, nullable=False),
        sa.Column("after", sa.JSON, nullable=False),
    )
    op.create_index("ix_ops_corrections_wallet_id", "ops_corrections", ["wallet_id"])
    op.create_index("ix_ops_corrections_call_id", "ops_corrections", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_ops_corrections_call_id", table_name="ops_corrections")
    op.drop_index("ix_ops_corrections_wallet_id", table_name="ops_corrections")
    op.drop_table("ops_corrections")
    op.drop_table("ops_half_ended_calls")
