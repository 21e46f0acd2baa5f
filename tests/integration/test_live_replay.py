"""``GET /events`` with ``Last-Event-ID``: a client that comes back gets
what it missed, in order, then the live events, none twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.daemon import EventStream, start

pytestmark = pytest.mark.integration


def names(stream: EventStream, count: int) -> list[tuple[str, int]]:
    """(filename, event id) of the next ``count`` file.stored events."""
    found: list[tuple[str, int]] = []
    for topic, data, _ in stream.messages(within=10):
        if topic == "file.stored":
            assert stream.last_id is not None
            found.append((data["filename"], stream.last_id))
            if len(found) == count:
                break
    return found


def test_a_stream_that_comes_back_replays_what_it_missed(tmp_path: Path) -> None:
    daemon = start(tmp_path / "uploadd")
    try:
        first = EventStream(daemon.port, daemon.token)
        for name in ("a.txt", "b.txt"):
            assert daemon.request("PUT", f"/files/{name}", b"x")[0] == 201
        seen = names(first, 2)
        assert [name for name, _ in seen] == ["a.txt", "b.txt"]
        first.close()
        for name in ("c.txt", "d.txt"):
            assert daemon.request("PUT", f"/files/{name}", b"x")[0] == 201
        back = EventStream(daemon.port, daemon.token, last_event_id=seen[0][1])
        replayed = names(back, 3)
        assert [name for name, _ in replayed] == ["b.txt", "c.txt", "d.txt"]
        assert replayed[0][1] == seen[1][1]
        assert daemon.request("PUT", "/files/e.txt", b"x")[0] == 201
        live = names(back, 1)
        assert [name for name, _ in live] == ["e.txt"]
        assert live[0][1] > replayed[-1][1]
        back.close()
        # Without Last-Event-ID nothing is replayed.
        fresh = EventStream(daemon.port, daemon.token)
        assert daemon.request("PUT", "/files/f.txt", b"x")[0] == 201
        assert [name for name, _ in names(fresh, 1)] == ["f.txt"]
        fresh.close()
    finally:
        daemon.stop()
