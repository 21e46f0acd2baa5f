"""Events benchmark: events per second through the in-process bus and through
RabbitMQ (txamqp), published in batches as the outbox relay does and consumed
with acknowledgements.

    .venv/bin/python bench/events.py [--events 20000]

Starts a private RabbitMQ (Debian's rabbitmq-server) on loopback. Writes the
events section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import HERE, machine, write_section

sys.path.insert(0, str(HERE.parent))

from tests.integration.broker import Broker, free_port
from uploadd.events.amqp import AmqpAddress, AmqpBus
from uploadd.events.bus import InProcessBus
from uploadd.store.interface import Event

BATCH = 200


async def measure(reactor: Any, bus: Any, count: int) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    rates = run(args.events)
    section = "\n".join(
        [
            "## Events: through the bus",
            "",
            f"Command: `.venv/bin/python bench/events.py --events {args.events}`",
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
        ]
    )
    write_section(Path(args.output), "## Events", section)
    print(section)


if __name__ == "__main__":
    main()
