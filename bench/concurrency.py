"""Concurrency benchmark: many uploads into one uploadd at once.

For each level N one client process (asyncio, raw HTTP/1.1) keeps N
``PUT /files/<name>`` uploads in flight, each on its own connection with a
Content-Length and a bearer token, until a fixed, seeded mix of 1, 8 and
64 MiB bodies adding up to ``--total`` (and at least N of them) is sent.
Every body is a slice of one pre-generated buffer, written 256 KiB at a time
with drain() awaited, so the client copies nothing per request. Meanwhile
the client asks ``GET /health`` every 20 ms on a connection of its own, which
shows how long the event loop keeps a small request waiting under load.

Each level gets a fresh uploadd, so its VmHWM (a high-water mark) is that
level's peak. Reported per level: aggregate MiB/s (bytes over wall seconds),
the server's CPU-seconds per GiB (all its threads, from /proc), the client's,
/health p50 and p99, and the server's VmHWM. Every upload must answer 201 and
the server must list as many files as were sent; the run stops otherwise.

    .venv/bin/python bench/concurrency.py [--levels 1,8,64,256] [--total 2G]
        [--fsync false] [--setting ingest-high-water=4M ...]

Writes bench/RESULTS.md (the concurrency section).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
from common import (
    GIB,
    HERE,
    MIB,
    Body,
    add_uploadd_options,
    command_line,
    cpu_seconds,
    machine,
    parse_size,
    peak_kib,
    percentile,
    require_room,
    running_uploadd,
    size_label,
    uploadd_settings,
    work_dir,
    write_section,
)

#: The body sizes and how often each is drawn: by count 16:4:1, so by bytes
#: about 14% : 29% : 57%, a mean of 5.3 MiB (2 GiB is ~380 uploads).
SIZES = (MIB, 8 * MIB, 64 * MIB)
WEIGHTS = (16, 4, 1)
#: Bodies start at different offsets of the buffer, so no two are alike.
SPREAD = 16 * MIB
STEP = 8192
WRITE = 256 * 1024
POLL = 0.020


def plan(total: int, at_least: int, seed: int) -> list[int]:
    """Body sizes drawn from the mix until they add up to ``total`` and
    number ``at_least``: a draw too large for what the total has left (after
    1 MiB for each upload still owed) is cut to the largest size that fits."""
    draw = random.Random(seed)
    sizes: list[int] = []
    sent = 0
    while sent < total or len(sizes) < at_least:
        size = draw.choices(SIZES, WEIGHTS)[0]
        owed = max(0, at_least - len(sizes) - 1) * SIZES[0]
        while size > SIZES[0] and sent + size + owed > total:
            size = SIZES[SIZES.index(size) - 1]
        sizes.append(size)
        sent += size
    # The cut draws gather at the end; spread them through the run.
    draw.shuffle(sizes)
    return sizes


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of one HTTP/1.1 response (interim ones skipped)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        if status >= 200:
            break
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


@attrs.frozen
class Answer:
    status: int
    detail: str
    connect_seconds: float


async def put(port: int, name: str, body: memoryview, token: str) -> Answer:
    """One upload on a new connection; the server's answer, or status 0 and
    the error when none came."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connected = time.monotonic() - started
    head = (
        f"PUT /files/{name} HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Length: {len(body)}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    try:
        writer.write(head.encode())
        for at in range(0, len(body), WRITE):
            writer.write(body[at : at + WRITE])
            await writer.drain()
        status, text = await read_response(reader)
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        # A refusal may come and the connection close before the body is
        # all sent: read what the server said, if it said anything.
        try:
            status, text = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            status, text = 0, repr(error).encode()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Answer(status, text[:300].decode(errors="replace"), connected)


async def poll_health(port: int, stop: asyncio.Event, latencies: list[float]) -> None:
    """``GET /health`` every POLL seconds on one keep-alive connection until
    ``stop``; each answer's milliseconds into ``latencies``."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
    due = loop.time()
    try:
        while not stop.is_set():
            started = time.perf_counter()
            writer.write(request)
            status, _ = await read_response(reader)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"/health answered {status}")
            due = max(due + POLL, loop.time())
            await asyncio.sleep(due - loop.time())
    finally:
        writer.close()


@attrs.frozen
class Level:
    concurrency: int
    sizes: list[int]
    seconds: float
    server_cpu: float
    client_cpu: float
    latencies: list[float]
    answers: list[Answer]
    listed: int
    idle_kib: int
    peak_kib: int

    @property
    def total(self) -> int:
        return sum(self.sizes)

    @property
    def slowest_connect(self) -> float:
        return max(a.connect_seconds for a in self.answers)

    def answered(self) -> str:
        counts = Counter(a.status for a in self.answers)
        return ", ".join(f"{status} x{n}" for status, n in sorted(counts.items()))

    def problems(self) -> list[str]:
        found = [
            f"upload {number}: {answer.status} {answer.detail}"
            for number, answer in enumerate(self.answers)
            if answer.status != 201
        ]
        if self.listed != len(self.sizes):
            found.append(f"{self.listed} files listed, {len(self.sizes)} sent")
        return found


async def load(
    port: int, token: str, sizes: Sequence[int], pool: memoryview, concurrency: int
) -> tuple[float, list[float], list[Answer]]:
    """Send ``sizes`` with ``concurrency`` uploads in flight while /health is
    polled: wall seconds, /health milliseconds, the answers in plan order."""
    answers: list[Answer | None] = [None] * len(sizes)
    jobs: Iterator[tuple[int, int]] = iter(enumerate(sizes))

    async def uploader() -> None:
        # One iterator shared by all: each takes the next upload when free.
        for number, size in jobs:
            start = number * STEP % SPREAD
            answers[number] = await put(
                port, f"c{concurrency}-{number}.bin", pool[start : start + size], token
            )

    latencies: list[float] = []
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health(port, stop, latencies))
    started = time.monotonic()
    await asyncio.gather(*(uploader() for _ in range(concurrency)))
    seconds = time.monotonic() - started
    stop.set()
    await poller
    return seconds, latencies, [a for a in answers if a is not None]


def listed(port: int, token: str) -> int:
    """How many files the server lists for user 'bench'."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/files?page_size=1",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request) as reply:
        return int(json.load(reply)["count"])


