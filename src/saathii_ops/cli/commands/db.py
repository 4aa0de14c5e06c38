"""`saathii-ops db upgrade | current | adopt`."""

from typing import Annotated

import typer

from saathii_ops.cli.common import JsonOption, app_context, finish
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.output.render import show, stdout_console, to_jsonable

app = typer.Typer(
    cls=WholeHelpGroup, help="The database schema (Alembic migrations).", no_args_is_help=True
)


def _with_source(data: object, url_from: str) -> dict[str, object]:
    """`data` has the database's `url`; `url_from` (where it came from) follows it."""
    document = to_jsonable(data)
    return {"url": document.pop("url"), "url_from": url_from, **document}


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
            show(stdout_console(), _with_source(script, app.database_source), json_output=True)
        elif script.sql:
            typer.echo(script.sql, nl=False)
        else:
            typer.echo(f"-- already at revision {script.after}: nothing to run")
        return
    report = schema.upgrade(app.engine)
    document = _with_source(report, app.database_source)
    show(stdout_console(), document, json_output=app.json_output, title="db upgrade")


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
    document = _with_source(data, app.database_source)
    show(stdout_console(), document, json_output=app.json_output, title="db current")
    finish(state)


@app.command()
def adopt(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Record a live app database's tables as the first revision; change nothing else."""
    from saathii_ops.db import schema

    app = app_context(ctx)
    report = schema.adopt(app.engine)
    document = _with_source(report, app.database_source)
    show(stdout_console(), document, json_output=app.json_output, title="db adopt")
