"""The neutral vocabulary between a wire protocol and the connection core. No I/O.

A codec decodes what a client sends into **commands**; the session rules
(:class:`~croupier.core.session.Session`) check them and return **outcomes**: work for the
connection core (``Do*``, :class:`Close`) and **replies** for the codec to encode. None of
these carry a wire format: a reply is encoded by whichever codec serves the connection, so
the same rules speak native JSON, an SSE dialect, Centrifugo's or Pusher's protocol.

Rules:

* Commands and outcomes are frozen, slotted values.
* ``id`` is the client's own message id (``None``: the client gave none); a reply to a
  command carries the command's ``id``.
* ``Since.epoch`` may be ``None``: the client gave an offset without an epoch, which means
  the channel's current epoch (the core reads it before subscribing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import NamespaceRules
from ..events import Event, Position
from .channels import Claims

__all__ = [
    "Auth",
    "Authenticated",
    "Close",
    "Command",
    "Connected",
    "Disconnect",
    "DoHistory",
    "DoPresence",
    "DoPublish",
    "DoRpc",
    "DoSubscribe",
    "DoUnsubscribe",
    "History",
    "HistoryPage",
    "MessageId",
    "Outcome",
    "Ping",
    "Pong",
    "Presence",
    "PresenceMembers",
    "Publish",
    "Published",
    "Refuse",
    "Refused",
    "Reply",
    "Reset",
    "Rpc",
    "RpcResult",
    "Since",
    "Snapshot",
    "Subscribe",
    "Subscribed",
    "Unsubscribe",
    "Unsubscribed",
]

MessageId = int | str | None


# -- commands: what a client asks, decoded by a codec ---------------------------------------


@dataclass(frozen=True, slots=True)
class Since:
    """Where a client says it stands in a channel (``epoch`` None: the current epoch)."""

    offset: int
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe to ``channel``; resume after ``since`` when given.

    ``resume`` says the client asked to resume even when ``since`` is ``None`` (it sent an
    id that cannot be used): it is then told to reload state.
    """

    channel: str
    id: MessageId = None
    since: Since | None = None
    resume: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Publish:
    """A player's event: ``data`` is the JSON the client sent, as bytes."""

    channel: str
    type: str
    data: bytes
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Auth:
    """Authenticate an anonymous connection, or refresh the token of the same player."""

    token: str
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Refuse:
    """A message the codec could not take: answered with this error, counted as one."""

    code: str
    message: str
    id: MessageId = None
    status: int = 400


@dataclass(frozen=True, slots=True)
class Presence:
    """Who is subscribed to ``channel`` (asked by a client that may subscribe to it)."""

    channel: str
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class History:
    """Up to ``limit`` stored events of ``channel``: the oldest kept ones, or those after
    ``since`` (all or nothing); with ``reverse``, the newest first (before ``since``)."""

    channel: str
    id: MessageId = None
    limit: int = 0
    since: Since | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Rpc:
    """A call to the handler a service registered for ``method``; ``data`` is JSON bytes.
    ``id`` ``None``: a one-way message, nothing is answered."""

    method: str
    data: bytes
    id: MessageId = None


Command = Subscribe | Unsubscribe | Publish | Auth | Ping | Refuse | Presence | History | Rpc


# -- replies: what the client is told, encoded by a codec -----------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    client: str
    ping_interval: float
    expires_in: int | None


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A subscription holds.

    ``position`` is where the channel stands (or, after a service's starting point, where
    its snapshot stands); ``since`` is where the replay started when ``recovered``.
    ``presence`` is the channel's count when the namespace keeps presence. ``events`` holds
    the replayed events only for a codec that puts them inside this reply. ``members`` is
    the presence members' info (each with its ``client``), for a codec that lists them
    (see ``Codec.member_list``).
    """

    channel: str
    id: MessageId
    recovered: bool
    position: Position | None
    since: Position | None = None
    presence: int | None = None
    resumed: bool = False  # the client asked to resume (so a failed recovery means reset)
    events: tuple[Event, ...] = ()
    members: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    channel: str
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Published:
    channel: str
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Pong:
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The connection's token is (now) these claims; the core applies the new expiry."""

    claims: Claims
    id: MessageId = None


@dataclass(frozen=True, slots=True)
class Refused:
    """An error answering one message (or a subscription that could not be made)."""

    code: str
    message: str
    id: MessageId = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A service's starting point for a new subscriber: a message in the native JSON shape
    of an unstored event (``{"type","channel","ts","data"}``), sent right after the
    subscribe reply; the events that follow continue it."""

    channel: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Reset:
    """History cannot cover the client's gap: it must reload the channel's state."""

    channel: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The last message before the server closes: why, and whether to come back."""

    reason: str
    reconnect: bool


@dataclass(frozen=True, slots=True)
class PresenceMembers:
    """The answer to :class:`Presence`: each member's info, with its ``client`` id."""

    channel: str
    id: MessageId
    members: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The answer to :class:`History`: the events and where the channel stands."""

    channel: str
    id: MessageId
    events: tuple[Event, ...]
    position: Position


@dataclass(frozen=True, slots=True)
class RpcResult:
    """The answer to :class:`Rpc`: the handler's result as JSON bytes."""

    id: MessageId
    data: bytes


Reply = (
    Connected
    | Subscribed
    | Unsubscribed
    | Published
    | Pong
    | Authenticated
    | Refused
    | Snapshot
    | Reset
    | Disconnect
    | PresenceMembers
    | HistoryPage
    | RpcResult
)


# -- work for the connection core ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoSubscribe:
    """Every check a session can make has passed: join presence, read history, subscribe."""

    channel: str
    rules: NamespaceRules
    since: Since | None
    id: MessageId
    resume: bool = False


@dataclass(frozen=True, slots=True)
class DoUnsubscribe:
    channel: str
    rules: NamespaceRules
    id: MessageId


@dataclass(frozen=True, slots=True)
class DoPublish:
    """A checked player publish; ``payload`` carries the server-set ``from``.

    ``exclude``: a client id the event must not reach live (the sender, for a protocol whose
    clients do not hear their own publishes); see :attr:`Event.exclude`. ``only``: the one
    player it may reach (a private publish rule: the sender); see :attr:`Event.only`.
    """

    channel: str
    rules: NamespaceRules
    type: str
    payload: bytes
    id: MessageId
    exclude: str | None = None
    only: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """End the connection: ``reason`` is neutral (``abuse`` …), the codec maps it."""

    reason: str
    message: str
    reconnect: bool = False


@dataclass(frozen=True, slots=True)
class DoPresence:
    """A checked :class:`Presence`: read the members."""

    channel: str
    id: MessageId


@dataclass(frozen=True, slots=True)
class DoHistory:
    """A checked :class:`History`: read the log."""

    channel: str
    id: MessageId
    limit: int
    since: Since | None
    reverse: bool


@dataclass(frozen=True, slots=True)
class DoRpc:
    """An :class:`Rpc` for the registered handler (answered ``not_available`` without one)."""

    method: str
    data: bytes
    id: MessageId


Outcome = Reply | DoSubscribe | DoUnsubscribe | DoPublish | DoPresence | DoHistory | DoRpc | Close
