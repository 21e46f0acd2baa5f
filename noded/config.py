"""noded's configuration: every key, its default and its form.

Read like uploadd's: an INI file (``--config`` or ``NODED_CONFIG``) <
``NODED_<SECTION>_<KEY>`` < twistd options ``--<section>-<key>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from noded import settings
from noded.logs import LogSection
from noded.settings import (
    parse_duration,
    parse_endpoint,
    parse_host,
    parse_port,
    parse_positive_int,
    parse_size,
    parse_text,
    setting,
)

SIZE = "a size in bytes with an optional K, M, G or T suffix, such as 512M"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_name(text: str) -> str:
    text = text.strip()
    if text and not _NAME.match(text):
        raise ValueError(text)
    return text


def parse_state(text: str) -> str:
    text = text.strip().lower()
    if text not in ("up", "draining", "read-only"):
        raise ValueError(text)
    return text


@attrs.frozen
class NodeSection:
    id: str = setting(
        "",
        parse_name,
        "this node's name in the cluster; empty uses the host name",
        "letters, digits, dot, dash or underscore",
    )
    zone: str = setting(
        "", parse_name, "failure zone (rack, room, site) for placement", "a name"
    )
    data_dir: Path = setting(
        "var/noded",
        lambda text: Path(text.strip()).expanduser(),
        "where replicas, the rsync config and the cluster secret live",
        "a directory path",
    )
    reserve: int = setting(
        "1G",
        parse_size,
        "below this much free space the node turns read-only",
        SIZE,
    )
    state: str = setting(
        "up",
        parse_state,
        "up, draining (keeps serving, takes nothing new) or read-only",
        "up, draining or read-only",
    )


@attrs.frozen
class ClusterSection:
    secret: str = setting(
        "",
        settings.parse_secret,
        "shared with uploadd: authenticates AMP peers, signs download URLs; "
        "empty generates one into <data_dir>/cluster-secret",
        "a string of at least 32 characters",
    )


@attrs.frozen
class AmpSection:
    host: str = setting("127.0.0.1", parse_host, "AMP address", "an IP address")
    port: int = setting("7001", parse_port, "AMP port; 0 picks one", "0 to 65535")
    endpoint: str = setting(
        "",
        parse_endpoint,
        "where AMP listens, instead of host and port (tcp:7001:interface=10.0.0.5,"
        " ssl:..., unix:...); empty: tcp on host and port",
        "a Twisted server endpoint string",
    )

    @property
    def listen_on(self) -> str:
        return settings.listen_on(self.endpoint, self.host, self.port)


@attrs.frozen
class RsyncSection:
    host: str = setting(
        "127.0.0.1", parse_host, "rsync daemon address", "an IP address"
    )
    port: int = setting(
        "7873", parse_port, "rsync daemon port; 0 picks one", "0 to 65535"
    )
    hosts_allow: str = setting(
        "127.0.0.1",
        parse_text,
        "who may push replicas (rsyncd 'hosts allow')",
        "addresses or CIDR blocks, space separated",
    )
    max_connections: int = setting(
        "8", parse_positive_int, "concurrent incoming transfers", "a positive integer"
    )
    binary: str = setting("rsync", parse_text, "the rsync program", "a command or path")


@attrs.frozen
class HttpSection:
    host: str = setting("127.0.0.1", parse_host, "download address", "an IP address")
    port: int = setting("7080", parse_port, "download port; 0 picks one", "0 to 65535")
    public_url: str = setting(
        "",
        settings.parse_url(("http", "https")),
        "how clients reach this node's downloads; empty: http://host:port",
        "an http:// or https:// URL",
    )
    idle_timeout: float = setting(
        "60s",
        parse_duration,
        "close download connections idle (or not reading) for this long",
        "a duration",
    )
    header_timeout: float = setting(
        "20s",
        parse_duration,
        "a request's line and headers must arrive within this long of its "
        "first byte; 0 turns the deadline off",
        "a duration",
    )
    shutdown_grace: float = setting(
        "30s",
        parse_duration,
        "on stop, how long downloads in flight may run before they are cut",
        "a duration",
    )
    endpoint: str = setting(
        "",
        parse_endpoint,
        "where downloads are served, instead of host and port"
        " (tcp:7080:interface=10.0.0.5, ssl:..., unix:... behind a proxy: set"
        " public_url); empty: tcp on host and port",
        "a Twisted server endpoint string",
    )

    @property
    def listen_on(self) -> str:
        return settings.listen_on(self.endpoint, self.host, self.port)


@attrs.frozen
class MetricsSection:
    """Who may read ``/metrics`` (both daemons have this section)."""

    token: str = setting(
        "",
        settings.parse_secret,
        "empty: /metrics answers only clients on this machine (loopback or a"
        " UNIX socket, not through a proxy); set: it answers any client sending"
        " Authorization: Bearer <token>, and no other",
        "a string of at least 32 characters",
    )


@attrs.frozen
class NodeConfig:
    node: NodeSection = attrs.field(factory=NodeSection)
    cluster: ClusterSection = attrs.field(factory=ClusterSection)
    amp: AmpSection = attrs.field(factory=AmpSection)
    rsync: RsyncSection = attrs.field(factory=RsyncSection)
    http: HttpSection = attrs.field(factory=HttpSection)
    log: LogSection = attrs.field(factory=LogSection)

    metrics: MetricsSection = attrs.field(factory=MetricsSection)


SAMPLE_HEADER = """\
# noded configuration: copy to noded.conf and uncomment what you change.
# Every key can also be set as NODED_<SECTION>_<KEY> in the environment or as
# --<section>-<key> on the twistd command line; those win over this file.
"""

ALIASES = {"data_dir": ("node", "data_dir"), "zone": ("node", "zone")}


def sample() -> str:
    return settings.render_sample(NodeConfig, SAMPLE_HEADER)


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    options: Mapping[tuple[str, str], str] | None = None,
) -> NodeConfig:
    return settings.load(NodeConfig, "NODED", path, environ, options, ALIASES)


if __name__ == "__main__":
    print(sample(), end="")
