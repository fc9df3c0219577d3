"""Gamification coin balances (a ledger per player) and relayed wallet balance updates.

Every change to a player's coins is an entry in their ledger, made under an idempotency key,
and pushed as ``gamification_balance_update`` on ``player:{brand}:{player}``::

    {"balance": 1500, "total_received": 5000, "total_redeemed": 3500}

Rules (:func:`apply`, no I/O):

* ``earn`` adds coins and counts them in ``total_received``.
* ``redeem`` takes coins and counts them in ``total_redeemed``; beyond the balance it is a
  conflict and changes nothing.
* ``adjust`` (an operator's correction, positive or negative) moves the balance only; it may
  not take it below zero.
* ``expire`` takes up to the amount asked, never more than the balance, and moves the
  balance only.
* Amounts are whole coins; no balance or total may pass :data:`MAX_COINS`.
* An idempotency key is per player: a repeat returns the first result (``duplicate: true``);
  the same key with another kind or amount is a conflict.

Changes of one player are serialised: on SQLite by its one-at-a-time transactions, on
PostgreSQL by ``SELECT … FOR UPDATE`` on the player's balance row. Events leave in the order
the changes were made: on PostgreSQL the event is published inside the transaction (still
holding the row), so a failed publish undoes the change; on SQLite, a single node by
construction, right after it under a per-player lock.

Wallet balances belong to the casino backend: it reports a change and Croupier relays it as
``wallet_balance_update`` with the payload as given (its shape validated), storing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any, Self

import msgspec
import orjson
from aiohttp import web

from ..api.openapi import Operation
from ..api.toolkit import int_query, json_response, query, read_body
from ..errors import BadRequest, Conflict, CroupierError, shown
from ..gateway import Gateway, PublishRequest
from ..storage import Database, Row, Transaction
from .players import (
    LIMIT_PARAM,
    PLAYER_PARAMS,
    Player,
    authorize,
    casino_time,
    cursor_param,
    now_ms,
    parse_cursor,
    player_from_path,
)

__all__ = [
    "MAX_COINS",
    "BalancesService",
    "CoinChange",
    "Kind",
    "Totals",
    "WalletUpdate",
    "apply",
]

log = logging.getLogger(__name__)

MAX_COINS = 10**15  # well inside what a JavaScript number holds exactly
COINS_EVENT = "gamification_balance_update"
_CURSOR = re.compile(r"[0-9]{1,15}")  # a ledger page ends at an entry's seq
WALLET_EVENT = "wallet_balance_update"

_MIGRATIONS = [
    [
        "CREATE TABLE croupier_coin_balances ("
        "brand TEXT NOT NULL, player TEXT NOT NULL, balance BIGINT NOT NULL DEFAULT 0, "
        "total_received BIGINT NOT NULL DEFAULT 0, total_redeemed BIGINT NOT NULL DEFAULT 0, "
        "seq BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (brand, player))",
        "CREATE TABLE croupier_coin_ledger ("
        "brand TEXT NOT NULL, player TEXT NOT NULL, seq BIGINT NOT NULL, "
        "idempotency_key TEXT NOT NULL, kind TEXT NOT NULL, requested BIGINT NOT NULL, "
        "amount BIGINT NOT NULL, balance BIGINT NOT NULL, total_received BIGINT NOT NULL, "
        "total_redeemed BIGINT NOT NULL, reason TEXT, created_ms BIGINT NOT NULL, "
        "PRIMARY KEY (brand, player, seq), UNIQUE (brand, player, idempotency_key))",
    ]
]
_ENTRY = (
    "seq, idempotency_key, kind, requested, amount, balance, total_received, total_redeemed, "
    "reason, created_ms"
)


# -- the rules --------------------------------------------------------------------------------


class Kind(enum.StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    ADJUST = "adjust"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Totals:
    """A player's coins: what they hold, and what they received and redeemed in all."""

    balance: int = 0
    total_received: int = 0
    total_redeemed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "balance": self.balance,
            "total_received": self.total_received,
            "total_redeemed": self.total_redeemed,
        }


