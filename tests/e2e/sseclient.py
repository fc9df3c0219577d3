"""Helpers for the SSE end-to-end tests: publishing, and a raw socket reader for exact bytes."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support import API_KEY, ServerProcess, timeout


def write_config(tmp: Path, text: str = "") -> Path:
    """A config file with a short keep-alive (and whatever ``text`` adds)."""
    path = tmp / "croupier.toml"
    if "[limits]" in text:
        path.write_text(text)
    else:
        path.write_text("[limits]\nsse_keepalive = 0.2\n" + text)
    return path


def publish(
    server: ServerProcess,
    channel: str,
    type: str = "t.x",
    data: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {"channel": channel, "type": type, "data": data if data is not None else {}, **fields}
    # Sent compact, so "the data as published" is these exact bytes.
    r = httpx.post(
        server.url + "/api/v1/publish",
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        timeout=timeout(10),
    )
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def publish_batch(server: ServerProcess, events: list[dict[str, Any]]) -> None:
    r = httpx.post(
        server.url + "/api/v1/batch",
        content=orjson.dumps({"events": events}),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        timeout=timeout(30),
    )
    assert r.status_code == 200, r.text


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=timeout(5)).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def wait_for(check: Any, seconds: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout(seconds)
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class RawStream:
    """A GET over a plain socket: the status line, headers and body bytes exactly as sent."""

    def __init__(
        self, server: ServerProcess, path: str, headers: dict[str, str] | None = None
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout(5))
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        self.eof = False
        while b"\r\n\r\n" not in self.raw:
            self._recv(timeout(5))
        head, _, self.body = self.raw.partition(b"\r\n\r\n")
        status, *rest = head.decode().split("\r\n")
        self.status_line = status
        self.status = int(status.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in rest)}

    def _recv(self, wait: float) -> None:
        if self.eof:
            raise AssertionError("the server closed the stream")
        self.sock.settimeout(wait)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return
        if hasattr(self, "body"):
            self.body += chunk
        else:
            self.raw += chunk

    def read_until(self, marker: bytes, seconds: float = 5.0) -> bytes:
        """The body up to and including the first ``marker`` (the rest stays buffered)."""
        deadline = time.monotonic() + timeout(seconds)
        while marker not in self.body:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} in {self.body[-400:]!r}")
            try:
                self._recv(left)
            except TimeoutError:
                continue
            if self.eof and marker not in self.body:
                raise AssertionError(f"closed before {marker!r}: {self.body[-400:]!r}")
        end = self.body.index(marker) + len(marker)
        out, self.body = self.body[:end], self.body[end:]
        return out

    def next_message(self, seconds: float = 5.0) -> bytes:
        """The next block that is neither a keep-alive nor a presence or viewer count."""
        while True:
            block = self.read_until(b"\n\n", seconds)
            if block.startswith((b": keepalive", b": heartbeat")):
                continue
            if b'"presence.count"' in block or b'"viewers.count"' in block:
                continue
            return block

    def read_to_eof(self, seconds: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout(seconds)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the stream did not end: {self.body[-400:]!r}")
            with contextlib.suppress(TimeoutError):
                self._recv(left)
        out, self.body = self.body, b""
        return out

    def messages(self, count: int, seconds: float = 5.0) -> Iterator[bytes]:
        """The next ``count`` blank-line-terminated blocks."""
        for _ in range(count):
            yield self.read_until(b"\n\n", seconds)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def blocks(body: bytes) -> list[bytes]:
    """Split an event-stream body into its messages (without the blank line)."""
    return [b for b in body.split(b"\n\n") if b]


def data_of(block: bytes) -> Any:
    for line in block.split(b"\n"):
        if line.startswith(b"data: "):
            return orjson.loads(line[6:])
    return None


def id_of(block: bytes) -> str | None:
    for line in block.split(b"\n"):
        if line.startswith(b"id: "):
            return line[4:].decode()
    return None
