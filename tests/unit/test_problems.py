"""billing.problems.Problem: every kind described, planned by the plan's CASE, and listed in
the docs exactly as the enum says."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from saathii_ops.billing.plan import StoredPlan, plan_query
from saathii_ops.billing.problems import Problem
from saathii_ops.jobs.call_cleanup import end_rules
from saathii_ops.settings import Settings
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOCS = REPO_ROOT / "docs" / "decisions.md"
TABLE = re.compile(r"<!-- problems:[^\n]*-->\n(.*?)\n *<!-- /problems -->", re.DOTALL)


def test_eleven_kinds_each_with_its_own_description() -> None:
    assert len(Problem) == 11
    descriptions = [kind.description for kind in Problem]
    assert all(descriptions)
    assert len(set(descriptions)) == len(descriptions)


def test_every_kind_fits_the_plan_column() -> None:
    length = StoredPlan.problem.type.length
    assert length == 40
    assert all(len(kind.value) <= length for kind in Problem)


def test_a_kind_is_looked_up_by_the_value_the_plan_stores() -> None:
    assert Problem("half_ended") is Problem.HALF_ENDED
    assert Problem.HALF_ENDED == "half_ended"


def test_what_the_report_says_of_a_call() -> None:
    assert Problem.NO_LISTENER.of_call("audio", None) == "no listener_id"
    assert Problem.UNKNOWN_CALL_TYPE.of_call("chat", 7) == "unknown call_type 'chat'"
    assert Problem.UNKNOWN_CALL_TYPE.of_call(None, 7) == "unknown call_type None"
    assert Problem.BAD_BADGE_RATE.of_call("video", 42) == (
        "the listener's listener_badges row has a negative or absurd rate for video calls "
        "(listener 42)"
    )
    assert Problem.HALF_ENDED.of_call("audio", 3) == "end_time is set: half-ended by the app"


def _strings_bound(query: sa.Subquery) -> set[str]:
    compiled = sa.select(query).compile(dialect=postgresql.dialect())
    return {value for value in compiled.params.values() if isinstance(value, str)}


def test_the_plans_case_names_every_kind() -> None:
    settings = Settings()
    for rules in (None, end_rules(NOW, settings)):
        planned = _strings_bound(plan_query(NOW, settings, rules))
        assert {kind.value for kind in Problem} <= planned


def test_the_plan_writes_the_stored_plans_columns() -> None:
    planned = plan_query(NOW, Settings(), None)
    set_by_the_run = {StoredPlan.held_elsewhere.name, StoredPlan.earn_transaction_id.name}
    assert list(planned.c.keys()) == [
        c.name for c in StoredPlan.table.columns if c.name not in set_by_the_run
    ]


def _docs_table() -> str:
    rows = "\n".join(f"  | `{kind.value}` | {kind.description} |" for kind in Problem)
    return f"  | kind | what the report says |\n  |---|---|\n{rows}"


def test_the_docs_list_the_kinds_as_the_enum_does() -> None:
    found = TABLE.search(DOCS.read_text())
    assert found is not None, f"{DOCS} lost its problems table"
    assert found.group(1) == _docs_table(), f"regenerate it:\n{_docs_table()}"