def apply(totals: Totals, kind: Kind, amount: int) -> tuple[Totals, int]:
    """The totals after ``kind`` of ``amount``, and the signed change to the balance.

    Raises:
        BadRequest: ``amount`` is not positive (for ``adjust``: is zero).
        Conflict: the balance would go below zero (``insufficient_balance``) or a figure
            past :data:`MAX_COINS` (``limit_exceeded``).
    """
    if kind is Kind.ADJUST:
        if amount == 0:
            raise BadRequest("an adjustment must not be zero")
    elif amount <= 0:
        raise BadRequest(f"the amount to {kind} must be positive")
    balance, received, redeemed = totals.balance, totals.total_received, totals.total_redeemed
    if kind is Kind.EARN:
        change, received = amount, received + amount
    elif kind is Kind.REDEEM:
        if amount > balance:
            raise Conflict(
                f"the balance is {balance}; redeeming {amount} would make it negative",
                code="insufficient_balance",
            )
        change, redeemed = -amount, redeemed + amount
    elif kind is Kind.ADJUST:
        if balance + amount < 0:
            raise Conflict(
                f"the balance is {balance}; adjusting by {amount} would make it negative",
                code="insufficient_balance",
            )
        change = amount
    else:
        change = -min(amount, balance)
    after = Totals(balance + change, received, redeemed)
    if max(after.balance, after.total_received, after.total_redeemed) > MAX_COINS:
        raise Conflict(f"coin figures may not pass {MAX_COINS}", code="limit_exceeded")
    return after, change


# -- what comes in and goes out ------------------------------------------------------------

# JSON Schema counts 500.0 as an integer, so the server does too: a whole-number float.
Coins = Annotated[
    float, msgspec.Meta(ge=1, le=MAX_COINS, multiple_of=1, description="Whole coins.")
]
IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="Unique per player and change: a repeat returns the first result.",
        examples=["order-8812-reward"],
    ),
]
Reason = Annotated[str, msgspec.Meta(max_length=256, description="Shown in the ledger.")]


class CoinChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Earn, redeem or expire ``amount`` coins."""

    amount: Coins
    idempotency_key: IdempotencyKey
    reason: Reason | None = None


class CoinAdjustment(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Move the balance by ``amount`` (non-zero, either sign)."""

    amount: Annotated[
        float,
        msgspec.Meta(
            ge=-MAX_COINS,
            le=MAX_COINS,
            multiple_of=1,
            description="Whole coins, not zero.",
            extra_json_schema={"not": {"const": 0}},
        ),
    ]
    idempotency_key: IdempotencyKey
    reason: Reason | None = None


class CoinBalance(msgspec.Struct):
    brand_id: int | str
    player_id: int | str
    balance: int
    total_received: int
    total_redeemed: int


class LedgerEntry(msgspec.Struct):
    seq: Annotated[int, msgspec.Meta(description="1, 2, 3 … per player.")]
    kind: Kind
    amount: Annotated[int, msgspec.Meta(description="The change to the balance, signed.")]
    balance: int
    total_received: int
    total_redeemed: int
    idempotency_key: str
    reason: str | None
    time: Annotated[str, msgspec.Meta(description="UTC, `YYYY-MM-DD HH:MM:SS`.")]


class CoinChanged(msgspec.Struct):
    brand_id: int | str
    player_id: int | str
    entry: LedgerEntry
    duplicate: Annotated[
        bool, msgspec.Meta(description="True when the idempotency key was used before.")
    ]


class LedgerPage(msgspec.Struct):
    """Newest first. ``next_cursor`` is null on the last page."""

    entries: list[LedgerEntry]
    next_cursor: str | None


_MONEY_TEXT = "^-?[0-9]{1,15}(\\.[0-9]{1,8})?$"
Money = (
    Annotated[int, msgspec.Meta(ge=-(10**15), le=10**15)]
    | Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]
    | Annotated[str, msgspec.Meta(max_length=25, pattern=_MONEY_TEXT)]
)


class WalletUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A wallet balance change as the casino backend reports it; relayed as given."""

    balance: Annotated[Money, msgspec.Meta(description="The balance after the change.")]
    currency: Annotated[
        str, msgspec.Meta(pattern="^[A-Z0-9]{3,8}$", description="e.g. `USD`, `EUR`, `USDT`.")
    ]
    change: Money | None = None
    bonus_balance: Money | None = None
    withdrawable_balance: Money | None = None
    reason: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    transaction_id: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=128,
                description="When given, a repeat within 5 minutes is not relayed again.",
            ),
        ]
        | None
    ) = None


class WalletRelayed(msgspec.Struct):
    brand_id: int | str
    player_id: int | str
    duplicate: bool


# -- the service ------------------------------------------------------------------------------


def _entry(row: Row) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "kind": row["kind"],
        "amount": row["amount"],
        "balance": row["balance"],
        "total_received": row["total_received"],
        "total_redeemed": row["total_redeemed"],
        "idempotency_key": row["idempotency_key"],
        "reason": row["reason"],
        "time": casino_time(row["created_ms"]),
    }


class _Turn:
    """A per-player lock, dropped once nobody holds or waits for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class BalancesService:
    """Use as ``async with``: migrates the ledger's tables."""

    def __init__(self, gateway: Gateway, database: Database) -> None:
        self.gateway = gateway
        self.db = database
        self._turns: dict[Player, _Turn] = {}
        # See the module's docstring: where the event is published relative to the commit.
        self._publish_inside = database.dialect == "postgres"

    async def __aenter__(self) -> Self:
        await self.db.migrate("balances", _MIGRATIONS)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @contextlib.asynccontextmanager
    async def _turn(self, who: Player) -> AsyncIterator[None]:
        turn = self._turns.get(who)
        if turn is None:
            turn = self._turns[who] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[who]

    # -- operations ----------------------------------------------------------------------

    async def balance(self, who: Player) -> Totals:
        row = await self.db.fetchrow(
            "SELECT balance, total_received, total_redeemed FROM croupier_coin_balances "
            "WHERE brand = $1 AND player = $2",
            who.brand,
            who.player,
        )
        return Totals() if row is None else Totals(**row)

    async def change(
        self, who: Player, kind: Kind, amount: int, key: str, reason: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Apply one change under ``key``; return the ledger entry and whether it is a repeat.

        Raises:
            BadRequest, Conflict: see :func:`apply`; and ``idempotency_conflict`` when
                ``key`` was used for another kind or amount. Nothing changed.
            Unavailable: the database (or, on PostgreSQL, the log) failed; nothing changed.
        """
        async with self._turn(who):
            async with self.db.transaction() as tx:
                entry, fresh = await self._change(tx, who, kind, amount, key, reason)
                if fresh is not None and self._publish_inside:
                    await self._publish(who, fresh)
            if fresh is not None and not self._publish_inside:
                try:
                    await self._publish(who, fresh)
                except CroupierError as exc:
                    # The change stands; the next one pushes totals that include it.
                    log.warning("coin balance of %s changed but not pushed: %s", who, exc)
        return entry, fresh is None

    async def _change(
        self,
        tx: Transaction,
        who: Player,
        kind: Kind,
        amount: int,
        key: str,
        reason: str | None,
    ) -> tuple[dict[str, Any], Totals | None]:
        await tx.execute(
            "INSERT INTO croupier_coin_balances (brand, player) VALUES ($1, $2) "
            "ON CONFLICT (brand, player) DO NOTHING",
            who.brand,
            who.player,
        )
        row = await tx.fetchrow(
            "SELECT balance, total_received, total_redeemed, seq FROM croupier_coin_balances "
            "WHERE brand = $1 AND player = $2 FOR UPDATE",
            who.brand,
            who.player,
        )
        assert row is not None
        # Looked up after taking the row: two requests with one key are not both new.
        first = await tx.fetchrow(
            f"SELECT {_ENTRY} FROM croupier_coin_ledger "
            "WHERE brand = $1 AND player = $2 AND idempotency_key = $3",
            who.brand,
            who.player,
            key,
        )
        if first is not None:
            if (first["kind"], first["requested"]) != (kind.value, amount):
                raise Conflict(
                    f"idempotency key {shown(key, 80)} was used for {first['kind']} "
                    f"{first['requested']}",
                    code="idempotency_conflict",
                )
            return _entry(first), None
        seq = row.pop("seq") + 1
        after, change = apply(Totals(**row), kind, amount)
        created = now_ms()
        entry_row = {
            "seq": seq,
            "idempotency_key": key,
            "kind": kind.value,
            "requested": amount,
            "amount": change,
            **after.as_dict(),
            "reason": reason,
            "created_ms": created,
        }
        await tx.execute(
            f"INSERT INTO croupier_coin_ledger (brand, player, {_ENTRY}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            who.brand,
            who.player,
            *entry_row.values(),
        )
        await tx.execute(
            "UPDATE croupier_coin_balances SET balance = $3, total_received = $4, "
            "total_redeemed = $5, seq = $6 WHERE brand = $1 AND player = $2",
            who.brand,
            who.player,
            after.balance,
            after.total_received,
            after.total_redeemed,
            seq,
        )
        return _entry(entry_row), after

    async def _publish(self, who: Player, totals: Totals) -> None:
        await self.gateway.publish(
            PublishRequest(who.channel, COINS_EVENT, orjson.dumps(totals.as_dict()))
        )

    async def ledger(self, who: Player, *, limit: int, cursor: str | None) -> dict[str, Any]:
        """One page of ``who``'s ledger, newest first."""
        sql = f"SELECT {_ENTRY} FROM croupier_coin_ledger WHERE brand = $1 AND player = $2"
        args: list[Any] = [who.brand, who.player]
        before = parse_cursor(cursor, _CURSOR)
        if before is not None:
            sql += " AND seq < $3"
            args.append(int(before[0]))
        rows = await self.db.fetch(sql + f" ORDER BY seq DESC LIMIT {limit + 1}", *args)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "entries": [_entry(row) for row in rows],
            "next_cursor": str(rows[-1]["seq"]) if more and rows else None,
        }

    async def relay_wallet(self, who: Player, update: WalletUpdate) -> bool:
        """Publish ``update`` as ``wallet_balance_update``; return whether it was a repeat."""
        key = None if update.transaction_id is None else f"wallet:{update.transaction_id}"
        result = await self.gateway.publish(
            PublishRequest(who.channel, WALLET_EVENT, msgspec.json.encode(update), key)
        )
        return result.duplicate

    # -- HTTP -----------------------------------------------------------------------------

    async def _get_balance(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "read")
        totals = await self.balance(who)
        return json_response({**who.ids(), **totals.as_dict()})

    async def _change_handler(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "publish", players=False)
        kind = Kind(request.path.rsplit("/", 1)[1])
        body: CoinChange | CoinAdjustment = await read_body(
            request, CoinAdjustment if kind is Kind.ADJUST else CoinChange
        )
        entry, duplicate = await self.change(
            who, kind, int(body.amount), body.idempotency_key, body.reason
        )
        return json_response({**who.ids(), "entry": entry, "duplicate": duplicate})

    async def _ledger(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "read")
        limit = int_query(request, "limit", 50, 1, 200)
        return json_response(await self.ledger(who, limit=limit, cursor=query(request, "cursor")))

    async def _wallet(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "publish", players=False)
        update = await read_body(request, WalletUpdate)
        duplicate = await self.relay_wallet(who, update)
        return json_response({**who.ids(), "duplicate": duplicate})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(_COINS, self._get_balance, allow_head=False),
            *(web.post(f"{_COINS}/{kind}", self._change_handler) for kind in Kind),
            web.get(_COINS + "/ledger", self._ledger, allow_head=False),
            web.post(_WALLET, self._wallet),
        ]

    @property
    def operations(self) -> Sequence[Operation]:
        return _OPERATIONS


