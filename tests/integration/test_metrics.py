"""/metrics of a real uploadd and a real noded after real traffic: a PUT,
a tus upload in two PATCHes, a 404 and a download through the node; then
a transcode that fails and a webhook delivered. Every family has samples,
and the counts are the traffic's."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, eventually, start
from tests.integration.test_noded import SECRET, RunningNode, start_node
from tests.integration.test_webhooks import Receiver
from tests.metrics import families, labelled, value

pytestmark = pytest.mark.integration
TUS = {"Tus-Resumable": "1.0.0"}
BODY = {**TUS, "Content-Type": "application/offset+octet-stream"}
#: noded families only a repair between nodes fills.
RELAYS = {"noded_relays"}


def scrape(url: str, **headers: str) -> str:
    request = urllib.request.Request(url + "/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text: str = response.read().decode()
        return text


def sampled_families(text: str) -> set[str]:
    """Families with at least one sample (a histogram's count counts)."""
    return {
        name
        for name in families(text)
        if any(
            labelled(text, name + suffix)
            for suffix in ("", "_total", "_count", "_bucket")
        )
    }


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Daemon, RunningNode, str]]:
    """uploadd with one node (one copy per file, repair every second,
    webhooks to loopback allowed); the node's HTTP base URL."""
    node = start_node(tmp_path / "n1", "n1", "z1")
    try:
        daemon = start(
            tmp_path / "uploadd",
            f"--cluster-secret={SECRET}",
            f"--cluster-nodes=n1=127.0.0.1:{node.ports['amp']}",
            "--cluster-ping-interval=0.5s",
            "--cluster-replicas=1",
            "--cluster-repair-interval=1s",
            "--webhooks-allow-private=true",
        )
        try:
            yield daemon, node, f"http://127.0.0.1:{node.ports['http']}"
        finally:
            daemon.stop()
    finally:
        node.stop()


def replicated(daemon: Daemon, file_id: str) -> bool:
    return bool(daemon.json("GET", f"/files/{file_id}")["replicas"] == ["n1"])


