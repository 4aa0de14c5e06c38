"""Alembic environment: runs on the connection the CLI hands over, or, offline
(`db upgrade --sql`), prints the SQL for the dialect it is given and runs nothing."""

from alembic import context

from saathii_ops.db.tables import metadata

if context.is_offline_mode():
    dialect_name = context.config.attributes["dialect_name"]
    context.configure(
        dialect_name=dialect_name,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=dialect_name == "sqlite",
    )
else:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
with context.begin_transaction():
    context.run_migrations()
