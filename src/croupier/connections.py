"""What the layers above the connection core see of an open client connection.

``Gateway.connections`` holds every open client connection of this node as an
:class:`OpenConnection`. The connection core (:class:`croupier.transports.connection.Connection`)
adds each connection when it opens and removes it when it is gone; the gateway's metrics, the
routes (admin, Centrifugo's and Pusher's server APIs), the node statistics and the shutdown
read and end connections only through these members, never a transport's own attributes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from .config import PusherApp
from .core.channels import Claims

__all__ = ["OpenConnection"]


class OpenConnection(Protocol):
    """One open client connection, whatever its protocol and transport."""

    @property
    def client(self) -> str:
        """Its client id (random, so unique across nodes)."""
        ...

    @property
    def claims(self) -> Claims | None:
        """The verified token of its player (the latest, after a refresh); ``None``: an
        anonymous connection (a public stream, a Pusher client)."""
        ...

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header its browser sent when it connected, if any."""
        ...

    @property
    def channels(self) -> Collection[str]:
        """The channels it is subscribed (or subscribing) to."""
        ...

    def belongs_to(self, app: PusherApp, user_id: str) -> bool:
        """Whether it is a connection of the Pusher app ``app``'s user ``user_id`` (signed
        in, or a presence member): what Pusher's ``terminate_connections`` ends. Only a
        connection speaking Pusher's protocol to that app answers yes."""
        ...

    def info(self) -> dict[str, Any]:
        """It as an operator sees it, JSON-ready (the connection inspector's row): ``id``,
        ``transport``, ``protocol``, ``player``, ``subscriptions``, ``closed`` …"""
        ...

    def disconnect(self, reason: str, reconnect: bool = True) -> None:
        """Tell the client why (after what is queued to it), close, and stop sending to it.

        ``reason`` is neutral (``shutdown``, ``operator``, ``terminated`` …); its protocol
        says how the client sees it. Nothing happens if it is closed already.
        """
        ...