def test_both_daemons_count_real_traffic(
    running: tuple[Daemon, RunningNode, str],
) -> None:
    daemon, _, node_url = running
    eventually(
        lambda: value(scrape(daemon.base), "uploadd_node_up", node="n1") == 1,
        20,
        "n1 UP",
    )
    data = os.urandom(1000)
    status, _, body = daemon.request("PUT", "/files/a.bin", data)
    assert status == 201, body
    put_id = json.loads(body)["id"]

    status, headers, _ = daemon.request(
        "POST", "/uploads/", None, **TUS, **{"Upload-Length": "10"}
    )
    assert status == 201
    upload = headers["Location"].removeprefix(daemon.base)
    for offset, chunk in ((0, b"0123"), (4, b"456789")):
        status, _, body = daemon.request(
            "PATCH", upload, chunk, **BODY, **{"Upload-Offset": str(offset)}
        )
        assert status == 204, body
    tus_id = upload.rsplit("/", 1)[1]

    assert daemon.request("GET", f"/files/{'f' * 32}")[0] == 404
    eventually(
        lambda: replicated(daemon, put_id) and replicated(daemon, tus_id),
        30,
        "both files on n1",
    )
    status, _, fetched = daemon.request("GET", f"/files/{put_id}/content")
    assert (status, fetched) == (200, data)  # after the redirect to n1

    # What settles after the traffic: the outbox sent, a repair pass made.
    text = eventually(
        lambda: (
            (t := scrape(daemon.base))
            and value(t, "uploadd_outbox_events") == 0
            and value(t, "uploadd_repair_backlog_files") == 0
            and value(t, "uploadd_replication_backlog_files") == 0
            and t
        ),
        30,
        "the outbox empty and a repair pass",
    )
    requests = "uploadd_http_requests_total"
    patch = {"method": "PATCH", "route": "/uploads/<upload_id>"}
    assert value(text, requests, **patch, status="204") == 2
    assert value(text, "uploadd_http_request_duration_seconds_count", **patch) == 2
    assert value(text, requests, method="POST", route="/uploads/", status="201") == 1
    put = {"method": "PUT", "route": "/files/<path:filename>"}
    assert value(text, requests, **put, status="201") == 1
    show = {"method": "GET", "route": "/files/<file_id>"}
    assert value(text, requests, **show, status="404") == 1
    content = {"method": "GET", "route": "/files/<file_id>/content"}
    assert value(text, requests, **content, status="302") == 1
    assert not any(
        put_id in dict(labels)["route"] for labels in labelled(text, requests)
    )
    assert labelled(text, "uploadd_uploads_total") == {
        frozenset({("protocol", "put"), ("outcome", "stored")}): 1,
        frozenset({("protocol", "tus"), ("outcome", "stored")}): 1,
    }
    assert value(text, "uploadd_uploads_started_total", protocol="tus") == 1
    assert value(text, "uploadd_uploads_started_total", protocol="put") == 1
    received = "uploadd_upload_received_bytes_total"
    assert value(text, received, protocol="tus") == 10
    assert value(text, received, protocol="put") == 1000
    assert value(text, "uploadd_upload_duration_seconds_count", protocol="tus") == 1
    assert value(text, "uploadd_upload_bodies_in_flight") == 0
    assert value(text, "uploadd_node_state", node="n1", state="up") == 1
    assert value(text, "uploadd_node_mode", node="n1", mode="active") == 1
    assert (value(text, "uploadd_node_free_bytes", node="n1") or 0) > 0
    assert (value(text, "uploadd_node_ping_rtt_seconds", node="n1") or 0) > 0
    assert (
        value(text, "uploadd_node_pings_total", node="n1", outcome="answered") or 0
    ) > 0
    copies = "uploadd_replica_copies_total"
    assert value(text, copies, node="n1", outcome="verified") == 2
    assert value(text, "uploadd_replica_copy_duration_seconds_count") == 2
    assert (value(text, "uploadd_repair_last_pass_timestamp_seconds") or 0) > 0
    assert value(text, "uploadd_outbox_oldest_age_seconds") == 0
    assert value(text, "uploadd_bus_connected") == 1
    assert (value(text, "uploadd_bus_published_events_total") or 0) >= 4

    node_text = scrape(node_url)
    assert labelled(node_text, "noded_downloads_total") == {
        frozenset({("status", "200")}): 1
    }
    assert value(node_text, "noded_download_sent_bytes_total") == 1000
    download = {"method": "GET", "route": "/files/<file_id>", "status": "200"}
    assert value(node_text, "noded_http_requests_total", **download) == 1
    assert value(node_text, "noded_stored_files") == 2
    assert value(node_text, "noded_stored_bytes") == 1010
    assert (value(node_text, "noded_free_bytes") or 0) > 0
    assert value(node_text, "noded_state", state="up") == 1
    assert sampled_families(node_text) == families(node_text) - RELAYS

    # A transcode that fails and a webhook: their families fill too.
    receiver = Receiver(204)
    try:
        hook = json.dumps({"url": receiver.url, "events": ["file.stored"]})
        json_type = {"Content-Type": "application/json"}
        assert daemon.request("POST", "/webhooks", hook.encode(), **json_type)[0] == 201
        status, _, body = daemon.request(
            "PUT",
            "/files/noise.mp3",
            b"not audio" * 64,
            **{"Content-Type": "audio/mpeg"},
        )
        assert status == 201, body
        text = eventually(
            lambda: (
                (t := scrape(daemon.base))
                and value(t, "uploadd_webhook_deliveries_total", outcome="delivered")
                and value(
                    t,
                    "uploadd_transcode_jobs_total",
                    profile="audio-aac",
                    state="failed",
                )
                and t
            ),
            60,
            "the delivery and the failed job",
        )
    finally:
        receiver.close()
    assert labelled(text, "uploadd_webhook_deliveries_total") == {
        frozenset({("outcome", "delivered")}): 1
    }
    assert labelled(text, "uploadd_transcode_jobs_total") == {
        frozenset({("profile", "audio-aac"), ("state", "pending")}): 1,
        frozenset({("profile", "audio-aac"), ("state", "running")}): 1,
        frozenset({("profile", "audio-aac"), ("state", "failed")}): 1,
    }
    seconds = "uploadd_transcode_duration_seconds_count"
    assert value(text, seconds, profile="audio-aac", state="failed") == 1
    assert sampled_families(text) == families(text)
