"""`saathii-ops cron install | show | remove`: the jobs' schedule in a crontab, as systemd
timers, or as Kubernetes CronJobs."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from saathii_ops.cli.common import JsonOption, app_context, finish
from saathii_ops.cli.context import AppContext
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.errors import UsageError
from saathii_ops.output.cron_screen import (
    render_change,
    render_kubernetes,
    render_state,
    render_units,
)
from saathii_ops.output.render import stdout_console
from saathii_ops.scheduling import targets

if TYPE_CHECKING:
    from saathii_ops.scheduling.lines import CronSetup
    from saathii_ops.scheduling.use_cases import CrontabState

app = typer.Typer(
    cls=WholeHelpGroup,
    help="The jobs' schedule: a marked block in a crontab, systemd timers, or Kubernetes CronJobs.",
    no_args_is_help=True,
)


class Format(StrEnum):
    crontab = "crontab"
    systemd = "systemd"
    kubernetes = "kubernetes"


DirectoryOption = Annotated[
    Path | None,
    typer.Option(
        "--directory",
        help="systemd: where the units go; default: /etc/systemd/system as root, else "
        "~/.config/systemd/user (systemctl --user).",
        file_okay=False,
        show_default=False,
    ),
]


FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="This crontab file instead of the user's crontab.", dir_okay=False),
]
SystemOption = Annotated[
    bool, typer.Option("--system", help=f"The system crontab {targets.SYSTEM_CRONTAB}.")
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="The user the jobs run as: cron, the lines' user field (system crontab "
        "format; with --system the default is the current user); systemd, User=.",
        show_default=False,
    ),
]
LogDirOption = Annotated[
    Path | None,
    typer.Option(
        "--log-dir", help="Where the jobs' logs go; default: the log_dir setting.", file_okay=False
    ),
]
EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="A shell file of SAATHII_*=… lines that every line sources (instead of "
        "passing the database URL).",
        dir_okay=False,
    ),
]
ExecutableOption = Annotated[
    Path | None,
    typer.Option(
        "--executable",
        help="The saathii-ops the lines run; default: this one.",
        dir_okay=False,
        show_default=False,
    ),
]
ServerTimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--server-timezone",
        help="The timezone cron runs in; default: the server_timezone setting, "
        "else this machine's.",
        show_default=False,
    ),
]
CronDryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Print what would change (a unified diff); write nothing."),
]

CheckOption = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Write nothing; exit 1 if the installed block differs from what would be "
        "written now (its install time aside); options not given are the block's own.",
    ),
]
FormatOption = Annotated[
    Format,
    typer.Option(
        "--format",
        help="crontab: install the block; systemd: write a .service and a .timer per "
        "job; kubernetes: print CronJob manifests and the ConfigMap.",
    ),
]
MetricsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="Also schedule `status --format prometheus` every minute, written "
        "atomically to this file (node_exporter's textfile collector reads *.prom).",
        dir_okay=False,
        show_default=False,
    ),
]
ImageOption = Annotated[
    str | None, typer.Option("--image", help="kubernetes: the container image.")
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help="kubernetes: a Secret of SAATHII_* variables (the database URL, passwords).",
    ),
]
ConfigMapOption = Annotated[
    str | None,
    typer.Option(
        "--config-map",
        help="kubernetes: the name of the ConfigMap made from --config "
        "(default: saathii-ops-config).",
        show_default=False,
    ),
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an installed schedule that runs another config file or database.",
    ),
]


def _now(app: AppContext) -> datetime:
    return app.now or datetime.now(UTC)


def _target_and_setup(
    app: AppContext,
    *,
    file: Path | None,
    log_dir: Path | None,
    env_file: Path | None,
    executable: Path | None,
    server_timezone: str | None,
    user: str | None,
    system: bool,
    metrics_file: Path | None = None,
    as_installed: bool = False,
) -> tuple[AppContext, targets.CrontabTarget, CronSetup]:
    """The crontab the options name, and the lines' setup (install and show share both),
    with the context they were read in.

    `as_installed` (show, --check): an option not given now is the one the installed block
    records, so that a block is compared with what the same install would write now; the
    context is then a new one, of the recorded --config and --database-url.
    """
    from saathii_ops.settings import config_path

    target = targets.crontab_target(file, system=system)
    if as_installed:
        recorded = targets.installed_options(target)

        def path(name: str, given: Path | None) -> Path | None:
            return given or (Path(recorded[name]) if name in recorded else None)

        config = app.config_option
        if config_path(config) is None and "--config" in recorded:
            config = Path(recorded["--config"])
        app = replace(
            app,
            config_option=config,
            database_url_option=app.database_url_option or recorded.get("--database-url"),
        )
        executable = path("--executable", executable)
        log_dir = path("--log-dir", log_dir)
        env_file = path("--env-file", env_file)
        server_timezone = server_timezone or recorded.get("--server-timezone")
        user = user or recorded.get("--user")
        metrics_file = path("--metrics-file", metrics_file)
    setup = _setup(
        app,
        executable=executable,
        log_dir=log_dir,
        env_file=env_file,
        server_timezone=server_timezone,
        user=user,
        system=system,
        metrics_file=metrics_file,
    )
    return app, target, setup


def _setup(
    app: AppContext,
    *,
    executable: Path | None,
    log_dir: Path | None,
    env_file: Path | None,
    server_timezone: str | None,
    user: str | None,
    system: bool,
    metrics_file: Path | None,
) -> CronSetup:
    """The lines' setup from the options and the running configuration (cron's and
    systemd's alike)."""
    from saathii_ops.scheduling import lines

    return lines.cron_setup(
        app.settings,
        database_url_option=app.database_url_option,
        config_file=app.config_file,
        executable=executable,
        log_dir=log_dir,
        env_file=env_file,
        server_timezone_option=server_timezone,
        user=user,
        system=system,
        metrics_file=metrics_file,
    )


