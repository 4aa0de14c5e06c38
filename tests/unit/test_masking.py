"""Passwords never shown (SPEC §2), pure text: every form a database or Redis URL may
carry a password in is masked, the rest of the text is kept; an error's first line."""

from __future__ import annotations

import pytest

from saathii_ops.output.masking import first_line, mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://ops:pw@db:5432/saathii", "postgresql://ops:***@db:5432/saathii"),
        ("postgres:pw@127.0.0.1/db", "postgres:***@127.0.0.1/db"),  # no //: parses not
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://ops@h/db?password=pw&x=1", "postgresql://ops@h/db?password=***&x=1"),
        ("postgresql://ops@h/db?sslpassword=pw", "postgresql://ops@h/db?sslpassword=***"),
        ("host=h PASSWORD=pw dbname=d", "host=h PASSWORD=*** dbname=d"),
        ("host=h password = 'p w' dbname=d", "host=h password = *** dbname=d"),
        ("PGPASSWORD=pw psql", "PGPASSWORD=*** psql"),
        ("refused (password=pw).", "refused (password=***)."),  # the sentence's stays
        ("passwd=pw, then", "passwd=***, then"),
        (
            "from postgresql://a:1@h/d to redis://:2@c/0",
            "from postgresql://a:***@h/d to redis://:***@c/0",
        ),
        ("postgresql://ops@host:5432/db", "postgresql://ops@host:5432/db"),
        ("seen at 12:30 by ops@example.com", "seen at 12:30 by ops@example.com"),
        ("", ""),
    ],
    ids=[
        "url-userinfo",
        "unparsed-url-userinfo",
        "redis-userinfo",
        "query-password",
        "query-sslpassword",
        "libpq-password",
        "libpq-quoted-password",
        "pgpassword",
        "sentence-punctuation",
        "passwd-comma",
        "two-urls",
        "no-password",
        "an-email-address",
        "empty",
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


class DriverError(Exception):
    """An error that wraps the driver's, as SQLAlchemy's do (`.orig`)."""

    def __init__(self, message: str, orig: BaseException) -> None:
        super().__init__(message)
        self.orig = orig


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ValueError("first\nsecond"), "first"),
        (ValueError("  padded  \n"), "padded"),
        (KeyError(), "KeyError"),  # no message: its type
        (DriverError("[SQL: SELECT …]", OSError("server closed\nDETAIL: x")), "server closed"),
    ],
)
def test_first_line(exc: BaseException, line: str) -> None:
    assert first_line(exc) == line