def run_level(
    work: Path,
    settings: dict[str, str],
    concurrency: int,
    sizes: list[int],
    pool: memoryview,
) -> Level:
    place = work / f"level-{concurrency}"
    place.mkdir()
    try:
        with running_uploadd(place, settings) as (port, pid, token):
            idle = peak_kib(pid)
            server_before, client_before = cpu_seconds(pid), time.process_time()
            seconds, latencies, answers = asyncio.run(
                load(port, token, sizes, pool, concurrency)
            )
            client_cpu = time.process_time() - client_before
            # Let the server finish recording the last files before reading
            # its CPU time.
            time.sleep(0.3)
            server_cpu = cpu_seconds(pid) - server_before
            peak = peak_kib(pid)
            count = listed(port, token)
            shutil.rmtree(place / "uploadd" / "files", ignore_errors=True)
    finally:
        shutil.rmtree(place, ignore_errors=True)
    gib = sum(sizes) / GIB
    return Level(
        concurrency,
        sizes,
        seconds,
        server_cpu / gib,
        client_cpu / gib,
        latencies,
        answers,
        count,
        idle,
        peak,
    )


def raised(top: int) -> dict[str, str]:
    """The limits a level of ``top`` uploads would meet, raised to twice the
    level. [ingest] max_concurrent_uploads (256 by default) answers 503 to
    one upload more; twice leaves room for a slot a finished upload has not
    yet given back. The listen backlog (Twisted's default 50, set through
    [http] endpoint) refuses nothing, but connections beyond it see their
    SYN dropped and retried a second later, which the wall time would
    count. uploadd limits nothing else per user or per connection: its
    sign-in throttle counts failed passwords, and the bench holds a token."""
    own = {}
    if 2 * top > 256:
        own["ingest-max-concurrent-uploads"] = str(2 * top)
    if 2 * top > 50:
        own["http-endpoint"] = f"tcp:0:interface=127.0.0.1:backlog={2 * top}"
    return own


