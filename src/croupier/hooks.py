"""What services attach to a gateway: one registry for every kind of hook.

A service registers its hooks when it starts (``gateway.hooks.on_publish(…)``); the gateway
and the connection core call them. Five kinds:

* **publish listeners** see the events each publish through this node stored or sent
  (webhooks, tournaments' own bookkeeping);
* **client-publish handlers** take what players publish of one type in one namespace instead
  of the hub (reactions, summarised rather than fanned out one by one);
* **presence listeners** hear every subscriber join and leave this node records;
* **starting points** say where a new subscriber of a namespace starts and what it is told
  first: the channel's part (a scoreboard snapshot that the replayed events continue),
  shared by a crowd of new subscribers, and a greeting for each subscriber (their own
  position);
* **RPC handlers** answer a client's call of a method (a Centrifugo SDK's ``rpc``, or its
  one-way ``send`` under the method ``""``).

Every hook runs on the event loop on a hot path: it must be quick and must not block. A
listener that raises is logged and the others still run; a client-publish handler's
:class:`~croupier.errors.CroupierError` answers the client.

To react to the events of particular channels rather than to every publish, a service
listens on the hub (:meth:`croupier.hub.Hub.listen`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .core.channels import Claims, namespace_of
from .events import Event, Position

__all__ = [
    "ChannelStart",
    "ClientPublishHandler",
    "Greeting",
    "Hooks",
    "PresenceListener",
    "PublishListener",
    "RpcHandler",
    "Start",
    "StartingPoint",
]

log = logging.getLogger(__name__)

PublishListener = Callable[[list[Event]], None]
"""Called with the events one publish stored or sent (numbered when stored)."""

ClientPublishHandler = Callable[[str, bytes], None]
"""Called with the channel and the checked data (with its server-set ``from``) of what a
player publishes; raising a CroupierError answers the client with that error."""

PresenceListener = Callable[[str, str, dict[str, Any], bool], None]
"""Called with (channel, client, member info, joined) on every presence join and leave,
whatever the namespace's presence rule."""


class Start(msgspec.Struct, frozen=True, gc=False):
    """Where a new subscriber of a channel starts, as a service says.

    ``position``: where its replay starts (``None``: from the channel's own rule);
    ``messages``: sent right after ``subscribed``, in order, each in the native JSON shape of
    an unstored event (a scoreboard snapshot that the replayed events continue, a greeting).
    ``Start()``: nothing special.
    """

    position: Position | None = None
    messages: tuple[bytes, ...] = ()


StartingPoint = Callable[[str, Claims | None], Awaitable[Start]]
"""What the connection core asks of a channel with a starting point, for a subscriber who did
not say where it stands: given the channel and the subscriber's claims (``None``:
anonymous), where it starts and what it is told first."""

ChannelStart = Callable[[str], Awaitable[Start]]
"""A service's part of a channel's starting point that is the same for every subscriber:
one answer serves the crowd of new subscribers arriving while it runs."""

Greeting = Callable[[str, Claims | None], Awaitable[tuple[bytes, ...]]]
"""A service's part for one subscriber (their own position, say): messages sent after the
channel's. It runs for each new subscriber, so it must be a quick lookup."""

RpcHandler = Callable[[Claims | None, Any], Awaitable[Any]]
"""Called with the caller's claims (``None``: anonymous) and the decoded data of a client's
RPC; returns a JSON-serialisable result. Raising a CroupierError answers the client."""


class Hooks:
    """The hooks services attached to one gateway."""

    __slots__ = ("_client_publish", "_presence", "_published", "_rpc", "_starting_points")

    def __init__(self) -> None:
        self._published: list[PublishListener] = []
        self._client_publish: dict[tuple[str, str], ClientPublishHandler] = {}
        self._presence: list[PresenceListener] = []
        self._starting_points: dict[str, tuple[ChannelStart | None, Greeting | None]] = {}
        self._rpc: dict[str, RpcHandler] = {}

    # -- registering (services) ------------------------------------------------------------

    def on_publish(self, listener: PublishListener) -> None:
        """Call ``listener`` with the events each publish through this node stored or sent."""
        self._published.append(listener)

    def handle_client_publish(
        self, namespace: str, type: str, handler: ClientPublishHandler
    ) -> None:
        """Hand what players publish as ``type`` in ``namespace`` to ``handler``, not the hub.

        The connection core still applies every session check (permissions, size,
        per-connection rate) first.
        """
        self._client_publish[(namespace, type)] = handler

    def on_presence(self, listener: PresenceListener) -> None:
        """Call ``listener`` on every subscriber join and leave this node records."""
        self._presence.append(listener)

    def on_fresh_subscribe(
        self,
        namespace: str,
        starting_point: ChannelStart | None = None,
        *,
        greeting: Greeting | None = None,
    ) -> None:
        """Let a service say where new subscribers of ``namespace`` start and what they are
        told first: ``starting_point`` for what every subscriber of a channel gets (see
        :data:`ChannelStart`), ``greeting`` for what one subscriber gets (see
        :data:`Greeting`). Subscribers that resume with a position keep it; the messages are
        their fallback when history cannot cover their gap."""
        self._starting_points[namespace] = (starting_point, greeting)

    def handle_rpc(self, method: str, handler: RpcHandler) -> None:
        """Answer clients' RPCs of ``method`` with ``handler``."""
        self._rpc[method] = handler

    # -- calling (the gateway and the connection core) ------------------------------------

    def published(self, events: list[Event]) -> None:
        """Tell every publish listener about ``events``."""
        for listener in self._published:
            try:
                listener(events)
            except Exception:
                log.exception("a publish listener failed")

    def client_handler(self, channel: str, type: str) -> ClientPublishHandler | None:
        """The handler of players' ``type`` events on ``channel``, if a service took them."""
        if not self._client_publish:
            return None
        return self._client_publish.get((namespace_of(channel), type))

    @property
    def hears_presence(self) -> bool:
        return bool(self._presence)

    def presence(self, channel: str, client: str, info: dict[str, Any], joined: bool) -> None:
        """Tell every presence listener that ``client`` joined (or left) ``channel``."""
        for listener in self._presence:
            try:
                listener(channel, client, info, joined)
            except Exception:
                log.exception("a presence listener failed")

    def starting_point(self, channel: str) -> tuple[ChannelStart | None, Greeting | None] | None:
        """The starting point of new subscribers of ``channel``'s namespace, if any: its
        channel part and its greeting."""
        if not self._starting_points:
            return None
        return self._starting_points.get(namespace_of(channel))

    def rpc_handler(self, method: str) -> RpcHandler | None:
        """The handler of clients' RPCs of ``method``, if a service took them."""
        return self._rpc.get(method)
