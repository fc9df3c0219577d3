"""What the Pusher-compatibility tests drive: a backend that signs subscriptions with the
``pusher`` SDK from PyPI (as a Laravel or Node backend's auth endpoint does) and serves the
test pages, and pusher-js running under Node.

The npm packages are the ones of ``tests/e2e/js/pusher/package-lock.json`` (``make js``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pusher

from tests import support
from tests.support import ServerProcess, timeout

from .browser import Pages

JS = Path(__file__).parent / "js" / "pusher"
APP_ID, KEY, SECRET = "4242", "app-key", "app-secret"
CONFIG = f"""
[[pusher.apps]]
id = "{APP_ID}"
key = "{KEY}"
secret = "{SECRET}"
client_event_rate = 5
[[pusher.apps.channels]]
prefix = "private-tournament-"
namespace = "tournament"
"""
# A user whose backend signs with a secret that is not the app's: the server must refuse.
MALLORY = "mallory"


def node_or_skip() -> str:
    return support.node_or_skip(JS, "pusher-js", "the Pusher tests")


def sdk(server: ServerProcess | None = None, secret: str = SECRET) -> pusher.Pusher:
    """The PyPI server SDK for the test app (talking to ``server`` when given)."""
    where: dict[str, Any] = {}
    if server is not None:
        where = {"host": "127.0.0.1", "port": server.port, "ssl": False}
    return pusher.Pusher(app_id=APP_ID, key=KEY, secret=secret, **where)


class Backend(Pages):
    """A casino backend on loopback: its channel auth endpoint (``/broadcasting/auth``, the
    path Laravel uses) and static pages, including the npm packages' browser builds.

    Who the user is comes from the ``user`` form field (a page's session, in real life).
    Channels with ``forbidden`` in their name are refused with 403, as a backend refuses a
    user who may not read them.
    """

    headers = {"Access-Control-Allow-Origin": "*"}

    def __init__(self) -> None:
        super().__init__()
        self.signed: list[str] = []

    def get(self, path: str) -> tuple[int, str, bytes] | None:
        if path.startswith("/node_modules/") and ".." not in path and path not in self.pages:
            file = JS / path.lstrip("/")
            return (200, "text/javascript", file.read_bytes()) if file.is_file() else None
        return super().get(path)

    def post(self, path: str, body: bytes) -> tuple[int, str, bytes] | None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        status, doc = self.authorize(form)
        return status, "application/json", json.dumps(doc).encode()

    @property
    def auth_url(self) -> str:
        return self.origin + "/broadcasting/auth"

    def authorize(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        channel, socket_id, user = form["channel_name"], form["socket_id"], form.get("user", "")
        if "forbidden" in channel:
            return 403, {"message": "not yours"}
        signer = sdk(secret="not-the-app-secret" if user == MALLORY else SECRET)
        member = None
        if channel.startswith("presence-"):
            member = {"user_id": user, "user_info": {"name": user.title()}}
        self.signed.append(channel)
        return 200, signer.authenticate(channel=channel, socket_id=socket_id, custom_data=member)


class NodeClient:
    """pusher-js under Node (``js/pusher/client.js``): commands in, reports out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.reports: list[dict[str, Any]] = []
        self.socket_id = ""

    async def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def next(
        self, match: Callable[[dict[str, Any]], bool], seconds: float = 10.0
    ) -> dict[str, Any]:
        """The first report (seen before or arriving later) that ``match`` accepts."""
        for doc in self.reports:
            if match(doc):
                self.reports.remove(doc)
                return doc
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout(seconds)):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"pusher-js exited; unmatched reports: {self.reports}")
                doc = json.loads(line)
                if match(doc):
                    return doc
                self.reports.append(doc)

    async def event(self, channel: str, event: str, seconds: float = 10.0) -> dict[str, Any]:
        """The next ``event`` on ``channel``."""
        return await self.next(
            lambda d: d["kind"] == "event" and d["channel"] == channel and d["event"] == event,
            seconds,
        )

    async def subscribe(self, channel: str) -> dict[str, Any]:
        await self.send(op="subscribe", channel=channel)
        return await self.event(channel, "pusher:subscription_succeeded")

    def seen(self, channel: str, event: str) -> bool:
        return any(
            d["kind"] == "event" and d["channel"] == channel and d["event"] == event
            for d in self.reports
        )


@asynccontextmanager
async def pusher_js(
    server: ServerProcess, backend: Backend, user: str = "ann"
) -> AsyncIterator[NodeClient]:
    """A connected pusher-js client of ``server`` for ``user``."""
    node = node_or_skip()
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS / "client.js"),
        "127.0.0.1",
        str(server.port),
        KEY,
        backend.auth_url,
        user,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=JS,
    )
    client = NodeClient(process)
    try:
        connected = await client.next(lambda d: d["kind"] == "connected")
        client.socket_id = connected["socket_id"]
        yield client
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
