"""The kernel's floor under fan-out: CPU per 150-byte TCP send over loopback, no framework.

One process writes a frame to each of N connections every 10 ms (like 100 events/s) with a
plain ``socket.send``; a child process reads them. What this costs per send is the least any
server in any language pays per WebSocket delivery on this host.

    python benchmarks/tcp_floor.py [connections] [rounds]
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import sys
import time


def main(n: int, rounds: int) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    port = server.getsockname()[1]
    frame = b"x" * 150
    child = os.fork()
    if child == 0:
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        selector = selectors.EpollSelector()
        for s in socks:
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
        got, need = 0, n * rounds * len(frame)
        while got < need:
            for key, _ in selector.select():
                got += len(key.fileobj.recv(65536))  # type: ignore[union-attr]
        os._exit(0)
    conns = [server.accept()[0] for _ in range(n)]
    for c in conns:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.setblocking(False)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(rounds):
        for c in conns:
            c.send(frame)
        time.sleep(0.01)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(child, 0)
    sends = n * rounds
    user = (after.ru_utime - before.ru_utime) / sends * 1e6
    system = (after.ru_stime - before.ru_stime) / sends * 1e6
    print(f"{sends} sends: user {user:.2f} µs + system {system:.2f} µs per send")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 200,
    )
