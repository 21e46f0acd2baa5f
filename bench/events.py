"""Events benchmark: events per second through the in-process bus and through
RabbitMQ (txamqp), published in batches as the outbox relay does and consumed
with acknowledgements; then the latency from an upload's completion (its 201
at the client) to its transcode starting (``transcode.started`` on the
owner's /events stream), through a real uploadd on each bus.

    .venv/bin/python bench/events.py [--events 20000] [--uploads 100]

Starts a private RabbitMQ (Debian's rabbitmq-server) on loopback. Writes the
events section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import HERE, machine, percentile, server, uploadd, write_section

sys.path.insert(0, str(HERE.parent))

from twisted.internet.interfaces import IReactorTime

from tests.integration.broker import Broker, free_port
from tests.integration.daemon import EventStream
from uploadd.events.amqp import AmqpAddress, AmqpBus
from uploadd.events.bus import IEventBus, InProcessBus
from uploadd.store.interface import Event

BATCH = 200


async def measure(reactor: IReactorTime, bus: IEventBus, count: int) -> float:
    """Seconds from the first publish until every event was handled."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    done: Deferred[None] = Deferred()
    seen = [0]

    async def handle(event: Event) -> None:
        seen[0] += 1
        if seen[0] == count and not done.called:
            done.callback(None)

    bus.subscribe("bench", "file.*", handle)
    await deferLater(reactor, 1.0)  # let the consumer attach
    started = time.monotonic()
    for first in range(0, count, BATCH):
        batch = [
            Event("file.stored", {"n": n}, 1, 0.0, n + 1)
            for n in range(first, min(count, first + BATCH))
        ]
        await bus.publish_many(batch)
    await done
    return time.monotonic() - started


def run(count: int) -> dict[str, float]:
    from twisted.internet import defer, task

    results: dict[str, float] = {}

    async def main(running: Any) -> None:
        results["in-process"] = count / await measure(
            running, InProcessBus(running), count
        )
        with tempfile.TemporaryDirectory() as root:
            broker = Broker(Path(root), free_port(), free_port())
            broker.start()
            try:
                bus = AmqpBus(running, AmqpAddress.parse(broker.url), prefetch=200)
                bus.start()
                from twisted.internet.task import deferLater

                while bus._publisher is None:
                    await deferLater(running, 0.1)
                results["rabbitmq"] = count / await measure(running, bus, count)
                bus.stop()
            finally:
                broker.stop()
                broker.stop_epmd()

    try:
        task.react(lambda running: defer.ensureDeferred(main(running)))
    except SystemExit as stopped:
        # react ends the process; here it only ends the reactor.
        if stopped.code:
            raise
    return results


class Started:
    """When each file's transcode started, from an /events stream."""

    def __init__(self, port: int, token: str) -> None:
        self.at: dict[str, float] = {}
        self.done: dict[str, threading.Event] = {}
        self._stream = EventStream(port, token)
        threading.Thread(target=self._read, daemon=True).start()

    def waiter(self, file_id: str) -> threading.Event:
        return self.done.setdefault(file_id, threading.Event())

    def _read(self) -> None:
        for topic, data, arrived in self._stream.messages(float("inf")):
            if topic == "transcode.started":
                self.at.setdefault(data["file_id"], arrived)
            elif topic in ("transcode.done", "transcode.failed"):
                self.waiter(data["file_id"]).set()

    def close(self) -> None:
        self._stream.close()


def latencies(work: Path, uploads: int, sound: bytes, *options: str) -> list[float]:
    """Seconds from each upload's 201 to its transcode.started, one at a time."""
    command, port_file, env, token = uploadd(work)
    bearer = token()
    found = []
    with server([*command, *options], port_file, env) as (port, _):
        started = Started(port, bearer)
        time.sleep(0.5)
        for n in range(uploads):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/files/tone-{n}.mp3",
                data=sound,
                method="PUT",
                headers={
                    "Authorization": f"Bearer {bearer}",
                    "Content-Type": "audio/mpeg",
                },
            )
            with urllib.request.urlopen(request) as response:
                file_id = json.loads(response.read())["id"]
                stored = time.monotonic()
            if not started.waiter(file_id).wait(60):
                raise RuntimeError(f"no transcode of {file_id} within 60 s")
            found.append(started.at[file_id] - stored)
        started.close()
    return found


def transcode_latency(uploads: int) -> dict[str, list[float]]:
    results = {}
    with tempfile.TemporaryDirectory() as root:
        sound = Path(root) / "tone.mp3"
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
             "sine=frequency=440:duration=0.5", "-b:a", "64k", str(sound)],
            check=True,
        )  # fmt: skip
        body = sound.read_bytes()
        (Path(root) / "in-process").mkdir()
        results["in-process"] = latencies(Path(root) / "in-process", uploads, body)
        broker = Broker(Path(root) / "rabbitmq", free_port(), free_port())
        broker.start()
        try:
            (Path(root) / "rabbitmq-run").mkdir()
            results["rabbitmq"] = latencies(
                Path(root) / "rabbitmq-run", uploads, body, f"--amqp-url={broker.url}"
            )
        finally:
            broker.stop()
            broker.stop_epmd()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    waits = transcode_latency(args.uploads)
    rates = run(args.events)
    rows = [
        f"| {bus} | {1000 * percentile(found, 0.5):.0f} ms"
        f" | {1000 * percentile(found, 0.99):.0f} ms | under 250 ms |"
        for bus, found in waits.items()
    ]
    section = "\n".join(
        [
            "## Events: through the bus",
            "",
            "Command: `.venv/bin/python bench/events.py"
            f" --events {args.events} --uploads {args.uploads}`",
            "",
            f"Machine: {machine()}; publisher and consumer in one process; RabbitMQ "
            "private on loopback; batches of 200 per broker transaction, every "
            "message acknowledged.",
            "",
            "| bus | events/s | target |",
            "|---|---|---|",
            f"| in-process | {rates['in-process']:.0f} | |",
            f"| RabbitMQ (txamqp) | {rates['rabbitmq']:.0f} | 2,000 or better |",
            "",
            f"Upload completion to transcode start: {args.uploads} MP3s of 0.5 s "
            "uploaded one after another to a real uploadd (each after the last "
            "one's transcode finished), timed from the client's 201 to "
            "`transcode.started` arriving on its /events stream; the transcode "
            "worker runs inside uploadd, on the in-process bus or consuming from "
            "RabbitMQ.",
            "",
            "| bus | p50 | p99 | target p99 |",
            "|---|---|---|---|",
            *rows,
            "",
            "On RabbitMQ the path holds two broker transactions (file.stored to "
            "the worker, then transcode.started to the stream), each of "
            "persistent messages the broker writes to its disk before "
            "delivering them.",
            "",
        ]
    )
    write_section(Path(args.output), "## Events", section)
    print(section)


if __name__ == "__main__":
    main()