@app.command()
def install(
    ctx: typer.Context,
    dry_run: CronDryRunOption = False,
    check: CheckOption = False,
    system: SystemOption = False,
    file: FileOption = None,
    user: UserOption = None,
    log_dir: LogDirOption = None,
    env_file: EnvFileOption = None,
    executable: ExecutableOption = None,
    server_timezone: ServerTimezoneOption = None,
    output_format: FormatOption = Format.crontab,
    directory: DirectoryOption = None,
    metrics_file: MetricsFileOption = None,
    image: ImageOption = None,
    secret: SecretOption = None,
    config_map: ConfigMapOption = None,
    force: ForceOption = False,
    json_output: JsonOption = False,
) -> None:
    """Install the schedule of every job as one marked block (re-installing replaces it).

    The block goes above the crontab's other lines, so an environment line of the crontab
    (MAILTO=, SHELL=) does not apply to it: each line sets its own PATH and appends its
    output to its log, so cron has nothing to mail unless a line cannot start.
    """
    from saathii_ops.scheduling import lines, use_cases

    app = app_context(ctx)
    _refuse_other_formats_options(output_format, {name for name, v in ctx.params.items() if v})
    if output_format is Format.kubernetes:
        _print_kubernetes(app, image, secret, config_map, server_timezone)
        return
    if output_format is Format.systemd:
        _install_systemd(
            app, directory, user, env_file, executable, metrics_file, dry_run=dry_run, force=force
        )
        return
    app, target, setup = _target_and_setup(
        app,
        file=file,
        log_dir=log_dir,
        env_file=env_file,
        executable=executable,
        server_timezone=server_timezone,
        user=user,
        system=system,
        metrics_file=metrics_file,
        as_installed=check,
    )
    if check:
        state = use_cases.inspect(target, setup, app.settings, _now(app))
        _print_state(app, state, full=False)
        finish(state)
        return
    change = use_cases.install(target, setup, app.settings, _now(app), dry_run=dry_run, force=force)
    _warn_unseen(lines.environment_cron_cannot_see(setup.env_file), "cron")
    render_change(
        stdout_console(), change, verb="installed", json_output=app.json_output, dry_run=dry_run
    )


def _refuse_other_formats_options(output_format: Format, given: set[str]) -> None:
    """One line naming what the format does not take (`given`: the parameters given)."""
    if output_format is Format.kubernetes:
        if given & {
            "dry_run", "check", "system", "file", "user", "log_dir", "env_file", "executable",
            "directory", "metrics_file", "force",
        }:  # fmt: skip
            raise UsageError(
                "--format kubernetes prints manifests: it takes none of --dry-run, --check, "
                "--system, --file, --user, --log-dir, --env-file, --executable, --directory, "
                "--metrics-file, --force"
            )
        return
    if given & {"image", "secret", "config_map"}:
        raise UsageError("--image, --secret and --config-map go with --format kubernetes")
    if output_format is Format.systemd:
        if given & {"check", "system", "file", "log_dir", "server_timezone"}:
            raise UsageError(
                "--format systemd writes units (their output goes to journald, each timer "
                "names its timezone): it takes none of --check, --system, --file, --log-dir, "
                "--server-timezone"
            )
    elif "directory" in given:
        raise UsageError("--directory goes with --format systemd")


