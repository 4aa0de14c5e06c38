"""A password is never printed (SPEC §2): every command's error paths, with the
password in every form a URL can carry it, through every way of giving the URL;
all of stdout and stderr is searched for it, with and without -v."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from saathii_ops.cli.app import app
from saathii_ops.db.engine import mask_secrets, mask_url_text
from saathii_ops.runtime.registry import JOBS
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user

SECRET = "S3cretPW"

SECRET_URLS = [
    f"postgresql://ops:{SECRET}@127.0.0.1:1/saathii",  # unreachable server
    f"postgresql://ops@127.0.0.1:1/saathii?sslmode=disable&password={SECRET}",
    f"postgres:{SECRET}@127.0.0.1/saathii",  # no // : does not parse
    f"postgresql://ops:{SECRET}@127.0.0.1:notaport/saathii",
    f"host=127.0.0.1 port=1 user=ops password={SECRET} dbname=saathii",  # libpq key=value
    f"host=127.0.0.1 password='{SECRET} x' dbname=saathii",
]


def _leaf_commands() -> list[list[str]]:
    def walk(command: Any, path: list[str]) -> list[list[str]]:
        if hasattr(command, "commands"):  # a group
            return [
                leaf for name, sub in command.commands.items() for leaf in walk(sub, [*path, name])
            ]
        return [path]

    return walk(typer.main.get_command(app), [])


def _args(command: list[str], tmp_path: Path) -> list[str]:
    """Arguments that keep a command away from the real crontab and data directory."""
    crontab = str(tmp_path / "crontab")
    extra = {
        ("jobs", "pause"): ["coins-deduct"],
        ("jobs", "resume"): ["coins-deduct"],
        ("cron", "install"): ["--file", crontab, "--dry-run"],
        ("cron", "remove"): ["--file", crontab, "--dry-run"],
        ("cron", "show"): ["--file", crontab],
        ("status",): ["--crontab-file", crontab],
    }
    return [*command, *extra.get(tuple(command), [])]


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, argv, env=env)
    return result.stdout + result.stderr + (repr(result.exception) if result.exception else "")


def test_the_command_list_is_complete() -> None:
    assert len(_leaf_commands()) == 20  # wallets reconcile previews without --apply: safe


@pytest.mark.parametrize("url", SECRET_URLS)
@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_no_command_prints_the_password_of_a_bad_url(
    url: str, verbose: list[str], tmp_path: Path
) -> None:
    for command in _leaf_commands():
        for json_option in ([], ["--json"]):
            output = _run(
                [*verbose, "--database-url", url, *json_option, *_args(command, tmp_path)]
            )
            assert SECRET not in output, (command, output)


@pytest.mark.parametrize("url", SECRET_URLS[:3])
def test_no_password_from_the_environment_or_the_config_file(url: str, tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(f"database_url = {url!r}\n".replace("'", '"'))
    for command in (["status"], ["coins", "deduct"], ["db", "current"], ["jobs", "list"]):
        argv = _args(command, tmp_path)
        for env in ({"SAATHII_DATABASE_URL": url}, {"DATABASE_URL": url}):
            assert SECRET not in _run(argv, env=env)
        assert SECRET not in _run(["--config", str(config), *argv])


def test_status_and_db_current_of_a_reachable_database_hide_a_query_password(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """On PostgreSQL the server ignores the password (trust), and the URL is shown."""
    if db_url.startswith("sqlite"):
        pytest.skip("a query password means something only to PostgreSQL")
    url = f"{db_url}?password={SECRET}"
    for argv in (
        ["status", "--crontab-file", str(tmp_path / "crontab")],
        ["--json", "status", "--crontab-file", str(tmp_path / "crontab")],
        ["db", "current"],
        ["--json", "db", "current"],
        ["--json", "coins", "deduct"],
        ["jobs", "list"],
    ):
        output = _run(["--database-url", url, *argv])
        assert SECRET not in output, (argv, output)
        assert "password=***" in output or argv[-1] in ("deduct", "list"), (argv, output)


def test_a_redis_password_is_hidden_when_the_cache_is_down(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    from saathii_ops.db.engine import transaction

    with transaction(engine) as s:
        caller = add_user(s, balance=100)
        listener = add_user(s, role="listener", balance=0)
        add_call(s, caller, listener, start=T0, coins_spent=10)
        s.commit()
    config = tmp_path / "ops.toml"
    config.write_text(f'redis_url = "redis://:{SECRET}@127.0.0.1:1/0"\n')
    now = ["--now", T0.replace(minute=5).isoformat()]
    for json_option in ([], ["--json"]):
        output = _run(
            [
                "--database-url",
                db_url,
                "--config",
                str(config),
                *now,
                *json_option,
                "coins",
                "deduct",
            ]
        )
        assert SECRET not in output
        assert "redis://:***@127.0.0.1:1/0" in output


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"postgres:{SECRET}@127.0.0.1/db", "postgres:***@127.0.0.1/db"),
        (f"postgresql://ops:p@ss:{SECRET}@host/db", "postgresql://ops:***@host/db"),
        (f"postgresql://ops@h/db?password={SECRET}&x=1", "postgresql://ops@h/db?password=***&x=1"),
        (f"postgresql://ops@h/db?sslpassword={SECRET}", "postgresql://ops@h/db?sslpassword=***"),
        (f"host=h password={SECRET} dbname=d", "host=h password=*** dbname=d"),
        (f"host=h password = '{SECRET} \\' x' dbname=d", "host=h password = *** dbname=d"),
        (f"PGPASSWORD={SECRET} psql", "PGPASSWORD=*** psql"),
        (f"at h/db?password={SECRET}: refused", "at h/db?password=***: refused"),
        (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://ops@host:5432/db", "postgresql://ops@host:5432/db"),
        ("seen at 12:30 by ops@example.com", "seen at 12:30 by ops@example.com"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert SECRET not in mask_url_text(text)


# Passwords as people type them: a raw `@`, `/` or `&` in them, percent-encoded,
# or a URL that does not parse. Every piece of the password (both sides of the raw
# character) is looked for; the host does not resolve, so a driver that connected would
# quote the host name it was given.
PIECES = ("myPart", "SecretTail")
TYPED_URLS = [
    ("postgresql://bob:myPart@SecretTail@no-such-host.invalid:1/x", 2),
    ("postgresql://bob:myPart@SecretTail@127.0.0.1:1/x", 2),
    ("postgresql://bob:myPart/x@SecretTail@no-such-host.invalid/x", 2),
    ("postgresql://bob@no-such-host.invalid/x?password=myPart&SecretTail=1", 2),
    ("postgresql://bob@127.0.0.1:1/x?sslmode=disable&password=myPart&SecretTail", 3),
    ("postgresql://bob:myPart%40SecretTail@no-such-host.invalid/x", 3),
    ("postgresql://bob:myPart%SecretTail@no-such-host.invalid/x", 3),
    ("postgresql://bob:myPartSecretTail", 2),  # no host: does not parse
    ("postgresql://bob:myPartSecretTail@[::1/x", 2),
]


@pytest.mark.parametrize(("url", "exit_code"), TYPED_URLS)
def test_no_piece_of_a_typed_password_is_printed(url: str, exit_code: int, tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(f"database_url = {url!r}\n")
    for command in (["db", "current"], ["--json", "coins", "deduct"], ["status"]):
        argv = _args(command, tmp_path)
        for verbose in ([], ["-v"]):
            for given, env in (
                (["--database-url", url], None),
                ([], {"SAATHII_DATABASE_URL": url}),
                (["--config", str(config)], None),
            ):
                result = CliRunner().invoke(app, [*verbose, *given, *argv], env=env)
                output = result.stdout + result.stderr
                assert not any(piece in output for piece in PIECES), (command, given, output)
                assert result.exit_code == exit_code, (command, given, output)


def test_a_raw_at_in_the_password_is_refused_with_how_to_write_it() -> None:
    url = "postgresql://bob:my@SecretTail@127.0.0.1:1/x"
    result = CliRunner().invoke(app, ["--database-url", url, "db", "current"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid database URL (postgresql://…@127.0.0.1:1): more than one '@' before "
        "the host; write an '@' in the user name or password as %40\n"
    )


def test_a_redis_password_with_a_raw_at_is_hidden(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text('redis_url = "redis://:myPart@SecretTail@127.0.0.1:1/0"\n')
    config.chmod(0o600)
    result = CliRunner().invoke(
        app, ["--database-url", db_url, "--config", str(config), "coins", "deduct"]
    )
    assert result.exit_code == 0, result.output
    assert not any(piece in result.stdout + result.stderr for piece in PIECES)


@pytest.mark.parametrize(
    "env",
    [
        {"SAATHII_DATABASE_URL": f"postgresql://ops:{SECRET}@127.0.0.1:1/x"},
        {"SAATHII_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0"},
        {"DATABASE_URL": f"postgresql://ops:{SECRET}@127.0.0.1:1/x"},
    ],
)
def test_a_password_in_the_environment_is_not_the_config_files(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(f'log_dir = "{tmp_path}"\n')
    config.chmod(0o644)
    result = CliRunner().invoke(
        app, ["--config", str(config), "cron", "show", "--file", str(tmp_path / "crontab")], env=env
    )
    assert "warning" not in result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "line",
    [
        f'database_url = "postgresql://ops:{SECRET}@127.0.0.1:1/x"',
        f'redis_url = "redis://:{SECRET}@127.0.0.1:1/0"',
        f'ping_url = "https://ops:{SECRET}@hc.example/ping"',
    ],
)
def test_the_config_file_that_holds_a_password_is_named(line: str, tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(line + "\n")
    config.chmod(0o640)
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "cron", "show", "--file", str(tmp_path / "crontab")],
        env={"SAATHII_DATABASE_URL": "sqlite:///" + str(tmp_path / "x.db")},
    )
    assert result.stderr.startswith(
        f"warning: config file {config} holds a password and others can read it "
        f"(mode 640): chmod 600 {config}\n"
    )
    assert SECRET not in result.stdout + result.stderr


def test_a_config_file_with_a_password_readable_by_others_is_warned_of(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text('redis_url = "redis://:s3cret@127.0.0.1:1/0"\n')
    cli = Cli(db_url)
    for mode, warned in ((0o644, True), (0o640, True), (0o604, True), (0o600, False)):
        config.chmod(mode)
        result = cli("--config", str(config), "jobs", "list")
        assert result.exit_code == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        expected = [
            f"warning: config file {config} holds a password and others can read it "
            f"(mode {mode:o}): chmod 600 {config}"
        ]
        assert warnings == (expected if warned else []), oct(mode)
        assert "s3cret" not in result.stderr + result.stdout
        assert len(result.stdout.splitlines()) == 1 + len(JOBS)
    # no password, no warning, whatever the mode
    config.write_text('timezone = "UTC"\n')
    config.chmod(0o644)
    assert "warning" not in cli("--config", str(config), "jobs", "list").stderr
