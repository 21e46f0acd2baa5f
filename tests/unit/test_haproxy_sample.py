"""config/haproxy.cfg.sample: HAProxy accepts it, and it keeps what several
uploadd instances need from the proxy in front of them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "haproxy.cfg.sample"
HAPROXY = "/usr/sbin/haproxy"


def directives() -> list[str]:
    """The sample's lines without comments and blank lines, spaces squeezed."""
    lines = (line.split("#", 1)[0] for line in SAMPLE.read_text().splitlines())
    return [" ".join(line.split()) for line in lines if line.strip()]


def test_haproxy_accepts_the_sample() -> None:
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(SAMPLE)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_round_robin_with_health_checks_and_no_stickiness() -> None:
    found = directives()
    for wanted in (
        "balance roundrobin",
        "option httpchk GET /health",
        "http-check expect status 200",
        "option forwardfor",
    ):
        assert wanted in found
    assert not [d for d in found if re.match(r"(cookie|stick|hash-type)\b", d)]


def test_bodies_stream_and_slow_uploads_have_time() -> None:
    """No request buffering; headers have a deadline, bodies only an idle
    timeout longer than uploadd's own (60s)."""
    found = directives()
    assert "option http-buffer-request" not in found
    timeouts = {d.split()[1]: d.split()[2] for d in found if d.startswith("timeout ")}
    assert timeouts["http-request"] == "20s"
    for side in ("client", "server"):
        assert timeouts[side].endswith("m") and int(timeouts[side][:-1]) >= 2
