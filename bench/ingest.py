"""Ingest benchmark: one large upload into uploadd, a raw socket-to-disk sink, a
plain receive-hash-write loop and a naive twisted.web resource, on this
machine, in one run, in two modes.

Every server gets the same client (a blocking socket sending a generated body
with a Content-Length). In the durable mode every server fsyncs before it
answers; in the page-cache mode none does (uploadd with ``[storage] fsync =
false``), which takes the disk's flush out of the figures. Rounds are
interleaved so drift in the machine hits all servers alike; the median of the
rounds is reported. Beside the wall-clock rate each row has the server's CPU
time per GiB (user + system of all its threads, from /proc), which holds
still when the machine is noisy, and its peak memory (VmHWM).

    .venv/bin/python bench/ingest.py [--size 1G] [--rounds 3]

Writes bench/RESULTS.md (the ingest section).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TypeAlias

import attrs
from common import (
    HERE,
    MIB,
    costed,
    machine,
    parse_size,
    peak_kib,
    running_uploadd,
    server,
    work_dir,
    write_section,
)

#: A running server: its port, pid, the path to PUT to and a bearer token.
Running: TypeAlias = tuple[int, int, str, str | None]
Start: TypeAlias = Callable[[Path], AbstractContextManager[Running]]


def upload(port: int, size: int, path: str, token: str | None) -> float:
    """Send ``size`` bytes; seconds from the first byte to the full response."""
    block = bytearray(os.urandom(MIB))
    head = [f"PUT {path} HTTP/1.1", "Host: bench", f"Content-Length: {size}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for offset in range(0, size, MIB):
            block[:8] = offset.to_bytes(8, "little")
            sock.sendall(block[: min(MIB, size - offset)])
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - started
    status = reply.split(b" ", 2)[1]
    if status not in (b"200", b"201"):
        raise RuntimeError(f"upload failed: {reply[:200]!r}")
    return elapsed


@attrs.define
class Row:
    """One server in one mode: how to start it and what it does."""

    label: str
    mode: str
    hashes: str
    start: Start
    seconds: list[float] = attrs.field(factory=list)
    cpu: list[float] = attrs.field(factory=list)
    peak: int = 0


def script(name: str, *flags: str) -> Start:
    """A server of bench/ (``name``) taking PORT_FILE OUT_DIR and ``flags``."""

    @contextmanager
    def start(work: Path) -> Iterator[Running]:
        (work / "out").mkdir()
        command = [
            sys.executable,
            str(HERE / name),
            str(work / "port"),
            str(work / "out"),
            *flags,
        ]
        with server(command, work / "port") as (port, pid):
            yield port, pid, "/", None

    return start


def uploadd_with(settings: dict[str, str]) -> Start:
    @contextmanager
    def start(work: Path) -> Iterator[Running]:
        with running_uploadd(work, settings) as (port, pid, token):
            yield port, pid, "/files/bench.bin", token

    return start


def rows() -> list[Row]:
    found = []
    for mode, fsync in (("durable", []), ("page cache", ["--no-fsync"])):
        stored = {"storage-fsync": "true" if not fsync else "false"}
        found += [
            Row(
                "raw socket-to-disk sink (the limit)",
                mode,
                "none",
                script("raw_sink.py", *fsync),
            ),
            Row(
                "plain receive-sha256-write loop",
                mode,
                "sha256",
                script("raw_sink.py", "--hash", *fsync),
            ),
            Row(
                "uploadd `PUT /files/{name}`",
                mode,
                "sha256",
                uploadd_with(stored),
            ),
            Row(
                "uploadd, `[storage] digests = sha256, md5`",
                mode,
                "sha256 + md5",
                uploadd_with({**stored, "storage-digests": "sha256, md5"}),
            ),
        ]
        if mode == "durable":  # it fsyncs the copy it makes of its spool
            found.append(
                Row(
                    "naive twisted.web (reads request.content)",
                    mode,
                    "none",
                    script("naive_twisted.py"),
                )
            )
    return found


def measure(
    row: Row, port: int, pid: int, path: str, token: str | None, size: int
) -> None:
    seconds, cpu = costed(pid, lambda: upload(port, size, path, token), size)
    row.seconds.append(seconds)
    row.cpu.append(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    size = parse_size(args.size)
    work = work_dir()
    table = rows()
    try:
        with ExitStack() as stack:
            running = []
            for number, row in enumerate(table):
                place = work / str(number)
                place.mkdir()
                running.append((row, place, *stack.enter_context(row.start(place))))
            for round_number in range(args.rounds):
                for row, place, port, pid, path, token in running:
                    measure(row, port, pid, path, token, size)
                    shutil.rmtree(place / "uploadd" / "files", ignore_errors=True)
                print(
                    f"round {round_number + 1}: "
                    + "; ".join(
                        f"{row.label} ({row.mode}) {size / row.seconds[-1] / MIB:.0f}"
                        f" MiB/s {row.cpu[-1]:.2f} CPU-s/GiB"
                        for row, *_ in running
                    ),
                    flush=True,
                )
            for row, _, _, pid, _, _ in running:
                row.peak = peak_kib(pid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(table, args, size))


def report(table: list[Row], args: argparse.Namespace, size: int) -> str:
    lines = []
    for mode in ("durable", "page cache"):
        here = [row for row in table if row.mode == mode]
        limit = size / statistics.median(here[0].seconds) / MIB
        floor = statistics.median(here[1].cpu)
        lines += [
            f"### {mode.capitalize()}"
            + (
                ": every server fsyncs before answering"
                if mode == "durable"
                else ": no fsync, the bytes left to the page cache"
            ),
            "",
            "| server | hashes | MiB/s (median) | vs the limit | CPU-s/GiB (median) "
            "| CPU vs the plain loop | peak RSS (VmHWM) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in here:
            rate = size / statistics.median(row.seconds) / MIB
            cpu = statistics.median(row.cpu)
            lines.append(
                f"| {row.label} | {row.hashes} | {rate:.0f} | {rate / limit:.2f}x "
                f"| {cpu:.2f} | {cpu / floor:.2f}x | {row.peak / 1024:.1f} MiB |"
            )
        lines += [
            "",
            "Rounds (MiB/s / CPU-s per GiB): "
            + "; ".join(
                f"{row.label}: "
                + ", ".join(
                    f"{size / t / MIB:.0f}/{c:.2f}"
                    for t, c in zip(row.seconds, row.cpu, strict=True)
                )
                for row in here
            ),
            "",
        ]
    section = "\n".join(
        [
            "## Ingest: one upload of " + args.size,
            "",
            "Command: `.venv/bin/python bench/ingest.py "
            f"--size {args.size} --rounds {args.rounds}`",
            "",
            f"Machine: {machine()}; client and servers on one host over loopback.",
            "",
            *lines,
        ]
    )
    write_section(Path(args.output), "## Ingest", section)
    return section


if __name__ == "__main__":
    main()
