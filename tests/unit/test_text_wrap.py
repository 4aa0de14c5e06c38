"""`output.text.wrap`: lines broken at spaces and, in a word longer than a line (a URL, a
path), after its separators; never a character lost."""

from __future__ import annotations

from saathii_ops.output.text import longest_piece, wrap

URL = "postgresql+psycopg2://ops@db.internal:5432/saathii_production"


def test_words_that_fit_are_wrapped_at_spaces() -> None:
    assert wrap("billing is behind because coins-deduct is paused", 20) == [
        "billing is behind",
        "because coins-deduct",
        "is paused",
    ]


def test_a_url_longer_than_the_line_breaks_after_its_separators() -> None:
    assert wrap(f"{URL} (from --database-url)", 30) == [
        "postgresql+psycopg2://ops@",
        "db.internal:5432/",
        "saathii_production (from",
        "--database-url)",
    ]
    assert longest_piece(URL) == len("postgresql+psycopg2:")


def test_a_piece_longer_than_the_line_is_left_whole() -> None:
    assert wrap("/tmp/a-very-long-directory-name/x.db", 12) == [
        "/tmp/",
        "a-very-long-directory-name/",
        "x.db",
    ]
    assert wrap("", 10) == []
