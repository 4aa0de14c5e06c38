"""Bad input a person can cause: one clear line, the SPEC's exit code, no password shown."""

from __future__ import annotations

import pytest

from tests.conftest import Cli


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "error: invalid database URL 'not a url'\n"),
        (
            "mysql://root:hunter2@localhost/app",
            "error: unsupported database 'mysql': use a postgresql:// or sqlite:// URL\n",
        ),
    ],
)
def test_a_bad_database_url_is_exit_2(url: str, message: str) -> None:
    result = Cli(url)("presence", "cleanup")
    assert result.exit_code == 2
    assert result.stderr == message


def test_an_unreachable_server_is_exit_3_without_the_password() -> None:
    result = Cli("postgresql://ops:s3cret@127.0.0.1:1/saathii")("presence", "cleanup")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "error: cannot reach the database at postgresql+psycopg2://ops:***@127.0.0.1:1/saathii: "
    )
    assert result.stderr.count("\n") == 1
    assert "s3cret" not in result.stderr + result.stdout


def test_the_password_is_hidden_even_in_a_url_that_does_not_parse() -> None:
    result = Cli("postgresql://ops:s3cret@host:notaport/db")("presence", "cleanup")
    assert result.exit_code == 2
    assert "s3cret" not in result.stderr
    assert "ops:***@" in result.stderr


def test_a_database_without_schema_is_exit_3(empty_db_url: str) -> None:
    result = Cli(empty_db_url)("presence", "cleanup")
    assert result.exit_code == 3
    assert result.stderr == "error: the database has no schema yet: run `saathii-ops db upgrade`\n"


def test_a_missing_sqlite_directory_is_created_not_a_traceback(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'ops.db'}"
    assert Cli(url)("db", "upgrade").exit_code == 0
