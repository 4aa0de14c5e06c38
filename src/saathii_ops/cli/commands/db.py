"""`saathii-ops db upgrade | current | adopt`."""

from typing import Annotated

import typer

from saathii_ops.cli.common import JsonOption, app_context, finish
from saathii_ops.output.render import emit_json, render_mapping, stdout_console, to_jsonable

app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)


def _show(title: str, data: object, json_output: bool, url_from: str) -> None:
    """`data` has the database's `url`; `url_from` (where it came from) follows it."""
    document = to_jsonable(data)
    document = {"url": document.pop("url"), "url_from": url_from, **document}
    console = stdout_console()
    if json_output:
        emit_json(console, document)
    else:
        render_mapping(console, title, document)


@app.command()
def upgrade(
    ctx: typer.Context,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print the SQL the upgrade would run from the database's revision "
            "(Alembic's offline mode); run and change nothing.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Create or migrate the schema to the latest revision (refuses an unadopted app database).

    On PostgreSQL the indexes on the app's tables are built CONCURRENTLY (the app keeps
    writing); an upgrade interrupted while building one can be run again."""
    from saathii_ops.db import schema

    app = app_context(ctx)
    if sql:
        script = schema.upgrade_sql(app.engine)
        if app.json_output:
            _show("db upgrade --sql", script, True, app.database_source)
        elif script.sql:
            typer.echo(script.sql, nl=False)
        else:
            typer.echo(f"-- already at revision {script.after}: nothing to run")
        return
    report = schema.upgrade(app.engine)
    _show("db upgrade", report, app.json_output, app.database_source)


@app.command()
def current(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show the schema revision of the database and the latest one."""
    from saathii_ops.db import schema

    app = app_context(ctx)
    state = schema.inspect_schema(app.engine)
    data = {
        "url": state.url,
        "current": state.current,
        "head": state.head,
        "at_head": state.at_head,
        "adopted": not state.unadopted,
    }
    _show("db current", data, app.json_output, app.database_source)
    finish(state)


@app.command()
def adopt(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Record a live app database's tables as the first revision; change nothing else."""
    from saathii_ops.db import schema

    app = app_context(ctx)
    report = schema.adopt(app.engine)
    _show("db adopt", report, app.json_output, app.database_source)
