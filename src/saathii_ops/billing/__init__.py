"""The money core: per-minute coin billing (SPEC §4) and settlement of ended calls (SPEC §5).

One pipeline, lowest first: `money` (rupees and paise), `problems` (the calls billing
cannot bill), `rules` (the SPEC's formulas as SQL), `plan` (the plan's query and
`StoredPlan`, the temporary table a real run applies), `report`, `charging`,
`settlement`, `locking` (PostgreSQL), `conservation`, and `charge`, the service
(`deduct`, `bill_and_settle`, `count_calls`).
"""