# -- the OpenAPI document -----------------------------------------------------------------------

_COINS = "/api/v1/players/{brand}/{player}/coins"
_WALLET = "/api/v1/players/{brand}/{player}/wallet"
_WHO = {"brand_id": 1001, "player_id": 12345}
_TOTALS = {"balance": 1500, "total_received": 5000, "total_redeemed": 3500}
_ENTRY_EXAMPLE = {
    "seq": 7,
    "kind": "redeem",
    "amount": -500,
    **_TOTALS,
    "idempotency_key": "shop-order-8812",
    "reason": "free spins",
    "time": "2025-10-22 14:30:45",
}
_SUMMARIES = {
    Kind.EARN: "Give a player coins (counted in total_received)",
    Kind.REDEEM: "Take coins a player spends (409 beyond the balance; counted in total_redeemed)",
    Kind.ADJUST: "Correct a player's balance by a signed amount (never below zero)",
    Kind.EXPIRE: "Remove coins that expired (at most the balance)",
}

_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        _COINS,
        "get_coin_balance",
        "A player's coin balance and lifetime totals (API key or the player's own token)",
        "balances",
        scope="read",
        reply=CoinBalance,
        reply_example={**_WHO, **_TOTALS},
        errors=(400, 401, 403, 503),
        params=PLAYER_PARAMS,
    ),
    *(
        Operation(
            "post",
            f"{_COINS}/{kind}",
            f"{kind}_coins",
            _SUMMARIES[kind],
            "balances",
            scope="publish",
            body=CoinAdjustment if kind is Kind.ADJUST else CoinChange,
            body_example={
                "amount": -200 if kind is Kind.ADJUST else 500,
                "idempotency_key": f"{kind}-8812",
                "reason": "support ticket 41" if kind is Kind.ADJUST else None,
            },
            reply=CoinChanged,
            reply_example={**_WHO, "entry": _ENTRY_EXAMPLE, "duplicate": False},
            errors=(400, 401, 403, 409, 413, 503),
            params=PLAYER_PARAMS,
        )
        for kind in Kind
    ),
    Operation(
        "get",
        _COINS + "/ledger",
        "list_coin_ledger",
        "A player's coin ledger, newest first (API key or the player's own token)",
        "balances",
        scope="read",
        reply=LedgerPage,
        reply_example={"entries": [_ENTRY_EXAMPLE], "next_cursor": None},
        errors=(400, 401, 403, 503),
        params=(
            *PLAYER_PARAMS,
            ("limit", "query", LIMIT_PARAM),
            ("cursor", "query", cursor_param("^[0-9]{1,15}$", "7")),
        ),
    ),
    Operation(
        "post",
        _WALLET,
        "relay_wallet_balance",
        "Relay a wallet balance change to the player as wallet_balance_update",
        "balances",
        scope="publish",
        body=WalletUpdate,
        body_example={
            "balance": "250.00",
            "currency": "USD",
            "change": "-20.00",
            "reason": "bet",
            "transaction_id": "tx-99812",
        },
        reply=WalletRelayed,
        reply_example={**_WHO, "duplicate": False},
        errors=(400, 401, 403, 413, 503),
        params=PLAYER_PARAMS,
    ),
)
