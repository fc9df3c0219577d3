"""The codec seam: one wire protocol, as the connection core sees it.

A :class:`Codec` turns one client's messages into neutral commands
(:mod:`croupier.core.commands`) and replies into its protocol's bytes; the connection core
(:mod:`croupier.transports.connection`) does everything else. :class:`BaseCodec` holds the
defaults a protocol overrides. See :mod:`croupier.transports.connection` for how to add a
protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..config import NamespaceRules, PusherApp, Settings
from ..core.channels import Claims, check_subscribe
from ..core.commands import Command, Refused, Reply
from ..events import Event
from ..hooks import StartingPoint

__all__ = ["BaseCodec", "Codec"]


class Codec(Protocol):
    """One wire protocol for one connection (a factory makes one per connection).

    Attributes:
        name: the protocol's name (``native``, ``sse``, ``sports`` …), shown by ``info()``.
        wire: the hub wire whose encoder renders this connection's events.
        ping_interval: seconds between heartbeats.
        quiet_client: the client need not send anything (a backend listener): a protocol
            pong counts as activity for the idle rule.
        replay_in_reply: replayed events go inside the subscribe reply
            (:attr:`Subscribed.events <croupier.core.commands.Subscribed.events>`), not as
            events after it.
        on_event: ``None``, or a per-connection look at each event the hub pushes: returns
            the bytes to send (the frame, or the frame with something of this client's in
            front) or ``None`` to skip the event.
        hears_private: a backend listener: it gets the events meant for one player
            (:attr:`Event.only <croupier.events.Event.only>`), which other players never see.
        start: ``None``, or a starting point for this endpoint's new subscribers that
            overrides the gateway's service ones; a ``CroupierError`` refuses the subscribe.
    """

    name: str
    wire: str
    ping_interval: float
    quiet_client: bool
    replay_in_reply: bool
    hears_private: bool
    on_event: Callable[[bytes, Event], bytes | None] | None
    start: StartingPoint | None

    def decode(self, message: bytes | str) -> Sequence[Command | Reply]:
        """Commands from one client message (replies the codec answers by itself pass
        through). Raises ``CroupierError`` for a message it cannot read."""
        ...

    def encode(self, reply: Reply) -> bytes:
        """The wire bytes of ``reply``; ``b""`` sends nothing."""
        ...

    def heartbeat(self) -> bytes:
        """What is sent every ``ping_interval`` (a ping frame, a keep-alive message)."""
        ...

    def close_code(self, reason: str) -> int:
        """The protocol's close code for a neutral reason (``slow_consumer`` …)."""
        ...

    def close_reason(self, reason: str) -> str:
        """The text of the close frame for a neutral reason."""
        ...

    def close_for(self, refusal: Refused) -> tuple[str, bool] | None:
        """For a whole message refused before it was read (no id to answer): the neutral
        reason and reconnect flag to close the connection with, or ``None`` to send the
        refusal as a reply."""
        ...

    def authorize(self, rules: NamespaceRules, channel: str, claims: Claims | None) -> None:
        """The per-subscription check; raises ``CroupierError`` to refuse."""
        ...

    def member(self, claims: Claims | None) -> dict[str, Any] | None:
        """Who the client is in presence; ``None`` keeps it out of presence."""
        ...

    def member_list(self, channel: str) -> int:
        """How many presence members the subscribe reply of ``channel`` lists
        (:attr:`Subscribed.members <croupier.core.commands.Subscribed.members>`); 0: none."""
        ...

    def opening(self) -> Sequence[Command]:
        """Commands run as if the client had sent them first (an endpoint whose URL names
        its channel)."""
        ...

    def belongs_to(self, app: PusherApp, user_id: str) -> bool:
        """Whether the client is the Pusher app ``app``'s user ``user_id`` (what Pusher's
        ``terminate_connections`` ends); only Pusher's codec says yes."""
        ...


class BaseCodec:
    """Defaults for a codec: override what a protocol does differently."""

    name = "base"
    wire = "ws"
    quiet_client = False
    replay_in_reply = False
    hears_private = False
    on_event: Callable[[bytes, Event], bytes | None] | None = None
    start: StartingPoint | None = None

    def __init__(self, settings: Settings) -> None:
        self.ping_interval = settings.limits.ping_interval

    def decode(self, message: bytes | str) -> Sequence[Command | Reply]:
        raise NotImplementedError  # pragma: no cover - every reading codec decodes

    def encode(self, reply: Reply) -> bytes:
        return b""

    def heartbeat(self) -> bytes:
        return b""

    def close_code(self, reason: str) -> int:
        return 1001

    def close_reason(self, reason: str) -> str:
        return reason

    def close_for(self, refusal: Refused) -> tuple[str, bool] | None:
        return None

    def authorize(self, rules: NamespaceRules, channel: str, claims: Claims | None) -> None:
        check_subscribe(rules, channel, claims)

    def member(self, claims: Claims | None) -> dict[str, Any] | None:
        if claims is None:
            return {"id": None}
        info: dict[str, Any] = {"id": claims.sub}
        if claims.name:
            info["name"] = claims.name
        return info

    def member_list(self, channel: str) -> int:
        return 0

    def opening(self) -> Sequence[Command]:
        return ()

    def belongs_to(self, app: PusherApp, user_id: str) -> bool:
        return False
