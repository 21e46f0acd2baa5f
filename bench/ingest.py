"""Ingest benchmark: one large upload into uploadd, a raw socket-to-disk sink and a
naive twisted.web resource, on this machine, in one run.

Every server gets the same client (a blocking socket sending a generated body
with a Content-Length) and writes to the same disk with an fsync at the end.
Rounds are interleaved so drift in the machine hits all servers alike; the
median of the rounds is reported. Peak memory is VmHWM of each server process.

    .venv/bin/python bench/ingest.py [--size 1G] [--rounds 3]

Writes bench/RESULTS.md (the ingest section).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from common import (
    HERE,
    MIB,
    in_rounds,
    machine,
    median_rates,
    parse_size,
    peak_kib,
    server,
    uploadd,
    write_section,
)


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


def clear_uploadd_files(work: Path) -> None:
    shutil.rmtree(work / "uploadd" / "files", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    size = parse_size(args.size)
    work = Path(
        tempfile.mkdtemp(prefix="uploadd-bench-", dir=os.environ.get("BENCH_DIR"))
    )
    env = dict(os.environ)
    times: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    try:
        command, port_file, uenv, token_of = uploadd(work)
        (work / "raw").mkdir()
        (work / "rawhash").mkdir()
        (work / "naive").mkdir()
        with (
            server(
                [
                    sys.executable,
                    str(HERE / "raw_sink.py"),
                    str(work / "raw.port"),
                    str(work / "raw"),
                ],
                work / "raw.port",
                env,
            ) as (raw_port, raw_pid),
            server(
                [
                    sys.executable,
                    str(HERE / "naive_twisted.py"),
                    str(work / "naive.port"),
                    str(work / "naive"),
                ],
                work / "naive.port",
                env,
            ) as (naive_port, naive_pid),
            server(
                [
                    sys.executable,
                    str(HERE / "raw_sink.py"),
                    str(work / "rawhash.port"),
                    str(work / "rawhash"),
                    "--hash",
                ],
                work / "rawhash.port",
                env,
            ) as (hash_port, hash_pid),
            server(command, port_file, uenv) as (uploadd_port, uploadd_pid),
        ):
            token = token_of()
            in_rounds(
                {
                    "raw": lambda: upload(raw_port, size, "/", None),
                    "raw+hash": lambda: upload(hash_port, size, "/", None),
                    "naive": lambda: upload(naive_port, size, "/", None),
                    "uploadd": lambda: upload(
                        uploadd_port, size, "/files/bench.bin", token
                    ),
                },
                args.rounds,
                size,
                times,
                lambda: clear_uploadd_files(work),
            )
            peaks = {
                "raw": peak_kib(raw_pid),
                "raw+hash": peak_kib(hash_pid),
                "naive": peak_kib(naive_pid),
                "uploadd": peak_kib(uploadd_pid),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rate = median_rates(times, size)
    rows = [
        ("raw socket-to-disk sink (the limit)", "raw", "no"),
        (
            "raw sink hashing in its loop (a plain program's floor)",
            "raw+hash",
            "sha256 + md5",
        ),
        ("naive twisted.web (reads request.content)", "naive", "no"),
        ("uploadd `PUT /files/{name}`", "uploadd", "sha256 + md5"),
    ]
    table = [
        "| server | hashes | MiB/s (median) | ratio to the limit | ratio to raw+hash "
        "| peak RSS (VmHWM) |",
        "|---|---|---|---|---|---|",
    ]
    for label, key, hashes in rows:
        table.append(
            f"| {label} | {hashes} | {rate[key]:.0f} | {rate[key] / rate['raw']:.2f}x "
            f"| {rate[key] / rate['raw+hash']:.2f}x | {peaks[key] / 1024:.1f} MiB |"
        )
    section = "\n".join(
        [
            "## Ingest: one upload of " + args.size,
            "",
            "Command: `.venv/bin/python bench/ingest.py "
            f"--size {args.size} --rounds {args.rounds}`",
            "",
            f"Machine: {machine()}; client and servers on one host over loopback; "
            "every server fsyncs before answering.",
            "",
            *table,
            "",
            "Rounds (MiB/s): "
            + "; ".join(
                f"{name} " + ", ".join(f"{size / t / MIB:.0f}" for t in ts)
                for name, ts in times.items()
            ),
            "",
        ]
    )
    write_section(Path(args.output), "## Ingest", section)
    print(section)


if __name__ == "__main__":
    main()
