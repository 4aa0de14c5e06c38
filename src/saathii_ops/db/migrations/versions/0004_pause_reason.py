"""Why a job is paused: a nullable column on the pause switches.

A nullable column without a default: no table rewrite on PostgreSQL (a catalog change
under a brief lock of ops_job_controls, which only saathii-ops reads) and a plain
ALTER TABLE ADD COLUMN on SQLite, so `db upgrade --sql` works on both.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ops_job_controls", sa.Column("reason", sa.Text))


def downgrade() -> None:
    op.drop_column("ops_job_controls", "reason")
