"""Real daemons with ``--log-format=json``: every line of their logs is one
JSON object, and a node that keeps failing is not a line per ping."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import free_port
from tests.integration.daemon import eventually, start
from tests.integration.test_noded import start_node

pytestmark = pytest.mark.integration

KEYS = ("time", "level", "namespace", "message")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log at ``path``, each of which must be a JSON object
    with time, level, namespace and message as strings."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name} line {number}: {line}") from None
        assert isinstance(record, dict), line
        assert all(isinstance(record.get(key), str) for key in KEYS), line
        records.append(record)
    return records


def test_daemons_write_only_json_lines_and_failing_nodes_sparingly(
    tmp_path: Path,
) -> None:
    """uploadd and noded with --log-format=json write nothing but JSON lines,
    from start to stop. uploadd pings a node that refuses its secret and a
    port nobody listens on every 0.2 s for 6 s (60 failed pings): each is
    logged DOWN with its reason as a field, then reminded of a few times, and
    no connection attempt adds a line of its own (it was 6 a ping)."""
    node = start_node(tmp_path / "node", "n1", options=("--log-format=json",))
    nobody = free_port()
    try:
        daemon = start(
            tmp_path / "uploadd",
            "--log-format=json",
            f"--cluster-nodes=wrongkey=127.0.0.1:{node.ports['amp']},"
            f"nobody=127.0.0.1:{nobody}",
            "--cluster-ping-interval=200ms",
            "--cluster-ping-timeout=150ms",
        )
        try:
            started = time.monotonic()
            assert daemon.request("GET", "/health")[0] == 200
            log = daemon.data_dir / "twistd.log"
            eventually(
                lambda: (
                    sum("DOWN after" in line for line in log.read_text().split("\n"))
                    >= 2
                ),
                what="both nodes logged DOWN",
            )
            time.sleep(max(0.0, 6 - (time.monotonic() - started)))
        finally:
            daemon.stop()
    finally:
        node.stop()

    records = json_lines(daemon.data_dir / "twistd.log")
    assert records[-1]["message"] == "Server Shut Down."
    down = {
        r["node_id"]: r
        for r in records
        if r["message"].startswith("node ") and "DOWN after" in r["message"]
    }
    assert down["wrongkey"]["error"] == "wrong cluster secret"
    assert down["wrongkey"]["level"] == "warn"
    assert "refused" in down["nobody"]["error"]
    reminders = [r for r in records if "is still down" in r["message"]]
    assert 2 <= len(reminders) <= 12
    per_connection = ("twisted.internet.endpoints", "twisted.protocols.amp")
    assert not [r for r in records if r["namespace"].startswith(per_connection)]
    assert len(records) < 50, [r["message"] for r in records]

    node_records = json_lines(node.data_dir / "twistd.log")
    assert any(
        r["namespace"] == "noded.service" and r.get("node_id") == "n1"
        for r in node_records
    )
    assert node_records[-1]["message"] == "Server Shut Down."