def _warn_unseen(unseen: list[str], scheduler: str) -> None:
    if unseen:
        typer.echo(
            f"warning: {scheduler} will not see {', '.join(unseen)} of this shell: "
            "put them in the config file or an --env-file",
            err=True,
        )


def _install_systemd(
    app: AppContext,
    directory: Path | None,
    user: str | None,
    env_file: Path | None,
    executable: Path | None,
    metrics_file: Path | None,
    *,
    dry_run: bool,
    force: bool,
) -> None:
    from saathii_ops.scheduling import lines, systemd

    setup = _setup(
        app,
        executable=executable,
        log_dir=None,
        env_file=env_file,
        server_timezone="UTC",  # unused: a timer names its timezone
        user=user,
        system=False,
        metrics_file=metrics_file,
    )
    # a timer names its own timezone: the server's is no option of the units
    options = list(setup.options)
    if "--server-timezone" in options:
        del options[options.index("--server-timezone") : options.index("--server-timezone") + 2]
    setup = replace(setup, options=tuple(options))
    where = Path(os.path.abspath(directory or systemd.default_directory()))
    change = systemd.install(where, setup, app.settings, dry_run=dry_run, force=force)
    _warn_unseen(lines.environment_cron_cannot_see(setup.env_file), "systemd")
    render_units(
        stdout_console(), change, verb="installed", json_output=app.json_output, dry_run=dry_run
    )


def _print_kubernetes(
    app: AppContext,
    image: str | None,
    secret: str | None,
    config_map: str | None,
    server_timezone: str | None,
) -> None:
    if not image:
        raise UsageError("--format kubernetes needs --image IMAGE")
    from saathii_ops.scheduling import kubernetes, lines

    manifests = kubernetes.kubernetes_manifests(
        app.settings,
        image=image,
        secret=secret,
        config_file=app.config_file,
        config_map=config_map,
        # CronJobs are not on this machine: UTC unless a server timezone is stated
        server_tz=server_timezone or app.settings.server_timezone or "Etc/UTC",
        now=_now(app),
    )
    unseen = lines.environment_cron_cannot_see(None)
    if unseen:
        typer.echo(
            f"warning: the pods will not see {', '.join(unseen)} of this shell: "
            "put them in the config file (the ConfigMap) or the Secret",
            err=True,
        )
    render_kubernetes(stdout_console(), manifests, json_output=app.json_output)


@app.command()
def show(
    ctx: typer.Context,
    system: SystemOption = False,
    file: FileOption = None,
    user: UserOption = None,
    log_dir: LogDirOption = None,
    env_file: EnvFileOption = None,
    executable: ExecutableOption = None,
    server_timezone: ServerTimezoneOption = None,
    json_output: JsonOption = False,
) -> None:
    """The installed block, each job's next runs, and whether `cron install` would change it
    (the options are install's, to compare with what it would write; those not given are
    the ones the block was installed with)."""
    from saathii_ops.scheduling import use_cases

    app = app_context(ctx)
    app, target, setup = _target_and_setup(
        app,
        file=file,
        log_dir=log_dir,
        env_file=env_file,
        executable=executable,
        server_timezone=server_timezone,
        user=user,
        system=system,
        as_installed=True,
    )
    _print_state(app, use_cases.inspect(target, setup, app.settings, _now(app)))


def _print_state(app: AppContext, state: CrontabState, *, full: bool = True) -> None:
    render_state(
        stdout_console(),
        state,
        business_tz=app.settings.timezone,
        json_output=app.json_output,
        full=full,
    )


@app.command()
def remove(
    ctx: typer.Context,
    dry_run: CronDryRunOption = False,
    system: SystemOption = False,
    file: FileOption = None,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format", help="crontab: remove the block; systemd: remove the units it wrote."
        ),
    ] = Format.crontab,
    directory: DirectoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove the block (or the systemd units), and nothing else."""
    from saathii_ops.scheduling import use_cases

    app = app_context(ctx)
    if output_format is Format.kubernetes:
        raise UsageError("--format kubernetes: delete the CronJobs with kubectl")
    if output_format is Format.systemd:
        if system or file:
            raise UsageError("--format systemd removes units: --system and --file are cron's")
        from saathii_ops.scheduling import systemd

        where = Path(os.path.abspath(directory or systemd.default_directory()))
        units = systemd.remove(where, dry_run=dry_run)
        render_units(
            stdout_console(), units, verb="removed", json_output=app.json_output, dry_run=dry_run
        )
        return
    if directory:
        raise UsageError("--directory goes with --format systemd")
    change = use_cases.remove(targets.crontab_target(file, system=system), dry_run=dry_run)
    render_change(
        stdout_console(), change, verb="removed", json_output=app.json_output, dry_run=dry_run
    )
