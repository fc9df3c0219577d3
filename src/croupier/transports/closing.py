"""How a server-initiated close ends a socket, the same way for every transport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["CLOSE_GRACE", "Closer", "finish"]

#: How a transport ends a connection: write ``last`` (the codec's disconnect message, may be
#: empty) and its close (a WebSocket close frame with ``code`` and ``reason``), then close
#: the socket once the peer has had the chance to read it.
Closer = Callable[[asyncio.Transport, bytes, int, str], None]

# How long a closing socket may take to flush its queue and hear the client close before it
# is cut: long enough for a healthy client, short enough that a hostile one costs little.
CLOSE_GRACE = 2.0


def finish(transport: asyncio.Transport, last: bytes) -> None:
    """Write ``last`` after what is queued, shut the write side, and let the client go.

    The write side is shut once the queue is flushed; what the client still sends is read
    and dropped until it closes its side (or the grace runs out). Closing a socket with
    unread input would make the kernel reset the connection and throw away the replies
    still queued, so the client would never learn why it was closed.
    """
    if last:
        transport.write(last)
    with contextlib.suppress(RuntimeError):  # reading may be paused behind a slow subscribe
        transport.resume_reading()
    if transport.can_write_eof():
        transport.write_eof()
    else:  # pragma: no cover - every stream transport here can
        transport.close()
    asyncio.get_running_loop().call_later(CLOSE_GRACE, transport.abort)
