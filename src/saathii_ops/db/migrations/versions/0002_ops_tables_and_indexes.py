"""The project's own objects: the job-run audit table, the pause switches, and
the indexes that keep the jobs' queries fast on large tables.

Only new tables and indexes: the app's columns are never changed.

On PostgreSQL the indexes are on the app's busy tables, so they are built with
CREATE INDEX CONCURRENTLY (outside a transaction: Alembic's autocommit block),
which lets the app keep writing. An interrupted concurrent build leaves an
INVALID index behind; a re-run drops it and builds it again, and skips an index
already built. The indexes come first, so that a re-run after an interruption
finds none of this revision's tables yet. SQLite: plain CREATE INDEX, in the
migration's transaction.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import context, op

from saathii_ops.db.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# (name, table, columns, partial-index condition)
INDEXES = (
    # billing and call cleanup scan only the ongoing calls
    ("ix_user_calls_ongoing", "user_calls", ["start_time"], "status = 'ongoing'"),
    # badges: a business day's calls by start time
    ("ix_user_calls_start_time", "user_calls", ["start_time"], None),
    # presence cleanup: online users by last_seen
    ("ix_user_status_online_last_seen", "user_status", ["last_seen"], "is_online"),
    ("ix_user_status_busy", "user_status", ["user_id"], "is_busy OR wait_time IS NOT NULL"),
    # the wallet ledger by wallet (wallets audit)
    ("ix_user_transactions_wallet_id", "user_transactions", ["wallet_id"], None),
    # all listeners
    ("ix_user_roles_role", "user_roles", ["role", "user_id"], None),
)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table, columns, where in INDEXES:
                _build_concurrently(name, table, columns, where)
    else:
        for name, table, columns, where in INDEXES:
            condition = sa.text(where) if where else None
            op.create_index(name, table, columns, sqlite_where=condition)
    op.create_table(
        "ops_job_runs",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(40), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column(
            "outcome",
            sa.String(10),
            sa.CheckConstraint(
                "outcome IN ('ok', 'failed', 'skipped')", name="ops_job_runs_outcome"
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(40)),
        sa.Column("counts", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("run_now", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_ops_job_runs_job_started", "ops_job_runs", ["job", "started_at"])
    op.create_table(
        "ops_job_controls",
        sa.Column("job", sa.String(40), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=False),
    )


def _build_concurrently(name: str, table: str, columns: list[str], where: str | None) -> None:
    """CREATE INDEX CONCURRENTLY, after dropping an INVALID one an interrupted build left.

    Offline (`db upgrade --sql`) nothing can be looked up: the script drops the index if it
    exists, so that it too can be run again after an interruption.
    """
    if context.is_offline_mode():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    else:
        valid = (
            op.get_bind()
            .execute(
                sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
                {"name": name},
            )
            .scalar()
        )
        if valid:
            return
        if valid is False:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
    condition = sa.text(where) if where else None
    op.create_index(name, table, columns, postgresql_where=condition, postgresql_concurrently=True)


def downgrade() -> None:
    for name, table, _columns, _where in INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("ops_job_controls")
    op.drop_index("ix_ops_job_runs_job_started", table_name="ops_job_runs")
    op.drop_table("ops_job_runs")
