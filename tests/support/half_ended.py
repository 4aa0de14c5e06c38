"""A half-ended call: the app's end-call with the reason 'ongoing' sets end_time and pays
the listener in coins but leaves the status 'ongoing'; ending it again pays a second time.
The app's writes are plain SQL here, as the app sends them."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from tests.factories import T0, add_call, add_user

NOW = T0 + timedelta(hours=1)
HALF_ENDED_AT = NOW - timedelta(minutes=1)
ENDED_AGAIN_AT = NOW + timedelta(seconds=30)
LATER = NOW + timedelta(minutes=1)


def app_ends_call(engine: Engine, call_id: int, *, reason: str, at: datetime, coins: int) -> None:
    """The app's end-call: the call's row (no status guard), then the listener's 'earn'
    row in coins and the same change to their balance (separate statements)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE user_calls SET end_time = :at, status = :reason, "
                "listener_money_earned = :coins, duration_seconds = 540, duration_minutes = 9 "
                "WHERE call_id = :call_id"
            ),
            {"at": at, "reason": reason, "coins": coins, "call_id": call_id},
        )
    with engine.begin() as conn:
        listener = conn.execute(
            sa.text("SELECT listener_id FROM user_calls WHERE call_id = :c"), {"c": call_id}
        ).scalar_one()
        conn.execute(
            sa.text(
                "UPDATE user_wallets SET balance_coins = balance_coins + :n WHERE user_id = :u"
            ),
            {"n": coins, "u": listener},
        )
        wallet = conn.execute(
            sa.text("SELECT wallet_id FROM user_wallets WHERE user_id = :u"), {"u": listener}
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change) "
                "VALUES (:w, 'earn', :n, 0)"
            ),
            {"w": wallet, "n": coins},
        )


def half_ended_call(engine: Engine) -> dict[str, int]:
    """A call 10 minutes in, 100 coins spent; the app half-ends it, paying 10 coins."""
    with transaction(engine) as s:
        caller = add_user(s, balance=500, online=True, last_seen=NOW)
        listener = add_user(s, role="listener", balance=0, online=True, last_seen=NOW)
        call = add_call(s, caller, listener, start=NOW - timedelta(minutes=10), coins_spent=100)
        s.commit()
    app_ends_call(engine, call, reason="ongoing", at=HALF_ENDED_AT, coins=10)
    return {"caller": caller, "listener": listener, "call": call}
