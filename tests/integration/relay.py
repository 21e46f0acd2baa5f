"""A TCP relay on loopback between clients and one port: it counts the bytes
each way, keeps the start of what each connection sent (its request head),
and can stop passing one direction on after a budget of bytes, as a network
that stalls does, until its connections are dropped."""

from __future__ import annotations

import contextlib
import socket
import threading

import attrs

HEAD = 4096


@attrs.define
class Relay:
    upstream: int = 0
    #: Bytes passed client -> server (up) and back (down) since the last reset.
    up: int = 0
    down: int = 0
    #: Once this many bytes went that way (None: no limit), pass no more.
    up_budget: int | None = None
    down_budget: int | None = None
    heads: list[bytes] = attrs.Factory(list)
    #: Set when a budget is spent.
    stalled: threading.Event = attrs.Factory(threading.Event)
    _listener: socket.socket = attrs.field(init=False)
    _sockets: list[socket.socket] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _dropped: threading.Event = attrs.Factory(threading.Event)

    def __attrs_post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    def reset(self) -> None:
        """Pass everything from now on, counting from zero."""
        with self._lock:
            self.up = self.down = 0
            self.up_budget = self.down_budget = None
            self.heads.clear()
            self.stalled.clear()
            self._dropped.clear()

    def drop(self) -> None:
        """Close every connection, stalled ones too."""
        with self._lock:
            self._dropped.set()
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def close(self) -> None:
        self.drop()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._sockets += [client, server]
                self.heads.append(b"")
                index = len(self.heads) - 1
            threading.Thread(
                target=self._pump, args=(client, server, "up", index), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, "down", None), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, way: str, head: int | None
    ) -> None:
        try:
            while block := source.recv(65536):
                with self._lock:
                    if head is not None and len(self.heads[head]) < HEAD:
                        self.heads[head] = (self.heads[head] + block)[:HEAD]
                    budget = self.up_budget if way == "up" else self.down_budget
                    passed = self.up if way == "up" else self.down
                    if budget is not None and passed + len(block) >= budget:
                        block = block[: budget - passed]
                    if way == "up":
                        self.up += len(block)
                    else:
                        self.down += len(block)
                sink.sendall(block)
                if budget is not None and passed + len(block) >= budget:
                    self.stalled.set()
                    self._dropped.wait()
                    return
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
