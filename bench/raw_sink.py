"""The physical limit: a blocking socket-to-disk loop with no HTTP framework.

Accepts one connection at a time, reads the request head, then recv_into a
reused buffer and writes straight to a file, fsyncs, and answers 201. No
hashing, unless --hash: then sha256 of every read in the same loop (a plain
program's floor for ingest that must know its file's sha256); --no-fsync
leaves the bytes to the page cache.
Usage: raw_sink.py PORT_FILE OUT_DIR [--hash] [--no-fsync]
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path


def serve(port_file: Path, out_dir: Path, hashing: bool, fsync: bool) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port_file.write_text(str(listener.getsockname()[1]))
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    while True:
        connection, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += connection.recv(65536)
        header, _, rest = head.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        target = out_dir / "raw.out"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, rest)
        sha256 = hashlib.sha256(rest)
        received = len(rest)
        while received < length:
            count = connection.recv_into(buffer)
            if not count:
                break
            if hashing:
                sha256.update(view[:count])
            os.write(fd, view[:count])
            received += count
        if fsync:
            os.fsync(fd)
        os.close(fd)
        target.unlink()
        connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        connection.close()


if __name__ == "__main__":
    flags = sys.argv[3:]
    serve(
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        "--hash" in flags,
        "--no-fsync" not in flags,
    )
