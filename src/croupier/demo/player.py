"""The casino backend of the player the console's notification centre shows (``1001/p1``):
notifications, coins earned and redeemed, and wallet balance changes every few seconds."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal
from typing import Any

from .backend import BRAND, Backend, HttpError

__all__ = ["PLAYER", "run_player"]

PLAYER = "p1"
NOTIFICATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("bonus_granted", {"bonus_amount": 20, "bonus_type": "reload", "currency": "EUR"}),
    ("deposit_success", {"amount": 50, "currency": "EUR", "method": "card"}),
    ("promotion_available", {"promotion": "Weekend free spins", "spins": 25}),
    ("withdrawal_approved", {"amount": 120, "currency": "EUR"}),
    ("tournament_update", {"message": "A new Demo Cup opens in a minute"}),
    ("limit_reminder", {"limit": "daily deposit", "used_percent": 80}),
)
BETS = ("bet", "bet", "win", "bet", "deposit")


async def run_player(backend: Backend, rng: random.Random, interval: float = 2.5) -> None:
    """One change for the player every ``interval`` seconds or so, until cancelled."""
    base = f"/api/v1/players/{BRAND}/{PLAYER}"
    wallet = Decimal("250.00")
    step = 0
    while True:
        await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
        step += 1
        kind = step % 3
        if kind == 1:
            event, details = rng.choice(NOTIFICATIONS)
            body = {"message_id": str(uuid.uuid4()), "event": event, "event_details": details}
            await backend.call("POST", base + "/notifications", body)
        elif kind == 2:
            key = uuid.uuid4().hex
            if rng.random() < 0.65:
                amount = rng.randint(20, 150)
                await backend.call("POST", base + "/coins/earn", _coins(amount, key, "daily quest"))
            else:
                try:
                    body = _coins(rng.randint(20, 100), key, "free spins")
                    await backend.call("POST", base + "/coins/redeem", body)
                except HttpError as exc:  # not enough coins yet: earn some instead
                    if exc.code != "insufficient_balance":
                        raise
                    await backend.call("POST", base + "/coins/earn", _coins(200, key, "welcome"))
        else:
            reason = rng.choice(BETS)
            change = Decimal(rng.randint(1, 40) if reason != "bet" else -rng.randint(1, 10))
            if wallet + change < 0:
                change, reason = Decimal(100), "deposit"
            wallet += change
            body = {
                "balance": f"{wallet:.2f}",
                "currency": "EUR",
                "change": f"{change:.2f}",
                "reason": reason,
                "transaction_id": uuid.uuid4().hex,
            }
            await backend.call("POST", base + "/wallet", body)


def _coins(amount: int, key: str, reason: str) -> dict[str, Any]:
    return {"amount": amount, "idempotency_key": key, "reason": reason}