WHY = {
    "ingest-max-concurrent-uploads": "by default 256 uploads at once, "
    "the next answered 503",
    "http-endpoint": "the listen backlog: with Twisted's 50, some of 256 "
    "connections opened at once had their SYN dropped and waited a second "
    "for its retry",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--total", default="2G", help="bytes sent per level")
    parser.add_argument("--seed", type=int, default=1, help="of the size mix")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    add_uploadd_options(parser)
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    total = parse_size(args.total)
    own = raised(max(levels))
    settings = uploadd_settings(args, own)
    plans = {n: plan(total, n, args.seed) for n in levels}
    work = work_dir()
    done = []
    try:
        require_room(
            work, max(map(sum, plans.values())) + GIB, "the largest level plus 1 GiB"
        )
        pool = memoryview(Body().chunk(0, max(SIZES) + SPREAD))
        for concurrency in levels:
            level = run_level(work, settings, concurrency, plans[concurrency], pool)
            done.append(level)
            print(
                f"{concurrency} at once: {len(level.sizes)} uploads, "
                f"{level.total / level.seconds / MIB:.0f} MiB/s, "
                f"{level.server_cpu:.2f} server CPU-s/GiB, /health p99 "
                f"{percentile(level.latencies, 0.99):.1f} ms, answers "
                f"{level.answered()}, slowest connect "
                f"{level.slowest_connect * 1000:.0f} ms",
                flush=True,
            )
            for problem in level.problems()[:10]:
                print("  " + problem, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = report(done, args, settings, own)
    print(section)
    problems = [p for level in done for p in level.problems()]
    if problems:
        raise SystemExit(
            f"{len(problems)} problems (above); {args.output} left as it was"
        )
    write_section(Path(args.output), "## Concurrency", section)


def report(
    done: list[Level],
    args: argparse.Namespace,
    settings: dict[str, str],
    own: dict[str, str],
) -> str:
    given = dict(args.setting)
    mix = " : ".join(size_label(s) for s in SIZES)
    rows = [
        "| uploads at once | uploads | bytes | answers | seconds | MiB/s "
        "| server CPU-s/GiB | client CPU-s/GiB | /health p50 | /health p99 "
        "| slowest connect | server VmHWM (idle) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in done:
        rows.append(
            f"| {level.concurrency} | {len(level.sizes)} "
            f"| {level.total / MIB:.0f} MiB | {level.answered()} "
            f"| {level.seconds:.1f} | {level.total / level.seconds / MIB:.0f} "
            f"| {level.server_cpu:.2f} | {level.client_cpu:.2f} "
            f"| {percentile(level.latencies, 0.5):.1f} ms "
            f"| {percentile(level.latencies, 0.99):.1f} ms "
            f"| {level.slowest_connect * 1000:.0f} ms "
            f"| {level.peak_kib / 1024:.1f} MiB ({level.idle_kib / 1024:.1f}) |"
        )
    raised_text = "; ".join(
        f"`--{k}={v}` ({WHY[k]})" for k, v in own.items() if k not in given
    )
    return "\n".join(
        [
            "## Concurrency: many uploads at once",
            "",
            f"Command: `{command_line()}`",
            "",
            f"Machine: {machine()}; client and server on one host over loopback.",
            "",
            f"One asyncio client keeps N `PUT /files/<name>` uploads in flight, "
            f"one connection each, bodies drawn from a seeded mix of {mix} "
            f"(by count {':'.join(map(str, WEIGHTS))}) adding up to {args.total} "
            "per level and at least N of them, written 256 KiB at a time; it "
            "polls `GET /health` every 20 ms on a connection of its own. A fresh "
            f"uploadd per level, `[storage] fsync = {settings['storage-fsync']}`"
            + (
                f", limits raised for the most uploads at once: {raised_text}"
                if raised_text
                else ""
            )
            + (
                ", and "
                + ", ".join(f"`--{k}={v}`" for k, v in given.items())
                + " as given"
                if given
                else ""
            )
            + ". Every upload answered 201 and the server listed every file.",
            "",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    main()
